// Wallets: injected wallets found through EIP-6963 (MetaMask and any other that announces itself),
// WalletConnect (its button is there even without a project id, and then says what is missing), the
// devnet chain added or switched to, and Sign-In with Ethereum to the coordinator.

import {
  type Config,
  type Connector,
  connect,
  createConfig,
  disconnect,
  getAccount,
  getConnectors,
  http,
  signMessage,
  switchChain,
  watchAccount,
  watchConnectors,
} from '@wagmi/core';
import { walletConnect } from '@wagmi/connectors/walletConnect';
import { type Chain, type Hex, defineChain, getAddress } from 'viem';
import { createSiweMessage } from 'viem/siwe';

import { type ChainInfo, api, postJson, setSessionToken } from './api';

export interface Session {
  address: Hex;
  expiresAt: number;
  roles: string[];
}

export interface Wallet {
  config: Config;
  chain: Chain;
  info: ChainInfo;
  walletConnectReady: boolean;
}

/** The market's chain as viem describes it: the coordinator says which chain and where its RPC is. */
export function marketChain(info: ChainInfo): Chain {
  const rpc = info.rpcUrl ?? 'http://127.0.0.1:8545';
  return defineChain({
    id: info.chainId,
    name: info.chainId === 31337 ? 'QOR devnet (anvil)' : `QOR chain ${info.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpc] } },
  });
}

export function createWallet(info: ChainInfo): Wallet {
  const chain = marketChain(info);
  const projectId = info.walletConnectProjectId ?? '';
  const connectors = projectId
    ? [walletConnect({ projectId, showQrModal: true, metadata: { name: 'QOR', description: 'Verified compute and storage', url: location.origin, icons: [] } })]
    : [];
  const config = createConfig({
    chains: [chain],
    connectors,
    multiInjectedProviderDiscovery: true,
    transports: { [chain.id]: http() },
  });
  return { config, chain, info, walletConnectReady: Boolean(projectId) };
}

/** Injected wallets announced through EIP-6963 (and the WalletConnect connector when configured). */
export function wallets(w: Wallet): readonly Connector[] {
  return getConnectors(w.config);
}

export function onWalletsChange(w: Wallet, f: () => void): () => void {
  return watchConnectors(w.config, { onChange: f });
}

export function onAccountChange(w: Wallet, f: () => void): () => void {
  return watchAccount(w.config, { onChange: f });
}

export const WALLETCONNECT_MISSING =
  'WalletConnect needs a project id: start the coordinator with --walletconnect-project-id (or QOR_WALLETCONNECT_PROJECT_ID), from cloud.reown.com.';

/** Connects, then makes sure the wallet is on the market's chain (switching, or adding it first). */
export async function connectWallet(w: Wallet, connector: Connector): Promise<Hex> {
  const account = getAccount(w.config);
  if (account.status !== 'connected' || account.connector?.uid !== connector.uid) {
    if (account.status === 'connected') await disconnect(w.config);
    await connect(w.config, { connector, chainId: w.chain.id });
  }
  await ensureChain(w);
  const address = getAccount(w.config).address;
  if (!address) throw new Error('the wallet connected but shared no account');
  return address;
}

/** Switches the wallet to the market's chain; the wallet is asked to add it when it does not know it. */
export async function ensureChain(w: Wallet): Promise<void> {
  const account = getAccount(w.config);
  if (account.chainId === w.chain.id) return;
  await switchChain(w.config, {
    chainId: w.chain.id,
    addEthereumChainParameter: { chainName: w.chain.name, nativeCurrency: w.chain.nativeCurrency, rpcUrls: [...w.chain.rpcUrls.default.http] },
  });
}

/** Sign-In with Ethereum (EIP-4361): the coordinator's nonce, signed by the wallet, opens a session. */
export async function signIn(w: Wallet): Promise<Session> {
  const address = getAccount(w.config).address;
  if (!address) throw new Error('connect a wallet first');
  const { nonce } = await api<{ nonce: string }>('/v1/auth/nonce');
  const message = createSiweMessage({
    domain: location.host,
    address: getAddress(address),
    statement: 'Sign in to the QOR market. This costs nothing and sends no transaction.',
    uri: location.origin,
    version: '1',
    chainId: w.chain.id,
    nonce,
    issuedAt: new Date(),
    expirationTime: new Date(Date.now() + 12 * 3_600_000),
  });
  const signature = await signMessage(w.config, { account: address, message });
  const session = await postJson<Session & { token: string }>('/v1/auth/siwe', { message, signature });
  setSessionToken(session.token);
  sessionStorage.setItem('qor.session', JSON.stringify({ token: session.token, address: session.address }));
  return session;
}

/** The session this tab signed in with, if the coordinator still knows it and it is this account's. */
export async function resumeSession(address: Hex | undefined): Promise<Session | undefined> {
  const saved = sessionStorage.getItem('qor.session');
  if (!saved || !address) return undefined;
  const { token, address: who } = JSON.parse(saved) as { token: string; address: string };
  if (who.toLowerCase() !== address.toLowerCase()) return undefined;
  setSessionToken(token);
  try {
    return await api<Session>('/v1/auth/session');
  } catch {
    setSessionToken(undefined);
    sessionStorage.removeItem('qor.session');
    return undefined;
  }
}

export async function signOut(): Promise<void> {
  try {
    await api('/v1/auth/session', { method: 'DELETE' });
  } finally {
    setSessionToken(undefined);
    sessionStorage.removeItem('qor.session');
  }
}

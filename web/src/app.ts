// What every page shares: the coordinator's chain info, the wallet, a public client for reads, the
// connected account and session, and `send`, which every transaction of the app goes through.

import { getAccount, getPublicClient, simulateContract, waitForTransactionReceipt, writeContract } from '@wagmi/core';
import type { Hex, PublicClient, TransactionReceipt } from 'viem';

import { jobEscrowAbi, providerRegistryAbi, storageMarketAbi } from './abi';
import type { ChainInfo } from './api';
import { insufficient } from './errors';
import { type Session, type Wallet, ensureChain, signIn } from './wallet';

export interface App {
  info: ChainInfo;
  wallet: Wallet;
  client: PublicClient;
  session?: Session;
  /** Re-renders the header (account, session). */
  refreshHeader(): void;
}

export function createApp(info: ChainInfo, wallet: Wallet, refreshHeader: () => void): App {
  const client = getPublicClient(wallet.config) as PublicClient;
  return { info, wallet, client, refreshHeader };
}

export function account(app: App): Hex | undefined {
  return getAccount(app.wallet.config).address;
}

export function requireAccount(app: App): Hex {
  const a = account(app);
  if (!a) throw new Error('Connect a wallet first (the buttons at the top of the page).');
  return a;
}

/**
 * The connected account's session, signing in first when there is none: uploads are made in a
 * signed-in session (the coordinator stores nothing anonymously, and counts what each account keeps).
 */
export async function requireSession(app: App): Promise<Session> {
  const a = requireAccount(app);
  if (app.session && app.session.address.toLowerCase() === a.toLowerCase()) return app.session;
  app.session = await signIn(app.wallet);
  app.refreshHeader();
  return app.session;
}

export const JOB_STATUS = ['none', 'open', 'settled', 'challenged', 'finalized', 'refunded', 'reclaimed'] as const;
export const DEAL_STATUS = ['none', 'open', 'active', 'completed', 'cancelled'] as const;
export const CHALLENGE_STATUS = ['none', 'pending', 'upheld', 'rejected', 'expired'] as const;

type Contract = 'escrow' | 'registry' | 'market';

/**
 * Sends a transaction from the connected wallet: on the market's chain, refused before signing when the
 * balance cannot cover `value`, simulated first so a revert is named before the wallet asks, then
 * waited for. `onSent` sees the hash as soon as the wallet returns it.
 */
export async function send(
  app: App,
  contract: Contract,
  functionName: string,
  args: readonly unknown[],
  value = 0n,
  onSent?: (hash: Hex) => void,
): Promise<TransactionReceipt> {
  const from = requireAccount(app);
  await ensureChain(app.wallet);
  if (value > 0n) {
    const balance = await app.client.getBalance({ address: from });
    if (balance < value) throw new Error(insufficient(balance, value));
  }
  const target =
    contract === 'escrow'
      ? { address: app.info.jobEscrow, abi: jobEscrowAbi }
      : contract === 'market'
        ? { address: app.info.storageMarket, abi: storageMarketAbi }
        : { address: app.info.providerRegistry, abi: providerRegistryAbi };
  // The ABI is typed; the pages pass function names and arguments they build at run time.
  const call = { ...target, functionName, args, value, account: from, chainId: app.wallet.chain.id } as never;
  const { request } = await simulateContract(app.wallet.config, call);
  const hash = await writeContract(app.wallet.config, request);
  onSent?.(hash);
  const receipt = await waitForTransactionReceipt(app.wallet.config, { hash, chainId: app.wallet.chain.id });
  if (receipt.status !== 'success') throw new Error(`the transaction ${hash} reverted on chain`);
  return receipt;
}

export async function readEscrow<T>(app: App, functionName: string, args: readonly unknown[] = []): Promise<T> {
  return (await app.client.readContract({ address: app.info.jobEscrow, abi: jobEscrowAbi, functionName, args } as never)) as T;
}

export async function readMarket<T>(app: App, functionName: string, args: readonly unknown[] = []): Promise<T> {
  return (await app.client.readContract({ address: app.info.storageMarket, abi: storageMarketAbi, functionName, args } as never)) as T;
}

export async function readRegistry<T>(app: App, functionName: string, args: readonly unknown[] = []): Promise<T> {
  return (await app.client.readContract({ address: app.info.providerRegistry, abi: providerRegistryAbi, functionName, args } as never)) as T;
}

/** The latest block's timestamp: the chain's clock, which deadlines and windows are measured in. */
export async function chainNow(app: App): Promise<number> {
  const block = await app.client.getBlock();
  return Number(block.timestamp);
}

export function link(path: string, text: string | Node): HTMLAnchorElement {
  const a = document.createElement('a');
  a.href = `#${path}`;
  a.append(text);
  return a;
}

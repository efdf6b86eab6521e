// The wallet of the end-to-end test: an EIP-1193 provider injected into the page and announced through
// EIP-6963, as MetaMask announces itself. It signs in Node with an anvil key (viem's local account) and
// forwards reads to the chain. It starts on chain 1, so the app must ask it to add and switch to the
// market's chain, and it can be told to refuse the next request, as a person pressing "Reject" would.

import { createPublicClient, createWalletClient, defineChain, http, numberToHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

/** Script run in the page before the app: the provider object and its EIP-6963 announcement. */
const injected = ({ name, uuid }) => {
  const listeners = {};
  const provider = {
    isQorTestWallet: true,
    async request({ method, params }) {
      const answer = await window.__qorWallet(method, params ?? []);
      if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
      for (const [event, value] of answer.emit ?? []) for (const f of listeners[event] ?? []) f(value);
      return answer.result;
    },
    on(event, f) {
      (listeners[event] ??= []).push(f);
      return provider;
    },
    removeListener(event, f) {
      listeners[event] = (listeners[event] ?? []).filter((g) => g !== f);
      return provider;
    },
  };
  const icon = 'data:image/svg+xml,<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" fill="orange"/></svg>';
  const announce = () =>
    window.dispatchEvent(new CustomEvent('eip6963:announceProvider', { detail: Object.freeze({ info: { uuid, name, icon, rdns: 'dev.qor.testwallet' }, provider }) }));
  window.addEventListener('eip6963:requestProvider', announce);
  announce();
  // The test's hand on the wallet's own UI: what the wallet tells the page unasked (a network switch).
  window.__qorWalletEmit = (event, value) => {
    for (const f of listeners[event] ?? []) f(value);
  };
};

/**
 * Installs a wallet holding `key` into a Playwright browser context. Returns its controls: `reject()`
 * makes the next request fail with 4001, `requests` lists the methods the app asked for.
 */
export async function installWallet(context, { key, rpcUrl, chainId, name = 'QOR Test Wallet' }) {
  const account = privateKeyToAccount(key);
  const chain = defineChain({ id: chainId, name: 'devnet', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } });
  const wallet = createWalletClient({ account, chain, transport: http(rpcUrl) });
  const reads = createPublicClient({ chain, transport: http(rpcUrl) });
  const state = { current: 1, known: new Set([1]), rejectNext: false, requests: [] };
  const signing = new Set(['personal_sign', 'eth_sendTransaction', 'eth_signTypedData_v4', 'eth_requestAccounts']);

  await context.exposeFunction('__qorWallet', async (method, params) => {
    state.requests.push(method);
    if (state.rejectNext && signing.has(method)) {
      state.rejectNext = false;
      return { error: { code: 4001, message: 'User rejected the request.' } };
    }
    try {
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts':
          return { result: [account.address] };
        case 'eth_chainId':
          return { result: numberToHex(state.current) };
        case 'net_version':
          return { result: String(state.current) };
        case 'wallet_switchEthereumChain': {
          const id = Number(params[0].chainId);
          if (!state.known.has(id)) return { error: { code: 4902, message: `Unrecognized chain ID ${params[0].chainId}. Try adding the chain using wallet_addEthereumChain first.` } };
          state.current = id;
          return { result: null, emit: [['chainChanged', numberToHex(id)]] };
        }
        case 'wallet_addEthereumChain': {
          const id = Number(params[0].chainId);
          if (id !== chainId) return { error: { code: 4001, message: `this test wallet only knows the devnet, not chain ${id}` } };
          state.known.add(id);
          state.current = id;
          return { result: null, emit: [['chainChanged', numberToHex(id)]] };
        }
        case 'wallet_requestPermissions':
        case 'wallet_revokePermissions':
          return { result: [{ parentCapability: 'eth_accounts' }] };
        case 'personal_sign':
          return { result: await account.signMessage({ message: { raw: params[0] } }) };
        case 'eth_sendTransaction': {
          if (state.current !== chainId) return { error: { code: 4100, message: `the wallet is on chain ${state.current}` } };
          const tx = params[0];
          const hash = await wallet.sendTransaction({
            to: tx.to,
            data: tx.data,
            value: tx.value ? BigInt(tx.value) : 0n,
            gas: tx.gas ? BigInt(tx.gas) : undefined,
          });
          return { result: hash };
        }
        default:
          if (state.current !== chainId) return { error: { code: 4901, message: `chain ${state.current} is not connected in this test wallet` } };
          return { result: await reads.request({ method, params }) };
      }
    } catch (e) {
      return { error: { code: e.code ?? -32603, message: e.shortMessage ?? e.message } };
    }
  });
  await context.addInitScript(injected, { name, uuid: crypto.randomUUID() });
  return {
    address: account.address,
    reject() {
      state.rejectNext = true;
    },
    /** The person switches the wallet to chain `id` (a chain the wallet knows). */
    async switchTo(page, id) {
      state.known.add(id);
      state.current = id;
      await page.evaluate((hex) => window.__qorWalletEmit('chainChanged', hex), numberToHex(id));
    },
    requests: state.requests,
  };
}

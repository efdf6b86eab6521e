// The live network view: chain id, block number, block time, the latest blocks and the contracts'
// latest events, refreshed on every new block; and a transaction's page (the app's links to
// transactions land here, a devnet having no block explorer).

import { type Hex, type Log, decodeFunctionData, parseEventLogs } from 'viem';

import { jobEscrowAbi, providerRegistryAbi, storageMarketAbi, verifierCommitteeAbi } from '../abi';
import type { App } from '../app';
import { explain } from '../errors';
import { code, h, table } from '../ui';

const allAbi = [...jobEscrowAbi, ...storageMarketAbi, ...providerRegistryAbi, ...verifierCommitteeAbi];

function contractName(app: App, address: string): string {
  const a = address.toLowerCase();
  if (a === app.info.jobEscrow.toLowerCase()) return 'JobEscrow';
  if (a === app.info.storageMarket.toLowerCase()) return 'StorageMarket';
  if (a === app.info.providerRegistry.toLowerCase()) return 'ProviderRegistry';
  if (a === app.info.verifierCommittee.toLowerCase()) return 'VerifierCommittee';
  return address;
}

function argsText(args: unknown): string {
  if (!args || typeof args !== 'object') return '';
  return Object.entries(args as Record<string, unknown>)
    .filter(([k]) => Number.isNaN(Number(k)))
    .map(([k, v]) => `${k}=${typeof v === 'bigint' ? v.toString() : typeof v === 'object' ? '{…}' : String(v)}`)
    .join(' ');
}

export async function networkPage(app: App, main: HTMLElement): Promise<() => void> {
  const summary = h('dl', { class: 'facts', 'aria-live': 'polite' });
  const blocks = h('div');
  const events = h('div');
  main.append(h('h1', {}, 'Network'), summary, h('h2', {}, 'Latest blocks'), blocks, h('h2', {}, 'Latest contract events'), events);
  let last = -1n;
  const render = async () => {
    try {
      const head = await app.client.getBlockNumber({ cacheTime: 0 });
      if (head === last) return;
      last = head;
      const count = head < 9n ? Number(head) + 1 : 10;
      const latest = await Promise.all(Array.from({ length: count }, (_, i) => app.client.getBlock({ blockNumber: head - BigInt(i) })));
      const span = latest.length > 1 ? Number(latest[0].timestamp - latest[latest.length - 1].timestamp) / (latest.length - 1) : 0;
      summary.replaceChildren(
        h('dt', {}, 'Chain id'),
        h('dd', { 'data-testid': 'chain-id' }, String(app.info.chainId)),
        h('dt', {}, 'Block'),
        h('dd', { 'data-testid': 'block-number' }, String(head)),
        h('dt', {}, 'Block time'),
        h('dd', {}, span ? `${span.toFixed(2)} s (last ${latest.length} blocks)` : '—'),
        h('dt', {}, 'Contracts'),
        h(
          'dd',
          {},
          'JobEscrow ',
          code(app.info.jobEscrow),
          ' · StorageMarket ',
          code(app.info.storageMarket),
          ' · ProviderRegistry ',
          code(app.info.providerRegistry),
          ' · VerifierCommittee ',
          code(app.info.verifierCommittee),
        ),
        h('dt', {}, 'Coordinator'),
        h('dd', {}, `acts on events ${app.info.confirmations} block(s) deep`),
      );
      blocks.replaceChildren(
        table(
          ['Block', 'Time', 'Transactions', 'Gas used', 'Hash'],
          latest.map((b) => [String(b.number), new Date(Number(b.timestamp) * 1000).toLocaleTimeString(), b.transactions.length, String(b.gasUsed), code(b.hash)]),
        ),
      );
      const from = head > 500n ? head - 500n : BigInt(app.info.deployBlock);
      const logs = await app.client.getLogs({ address: [app.info.jobEscrow, app.info.storageMarket, app.info.providerRegistry, app.info.verifierCommittee], fromBlock: from, toBlock: head });
      const decoded = parseEventLogs({ abi: allAbi, logs: logs as Log[] }).slice(-25).reverse();
      events.replaceChildren(
        decoded.length
          ? table(
              ['Block', 'Contract', 'Event', 'Arguments', 'Transaction'],
              decoded.map((l) => [String(l.blockNumber), contractName(app, l.address), h('span', { 'data-testid': 'event-name' }, l.eventName), argsText(l.args), h('a', { href: `#/tx/${l.transactionHash}` }, code(l.transactionHash))]),
            )
          : h('p', {}, 'No contract events in the last 500 blocks.'),
      );
    } catch (e) {
      events.replaceChildren(h('p', { role: 'alert', class: 'notice error' }, explain(e)));
    }
  };
  await render();
  const timer = window.setInterval(render, 1000);
  return () => window.clearInterval(timer);
}

export async function txPage(app: App, main: HTMLElement, hash: string): Promise<void> {
  main.append(h('h1', {}, 'Transaction'), h('p', {}, code(hash, true)));
  try {
    const [tx, receipt] = await Promise.all([app.client.getTransaction({ hash: hash as Hex }), app.client.getTransactionReceipt({ hash: hash as Hex })]);
    let call = '';
    try {
      call = decodeFunctionData({ abi: allAbi, data: tx.input }).functionName;
    } catch {
      call = tx.input === '0x' ? 'transfer' : 'unknown function';
    }
    const logs = parseEventLogs({ abi: allAbi, logs: receipt.logs });
    main.append(
      table(
        ['Status', 'Block', 'From', 'To', 'Call', 'Value (wei)', 'Gas used'],
        [[receipt.status, String(receipt.blockNumber), code(tx.from), tx.to ? `${contractName(app, tx.to)}` : 'contract creation', call, String(tx.value), String(receipt.gasUsed)]],
      ),
      logs.length ? table(['Event', 'Arguments'], logs.map((l) => [l.eventName, argsText(l.args)]), 'Events') : h('p', {}, 'No events.'),
    );
  } catch (e) {
    main.append(h('p', { role: 'alert', class: 'notice error' }, explain(e)));
  }
}

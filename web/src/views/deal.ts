// A storage deal's page: on-chain state, timeline, challenge history, and two checks a buyer can run
// here: ask the provider for a proof of a chunk now (checked against the root in the escrow), and
// download the whole file and recompute its root.

import { type Hex, hexToBytes } from 'viem';

import { ApiError, type Deal, api, getBlob, postJson } from '../api';
import { type App, DEAL_STATUS, readMarket } from '../app';
import { explain } from '../errors';
import { merkleRoot, verifyChunk } from '../hash';
import { action, code, eth, h, pageId, table, when } from '../ui';

interface ChainDeal {
  buyer: Hex;
  pricePerPeriod: bigint;
  startBlock: number;
  periods: number;
  settledPeriods: number;
  status: number;
  periodLength: number;
  size: bigint;
  provider: Hex;
  merkleRoot: Hex;
  challengesPerPeriod: number;
  missedInARow: number;
}

export async function dealPage(app: App, main: HTMLElement, idText: string): Promise<() => void> {
  const id = pageId(main, idText, 'deal');
  if (id === undefined) return () => {};
  const body = h('div', { 'aria-live': 'polite' });
  const out = h('p', { class: 'notice', 'data-testid': 'deal-action-status' });
  main.append(h('h1', {}, `Storage deal ${id}`), body);
  let timer: number | undefined;
  const render = async () => {
    try {
      const [deal, chain] = await Promise.all([api<Deal & { blobHash: Hex }>(`/v1/storage/deals/${id}`).catch(() => undefined), readMarket<ChainDeal>(app, 'getStorageDeal', [id])]);
      body.replaceChildren(...view(deal, chain));
    } catch (e) {
      body.replaceChildren(h('p', { role: 'alert', class: 'notice error' }, explain(e)));
    }
    timer = window.setTimeout(render, 2000);
  };
  const run = (f: () => Promise<string>) => action(out, f);
  main.append(
    h(
      'section',
      { 'aria-labelledby': 'deal-checks' },
      h('h2', { id: 'deal-checks' }, 'Check it yourself'),
      h('button', { onclick: run(() => probe(app, id)) }, 'Ask for a proof now'),
      h('button', { onclick: run(() => downloadAndCheck(app, id)) }, 'Download and recompute the root'),
      out,
    ),
  );
  await render();
  return () => window.clearTimeout(timer);
}

function view(deal: Deal | undefined, c: ChainDeal): (Node | string)[] {
  if (c.status === 0) return [h('p', { role: 'alert', class: 'notice error' }, 'The escrow has no such deal.')];
  return [
    h('p', {}, 'On chain: ', h('strong', { 'data-testid': 'deal-chain-status' }, DEAL_STATUS[c.status] ?? 'unknown'), deal ? ` · coordinator: ${deal.status}` : ''),
    table(
      ['Root', 'Size', 'Periods settled', 'Blocks per period', 'Chunks per period', 'Missed in a row', 'Price per period', 'Provider', 'Starts at block'],
      [[code(c.merkleRoot), `${c.size} B`, `${c.settledPeriods} of ${c.periods}`, c.periodLength, c.challengesPerPeriod, c.missedInARow, eth(c.pricePerPeriod), code(c.provider), c.startBlock || '—']],
    ),
    deal?.challenges.length
      ? table(
          ['Period', 'Chunks', 'Status', 'Asked by', 'Asked', 'Answered'],
          deal.challenges.map((x) => [x.period, x.chunkIndexes.join(', '), x.status, code(x.issuedBy), when(x.issuedAt), when(x.answeredAt)]),
          'Challenge history',
        )
      : h('p', {}, 'No challenges yet: the first comes in the first period after a provider accepts.'),
    deal ? h('ol', { class: 'events', 'aria-label': 'Deal timeline' }, ...deal.timeline.map((t) => h('li', {}, `${when(t.at)} ${t.kind} (${t.actor})`))) : '',
  ];
}

/** Asks the provider for a chunk's proof now (the signed-in buyer only) and checks it here. */
async function probe(app: App, id: bigint): Promise<string> {
  if (!app.session) throw new Error('Sign in with Ethereum first (the button at the top): only the deal’s buyer may ask.');
  const c = await readMarket<ChainDeal>(app, 'getStorageDeal', [id]);
  const chunks = Math.ceil(Number(c.size) / 1024);
  const index = Math.floor(Math.random() * chunks);
  let asked: { probeId: number } | undefined;
  // The coordinator acts on the acceptance once it is a few blocks deep; until then it says the deal is
  // not hosted, while the chain already says active.
  for (let i = 0; !asked; i++) {
    try {
      asked = await postJson<{ probeId: number }>(`/v1/me/storage/deals/${id}/probes`, { chunkIndex: index });
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'deal_not_active' && c.status === 2 && i < 20)) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  for (let i = 0; i < 60; i++) {
    const p = await api<{ status: string; chunk: Hex | null; path: Hex[] | null }>(`/v1/storage/deals/${id}/probes/${asked.probeId}`);
    if (p.status === 'answered' && p.chunk && p.path) {
      if (!verifyChunk(c.merkleRoot, chunks, index, hexToBytes(p.chunk), p.path)) throw new Error(`The provider's proof of chunk ${index} does not check against the root ${c.merkleRoot}.`);
      return `Chunk ${index} of ${chunks}: the provider's proof checks against the root on chain (${p.path.length} sibling hashes).`;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`The provider has not answered the probe of chunk ${index} within 60 s.`);
}

async function downloadAndCheck(app: App, id: bigint): Promise<string> {
  const deal = await api<Deal & { blobHash: Hex | null }>(`/v1/storage/deals/${id}`);
  if (!deal.blobHash) throw new Error('The coordinator has no file for this deal.');
  const c = await readMarket<ChainDeal>(app, 'getStorageDeal', [id]);
  const bytes = await getBlob(deal.blobHash);
  const root = merkleRoot(bytes);
  if (root !== c.merkleRoot.toLowerCase()) throw new Error(`The file hashes to the root ${root}; the escrow holds ${c.merkleRoot}.`);
  return `Downloaded ${bytes.length} bytes; every chunk hashes to the root on chain, ${root}.`;
}

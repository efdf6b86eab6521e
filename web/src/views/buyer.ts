// Buyer workspace: fund a compute job (with the price quote before paying), fund a storage deal (the
// Merkle root computed here, before funding, and compared with the coordinator's), and the buyer's
// jobs and deals.

import { type Hex, parseEther, parseEventLogs, zeroAddress } from 'viem';

import { jobEscrowAbi, storageMarketAbi } from '../abi';
import { type Deal, type Job, type Provider, api, postJson, putBlob, putBlobOnce } from '../api';
import { type App, account, chainNow, link, requireAccount, requireSession, send } from '../app';
import { explain } from '../errors';
import { type JobSpec, SPEC_VERSION, canonicalSpec, chunkCount, merkleRoot, specHash } from '../hash';
import { loadRuntime, runtimeArgs, runtimeFor } from '../runtimes';
import { code, eth, field, h, notice, onSubmit, parseEthField, readFiles, table } from '../ui';
import { balances } from './balances';

const utf8 = new TextEncoder();

/** What the market would charge at most: the `redundancy` cheapest live providers that fit, at their highest price. */
export function quote(providers: Provider[], redundancy: number, fuel: bigint, preferred: string): { price: bigint; providers: Provider[] } | string {
  const live = providers.filter((p) => p.live).sort((a, b) => (BigInt(a.pricePerFuel) < BigInt(b.pricePerFuel) ? -1 : 1));
  const chosen = preferred ? [...live.filter((p) => p.address === preferred), ...live.filter((p) => p.address !== preferred)] : live;
  if (chosen.length < redundancy) return `Only ${live.length} live provider(s); ${redundancy} replicas need ${redundancy} distinct providers.`;
  const picked = chosen.slice(0, redundancy);
  const top = picked.reduce((m, p) => (BigInt(p.pricePerFuel) > m ? BigInt(p.pricePerFuel) : m), 0n);
  return { price: top * fuel * BigInt(redundancy), providers: picked };
}

export async function buyerPage(app: App, main: HTMLElement): Promise<void> {
  const providers = (await api<{ providers: Provider[] }>('/v1/providers')).providers;
  main.append(h('h1', {}, 'Buyer workspace'), computeForm(app, providers), storageForm(app, providers), await myWork(app));
  const who = account(app);
  if (who) main.append(await balances(app, who));
}

function providerSelect(providers: Provider[]): HTMLSelectElement {
  return h(
    'select',
    {},
    h('option', { value: '' }, 'Open: any provider the market picks'),
    ...providers.map((p) => h('option', { value: p.address }, `${p.address} (${p.live ? 'live' : 'offline'}, ${p.pricePerFuel} wei/fuel)`)),
  );
}

function computeForm(app: App, providers: Provider[]): HTMLElement {
  const module = h('input', { type: 'file', accept: '.wasm,application/wasm,.py', required: true, name: 'module' });
  const runtimeBox = h('p', { class: 'notice', 'aria-live': 'polite', 'data-testid': 'runtime' });
  const inputs = h('input', { type: 'file', multiple: true, name: 'inputs' });
  const args = h('textarea', { rows: 2, name: 'args', placeholder: 'one argument per line' });
  const redundancy = h('input', { type: 'number', min: 1, max: 32, value: 3, required: true, name: 'redundancy' });
  const budget = h('input', { type: 'text', inputmode: 'decimal', value: '0.01', required: true, name: 'budget' });
  const deadline = h('input', { type: 'number', min: 1, value: 60, required: true, name: 'deadline' });
  const fuel = h('input', { type: 'number', min: 1, value: 100000000, required: true, name: 'fuel' });
  const provider = providerSelect(providers);
  const quoteBox = h('p', { class: 'quote', 'aria-live': 'polite', 'data-testid': 'quote' });
  const status = h('p', { class: 'notice', 'data-testid': 'job-status' });

  const refreshQuote = () => {
    try {
      const q = quote(providers, Number(redundancy.value), BigInt(fuel.value || '0'), provider.value);
      if (typeof q === 'string') return notice(quoteBox, 'error', q);
      const b = parseEther(budget.value || '0');
      const text = `Quote: at most ${eth(q.price)} (${q.providers.length} provider(s) × ${fuel.value} fuel at up to ${q.price / BigInt(fuel.value) / BigInt(q.providers.length)} wei per fuel); you pay for the fuel the job uses, the rest of the budget comes back.`;
      notice(quoteBox, b >= q.price ? 'info' : 'error', b >= q.price ? text : `${text} The budget of ${eth(b)} is below it: no provider set would take the job.`);
    } catch (e) {
      notice(quoteBox, 'error', explain(e));
    }
  };
  for (const el of [redundancy, budget, fuel, provider]) el.addEventListener('input', refreshQuote);
  // A script runs on its pinned runtime: CPython alone takes some 250 million fuel to start, so the
  // form's module-sized default limit is raised (`qor job quote` gives the exact figure).
  module.addEventListener('change', () => {
    const rt = runtimeFor(module.files?.[0]?.name ?? '');
    if (!rt) {
      runtimeBox.textContent = '';
      if (fuel.value === '2000000000') fuel.value = '100000000';
      return refreshQuote();
    }
    notice(runtimeBox, 'info', `Runs on ${rt.name} ${rt.version} (a pinned runtime), the script at /in/${module.files?.[0]?.name}; input files sit beside it. \`qor job quote\` prints the exact fuel.`);
    if (fuel.value === '100000000') fuel.value = '2000000000';
    refreshQuote();
  });
  refreshQuote();

  const form = h(
    'form',
    { 'aria-labelledby': 'fund-job' },
    h('h2', { id: 'fund-job' }, 'Fund a compute job'),
    field('WebAssembly module (.wasm, WASI preview 1) or Python script (.py)', module),
    runtimeBox,
    field('Input files (placed under /in)', inputs),
    field('Arguments', args, 'One per line, passed after the program name.'),
    h(
      'div',
      { class: 'row' },
      field('Replicas', redundancy, 'Distinct providers that each run the job.'),
      field('Fuel limit', fuel),
      field('Budget (ETH)', budget),
      field('Deadline (minutes)', deadline, 'After it you can reclaim an unsettled budget.'),
    ),
    field('Provider', provider, 'A preferred provider goes first; open lets the market match by stake, price and reputation.'),
    quoteBox,
    h('button', { type: 'submit', class: 'primary' }, 'Review and fund'),
    status,
  );
  onSubmit(form, status, async () => {
    requireAccount(app);
    const [mod] = await readFiles(module);
    if (!mod) throw new Error('Choose a .wasm module or a .py script.');
    const rt = runtimeFor(mod.name);
    const r = Number(redundancy.value);
    if (!Number.isInteger(r) || r < 1 || r > 32) throw new Error('Replicas must be a whole number from 1 to 32.');
    const value = parseEthField(budget.value, 'budget', '0.01');
    if (value <= 0n) throw new Error('The budget must be above zero.');
    const files = await readFiles(inputs);
    if (rt && files.some((f) => f.name === mod.name)) throw new Error(`Two files would be /in/${mod.name}: rename the input or the script.`);
    await requireSession(app);
    let moduleHash: Hex;
    const inputList = [];
    let argv = args.value.split('\n').map((a) => a.trimEnd()).filter((a) => a.length > 0);
    if (rt) {
      notice(status, 'info', `Fetching the ${rt.name} ${rt.version} runtime and checking its hash…`);
      moduleHash = await putBlobOnce(await loadRuntime(rt));
      inputList.push({ path: mod.name, hash: await putBlob(mod.bytes) });
      argv = runtimeArgs(mod.name, argv);
    } else {
      notice(status, 'info', 'Uploading the module and inputs…');
      moduleHash = await putBlob(mod.bytes);
    }
    for (const f of files) inputList.push({ path: f.name, hash: await putBlob(f.bytes) });
    const spec: JobSpec = {
      version: SPEC_VERSION,
      module: moduleHash,
      entry: '_start',
      args: argv,
      env: {},
      inputs: inputList,
      limits: { fuel: Number(fuel.value), memoryBytes: (rt ? 256 : 64) << 20, outputBytes: 64 << 20, wallClockMs: 60_000 },
      redundancy: r,
    };
    const hash = specHash(spec);
    const posted = await api<{ specHash: Hex }>('/v1/specs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: canonicalSpec(spec) });
    if (posted.specHash !== hash) throw new Error(`The coordinator hashed the spec to ${posted.specHash}, this page to ${hash}; not funding.`);
    const deadlineAt = BigInt((await chainNow(app)) + Number(deadline.value) * 60);
    notice(status, 'info', `Spec ${hash} uploaded. Confirm the payment of ${eth(value)} in your wallet…`);
    const receipt = await send(app, 'escrow', 'createComputeJob', [hash, r, zeroAddress, value, deadlineAt, (provider.value || zeroAddress) as Hex], value, (tx) =>
      notice(status, 'info', `Sent ${tx}; waiting for the block…`),
    );
    const [created] = parseEventLogs({ abi: jobEscrowAbi, eventName: 'ComputeJobCreated', logs: receipt.logs });
    notice(status, 'ok', `Job ${created.args.jobId} funded: the escrow holds ${eth(value)}.`);
    location.hash = `#/job/${created.args.jobId}`;
  });
  return form;
}

function storageForm(app: App, providers: Provider[]): HTMLElement {
  const text = h('textarea', { rows: 3, name: 'text', placeholder: 'Paste text to store, or choose a file below' });
  const file = h('input', { type: 'file', name: 'file' });
  const periods = h('input', { type: 'number', min: 1, max: 256, value: 2, required: true, name: 'periods' });
  const periodLength = h('input', { type: 'number', min: 1, value: 4, required: true, name: 'periodLength' });
  const price = h('input', { type: 'text', inputmode: 'decimal', value: '0.0001', required: true, name: 'price' });
  const challenges = h('input', { type: 'number', min: 1, max: 16, value: 4, required: true, name: 'challenges' });
  const provider = providerSelect(providers);
  const rootBox = h('p', { class: 'quote', 'aria-live': 'polite', 'data-testid': 'root' });
  const status = h('p', { class: 'notice', 'data-testid': 'deal-status' });

  const bytesOf = async (): Promise<Uint8Array> => {
    const [f] = await readFiles(file);
    return f ? f.bytes : utf8.encode(text.value);
  };
  const showRoot = async () => {
    try {
      const bytes = await bytesOf();
      if (bytes.length === 0) return notice(rootBox, 'info', 'The Merkle root appears here as soon as there is something to store.');
      notice(rootBox, 'info', `Merkle root (computed in this browser): ${merkleRoot(bytes)} · ${bytes.length} bytes in ${chunkCount(bytes.length)} chunk(s)`);
    } catch (e) {
      notice(rootBox, 'error', explain(e));
    }
  };
  text.addEventListener('input', showRoot);
  file.addEventListener('change', showRoot);
  void showRoot();

  const form = h(
    'form',
    { 'aria-labelledby': 'fund-deal' },
    h('h2', { id: 'fund-deal' }, 'Fund a storage deal'),
    field('Text', text),
    field('…or a file', file),
    h(
      'div',
      { class: 'row' },
      field('Periods', periods),
      field('Blocks per period', periodLength, 'Each period the challenged chunks, picked by a block hash, must be proven.'),
      field('Price per period (ETH)', price),
      field('Chunks per period', challenges, 'A provider missing a fraction f of the file passes a period with probability (1 − f)^chunks.'),
    ),
    field('Provider', provider),
    rootBox,
    h('button', { type: 'submit', class: 'primary' }, 'Compute the root and fund'),
    status,
  );
  onSubmit(form, status, async () => {
    requireAccount(app);
    const bytes = await bytesOf();
    if (bytes.length === 0) throw new Error('There is nothing to store: paste text or choose a file.');
    const n = Number(periods.value);
    const len = Number(periodLength.value);
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error('Periods must be a whole number from 1 to 256.');
    const k = Number(challenges.value);
    if (!Number.isInteger(k) || k < 1 || k > 16) throw new Error('Chunks per period must be a whole number from 1 to 16.');
    if (!Number.isInteger(len) || len < 1) throw new Error('Blocks per period must be a whole number of at least 1.');
    const each = parseEthField(price.value, 'price', '0.0001');
    const root = merkleRoot(bytes);
    await requireSession(app);
    notice(status, 'info', `Root ${root} computed here. Uploading the file…`);
    const blob = await putBlob(bytes);
    const registered = await postJson<{ root: Hex; size: number }>('/v1/storage/files', { blobHash: blob });
    if (registered.root !== root) throw new Error(`The coordinator computed the root ${registered.root}, this page ${root}; not funding.`);
    const value = each * BigInt(n);
    notice(status, 'info', `Confirm the payment of ${eth(value)} (${n} × ${eth(each)}) in your wallet…`);
    const receipt = await send(app, 'market', 'createStorageDeal', [root, BigInt(bytes.length), n, len, each, k, (provider.value || zeroAddress) as Hex], value, (tx) =>
      notice(status, 'info', `Sent ${tx}; waiting for the block…`),
    );
    const [created] = parseEventLogs({ abi: storageMarketAbi, eventName: 'StorageDealCreated', logs: receipt.logs });
    notice(status, 'ok', `Deal ${created.args.dealId} funded with root ${root}.`);
    location.hash = `#/deal/${created.args.dealId}`;
  });
  return form;
}

async function myWork(app: App): Promise<HTMLElement> {
  const who = account(app);
  if (!who) return h('section', {}, h('h2', {}, 'Your jobs and deals'), h('p', {}, 'Connect a wallet to see the jobs and deals you funded.'));
  const [{ jobs }, { deals }] = await Promise.all([
    api<{ jobs: Job[] }>(`/v1/jobs?buyer=${who}&limit=50`),
    api<{ deals: Deal[] }>(`/v1/storage/deals?buyer=${who}`),
  ]);
  return h(
    'section',
    { 'aria-labelledby': 'mine' },
    h('h2', { id: 'mine' }, 'Your jobs and deals'),
    jobs.length
      ? table(
          ['Job', 'Status', 'Budget', 'Replicas', 'Spec'],
          jobs.map((j) => [link(`/job/${j.jobId}`, `Job ${j.jobId}`), j.status, eth(j.budget), j.redundancy, code(j.specHash)]),
          'Compute jobs',
        )
      : h('p', {}, 'No compute jobs yet.'),
    deals.length
      ? table(
          ['Deal', 'Status', 'Size', 'Periods', 'Root'],
          deals.map((d) => [link(`/deal/${d.dealId}`, `Deal ${d.dealId}`), d.status, `${d.size} B`, d.periods, code(d.root)]),
          'Storage deals',
        )
      : h('p', {}, 'No storage deals yet.'),
  );
}

// A job's page: its timeline from escrow locked to released or refunded, live (SSE), with the
// transactions; the outputs to download; "verify in browser" (re-hash, compare with the digest on
// chain); challenge the settlement with the bond; reclaim after the deadline.

import { type Hex, decodeFunctionData } from 'viem';

import { jobEscrowAbi } from '../abi';
import { type Job, type Receipt, api, getBlob } from '../api';
import { type App, CHALLENGE_STATUS, JOB_STATUS, chainNow, link, readEscrow, send } from '../app';
import { explain } from '../errors';
import { resultDigest } from '../hash';
import { action, code, eth, h, pageId, table, when } from '../ui';

interface ChainJob {
  job: { specHash: Hex; buyer: Hex; token: Hex; budget: bigint; deadline: bigint; redundancy: number; preferredProvider: Hex };
  created?: Hex;
  settled?: { tx: Hex; batchId: bigint; windowEnd: bigint; digest: Hex; index: number; outcome: unknown };
  finalized?: Hex;
  reclaimed?: Hex;
  challenged?: Hex;
  challengeStatus?: string;
  resolved?: Hex;
}

/** Everything the chain says about job `id`, from the escrow's events. */
async function chainJob(app: App, id: bigint): Promise<ChainJob | undefined> {
  const fromBlock = BigInt(app.info.deployBlock);
  const address = app.info.jobEscrow;
  const created = await app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ComputeJobCreated', args: { jobId: id }, fromBlock });
  if (!created.length) return undefined;
  const out: ChainJob = { job: created[0].args.job as ChainJob['job'], created: created[0].transactionHash };
  const settled = await app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ComputeBatchSettled', fromBlock });
  for (const log of settled) {
    const outcome = log.args.outcome as { jobIds: readonly bigint[] };
    const index = outcome.jobIds.findIndex((j) => j === id);
    if (index >= 0) {
      out.settled = { tx: log.transactionHash, batchId: log.args.batchId as bigint, windowEnd: log.args.windowEnd as bigint, digest: (log.args.resultDigests as Hex[])[index], index, outcome: log.args.outcome };
    }
  }
  if (out.settled) {
    const fin = await app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ComputeBatchFinalized', args: { batchId: out.settled.batchId }, fromBlock });
    out.finalized = fin[0]?.transactionHash;
  }
  const reclaimed = await app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ComputeJobReclaimed', args: { jobId: id }, fromBlock });
  out.reclaimed = reclaimed[0]?.transactionHash;
  const challenged = await app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ComputeJobChallenged', args: { jobId: id }, fromBlock });
  out.challenged = challenged[0]?.transactionHash;
  if (out.challenged) {
    const ch = await readEscrow<{ status: number }>(app, 'getChallenge', [id]);
    out.challengeStatus = CHALLENGE_STATUS[ch.status] ?? 'unknown';
    const resolved = await app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ChallengeResolved', args: { jobId: id }, fromBlock });
    out.resolved = resolved[0]?.transactionHash;
  }
  return out;
}

const tx = (hash: Hex | undefined) => (hash ? link(`/tx/${hash}`, code(hash)) : null);

type Step = { title: string; state: 'done' | 'now' | 'later' | 'failed'; body: (Node | string | null)[] };

function stepList(steps: Step[]): HTMLElement {
  return h(
    'ol',
    { class: 'timeline', 'aria-label': 'Job timeline' },
    ...steps.map((s) => h('li', { class: s.state, 'data-step': s.title }, h('strong', {}, s.title), h('span', { class: 'sr' }, ` (${s.state})`), ' ', ...s.body)),
  );
}

export async function jobPage(app: App, main: HTMLElement, idText: string): Promise<() => void> {
  const id = pageId(main, idText, 'job');
  if (id === undefined) return () => {};
  const body = h('div', { 'aria-live': 'polite' });
  const actions = h('section', { 'aria-labelledby': 'actions' });
  main.append(h('h1', {}, `Job ${id}`), body, actions);
  let timer: number | undefined;
  let busy = false;

  const render = async () => {
    if (busy) return;
    busy = true;
    try {
      const [job, onchain, status, now] = await Promise.all([
        api<Job>(`/v1/jobs/${id}`).catch(() => undefined),
        chainJob(app, id),
        readEscrow<number>(app, 'computeJobStatus', [id]),
        chainNow(app),
      ]);
      body.replaceChildren(...view(job, onchain, JOB_STATUS[status] ?? 'unknown', now));
      if (!actions.childElementCount) actions.append(...actionsFor(app, id, render));
      for (const b of actions.querySelectorAll<HTMLButtonElement>('button[data-when]')) {
        b.hidden = !b.dataset.when?.split(' ').includes(JOB_STATUS[status]);
      }
      window.clearTimeout(timer);
      // The countdown moves every second while the window is open; otherwise SSE and a slow poll.
      timer = window.setTimeout(render, onchain?.settled && status === 2 ? 1000 : 3000);
    } catch (e) {
      body.replaceChildren(h('p', { role: 'alert', class: 'notice error' }, explain(e)));
      timer = window.setTimeout(render, 3000);
    } finally {
      busy = false;
    }
  };
  const events = new EventSource(`/v1/events?job=${id}`);
  events.addEventListener('update', () => void render());
  await render();
  return () => {
    events.close();
    window.clearTimeout(timer);
  };
}

function view(job: Job | undefined, c: ChainJob | undefined, status: string, now: number): Node[] {
  if (!c) return [h('p', { role: 'alert', class: 'notice error' }, 'The escrow has no such job.')];
  const t = job?.timeline ?? [];
  const has = (k: string) => t.some((e) => e.kind === k);
  const leased = t.filter((e) => e.kind === 'leased');
  const verdict = t.find((e) => e.kind === 'verdict');
  const ended = status === 'finalized' || status === 'refunded' || status === 'reclaimed';
  const receipts: Receipt[] = job?.receipts ?? [];
  const windowLeft = c.settled ? Number(c.settled.windowEnd) - now : 0;
  const steps: Step[] = [
    { title: 'Escrow locked', state: 'done', body: [`${eth(c.job.budget)} from `, code(c.job.buyer), ' · ', tx(c.created)] },
    {
      title: 'Assigned',
      state: leased.length ? 'done' : ended ? 'failed' : 'now',
      body: leased.length ? leased.flatMap((e, i) => [i ? ', ' : '', code(String(e.detail?.provider))]) : [job?.reason ?? 'waiting for providers'],
    },
    { title: 'Executing', state: has('running') || receipts.length ? 'done' : leased.length ? 'now' : 'later', body: [] },
    {
      title: 'Receipts',
      state: receipts.length >= c.job.redundancy ? 'done' : has('running') ? 'now' : 'later',
      body: [`${receipts.length} of ${c.job.redundancy} replicas revealed`],
    },
    {
      title: 'Verified',
      state: verdict || c.settled ? 'done' : receipts.length ? 'now' : 'later',
      body: verdict ? [`${verdict.detail?.outcome}: digest `, code(String(verdict.detail?.resultDigest ?? ''))] : [],
    },
    {
      title: 'Challenge window',
      state: c.settled ? (windowLeft > 0 && status === 'settled' ? 'now' : 'done') : 'later',
      body: c.settled
        ? [
            `batch ${c.settled.batchId} · `,
            tx(c.settled.tx),
            ' · ',
            h('span', { 'data-testid': 'countdown' }, windowLeft > 0 ? `closes in ${windowLeft} s` : 'closed'),
            c.challenged ? h('span', {}, ' · challenged ', tx(c.challenged), ' · challenge ', h('strong', { 'data-testid': 'challenge-status' }, c.challengeStatus ?? '')) : null,
          ]
        : [],
    },
    {
      title: status === 'refunded' ? 'Refunded' : status === 'reclaimed' ? 'Reclaimed' : 'Released',
      state: ended ? (status === 'finalized' ? 'done' : 'failed') : 'later',
      body: [status === 'finalized' ? '90% to the winning providers, 10% to the treasury · ' : '', tx(c.finalized ?? c.resolved ?? c.reclaimed)],
    },
  ];
  return [
    h('p', {}, 'On chain: ', h('strong', { 'data-testid': 'chain-status' }, status), job ? ` · coordinator: ${job.status}` : ''),
    stepList(steps),
    receipts.length
      ? table(
          ['Provider', 'Result digest', 'Fuel', 'Exit', 'Outputs'],
          receipts.map((r) => [
            code(r.worker),
            code(r.resultDigest),
            r.fuelUsed,
            r.exitCode,
            h(
              'span',
              {},
              h('a', { href: `/v1/blobs/${r.stdoutHash}`, download: `stdout-${r.worker}.txt` }, 'stdout'),
              ...r.outputs.flatMap((o) => [' · ', h('a', { href: `/v1/blobs/${o.hash}`, download: o.path.replaceAll('/', '_') }, o.path)]),
            ),
          ]),
          'Receipts per replica',
        )
      : h('p', {}, 'No receipts yet.'),
    h('p', {}, `Deadline ${new Date(Number(c.job.deadline) * 1000).toLocaleString()} · updated ${when(Date.now())}`),
  ];
}

function actionsFor(app: App, id: bigint, render: () => Promise<void>): Node[] {
  const out = h('p', { class: 'notice', 'data-testid': 'action-status' });
  const run = (f: () => Promise<string>) => action(out, f, render);
  return [
    h('h2', { id: 'actions' }, 'Check and act'),
    h('button', { 'data-when': 'settled challenged finalized', onclick: run(() => verifyInBrowser(app, id)) }, 'Verify in browser'),
    h('button', { 'data-when': 'settled', onclick: run(() => challenge(app, id)) }, 'Challenge the settlement (bond)'),
    h('button', { 'data-when': 'open', onclick: run(() => reclaim(app, id)) }, 'Reclaim the budget'),
    out,
  ];
}

/** Downloads the output behind the settled digest, re-hashes it here and compares with the chain. */
export async function verifyInBrowser(app: App, id: bigint): Promise<string> {
  const c = await chainJob(app, id);
  if (!c?.settled) throw new Error('The job is not settled on chain: there is no digest to compare with yet.');
  const job = await api<Job>(`/v1/jobs/${id}`);
  const r = job.receipts.find((x) => x.resultDigest === c.settled?.digest);
  if (!r) throw new Error(`No receipt carries the settled digest ${c.settled.digest}.`);
  const stdout = await getBlob(r.stdoutHash);
  const files: [string, Uint8Array][] = [];
  for (const o of r.outputs) files.push([o.path, await getBlob(o.hash)]);
  const digest = resultDigest(r.exitCode, stdout, files);
  if (digest !== c.settled.digest) throw new Error(`Mismatch: the output hashes to ${digest} here, the chain settled ${c.settled.digest}.`);
  return `Verified in this browser: stdout and ${files.length} file(s) hash to ${digest}, the digest settled on chain.`;
}

/** Challenges the job's settlement: the proof is rebuilt from the settling transaction's input. */
async function challenge(app: App, id: bigint): Promise<string> {
  const c = await chainJob(app, id);
  if (!c?.settled) throw new Error('The job has no settlement to challenge.');
  const settleTx = await app.client.getTransaction({ hash: c.settled.tx });
  const { functionName, args } = decodeFunctionData({ abi: jobEscrowAbi, data: settleTx.input });
  if (functionName !== 'settleComputeJobs') throw new Error(`The settlement came in a ${functionName} call; this page rebuilds proofs from settleComputeJobs only.`);
  const [batch, jobs] = args as unknown as [{ settlements: readonly unknown[] }, readonly unknown[]];
  const index = (batch.settlements as { jobId: bigint }[]).findIndex((s) => s.jobId === id);
  const settlementHashes = [];
  for (const s of batch.settlements) settlementHashes.push(await readEscrow<Hex>(app, 'hashSettlement', [s]));
  const params = await readEscrow<{ challengeBond: bigint }>(app, 'params');
  const proof = { batchId: c.settled.batchId, job: jobs[index], outcome: c.settled.outcome, settlementHashes, index: BigInt(index), settlement: batch.settlements[index] };
  await send(app, 'escrow', 'challenge', [id, proof], params.challengeBond);
  return `Challenged with a bond of ${eth(params.challengeBond)}: the committee re-runs the job; a wrong result is overturned and the bond comes back.`;
}

async function reclaim(app: App, id: bigint): Promise<string> {
  const c = await chainJob(app, id);
  if (!c) throw new Error('The escrow has no such job.');
  // The escrow decides whether the deadline has passed (its clock is the chain's); its refusal,
  // JobEscrow_DeadlineNotReached, is shown by name with what to do.
  await send(app, 'escrow', 'reclaim', [id, c.job]);
  return `Reclaimed ${eth(c.job.budget)}: it is in your escrow balance; withdraw it under Balances in the buyer workspace.`;
}

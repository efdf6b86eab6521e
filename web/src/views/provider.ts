// Provider workspace: the eligible queue, jobs in flight, utilization, stake, withdrawable balances,
// revenue queued in open challenge windows, reliability and the earnings feed, all for the connected
// account (assignments need a Sign-In with Ethereum session).

import type { Hex } from 'viem';

import { jobEscrowAbi } from '../abi';
import { type Job, type Provider, api } from '../api';
import { type App, account, link, readRegistry } from '../app';
import { code, eth, h, table, when } from '../ui';
import { balances } from './balances';

interface ChainProvider {
  stake: bigint;
  unbonding: bigint;
  registered: boolean;
  unbondingEndsAt: bigint;
  jobsCompleted: bigint;
  jobsFailed: bigint;
  timesSlashed: number;
}

interface Outcome {
  providers: readonly { provider: Hex; payout: bigint; completed: bigint; failed: bigint }[];
}

export async function providerPage(app: App, main: HTMLElement): Promise<void> {
  main.append(h('h1', {}, 'Provider workspace'));
  const who = account(app);
  if (!who) {
    main.append(h('p', {}, 'Connect the wallet of your worker’s account to see its queue, stake and earnings.'));
    return;
  }
  const me = who.toLowerCase();
  const chain = await readRegistry<ChainProvider>(app, 'getProvider', [who]);
  if (!chain.registered) {
    main.append(h('p', { role: 'alert', class: 'notice error' }, `${who} is not a registered provider. Register with \`qor-worker register --stake 1ether\`, then come back.`));
    return;
  }
  const { providers } = await api<{ providers: Provider[] }>('/v1/providers');
  const p = providers.find((x) => x.address === me);
  const utilization = p && p.capacity ? Math.round((100 * p.busy) / p.capacity) : 0;
  main.append(
    h(
      'section',
      { 'aria-labelledby': 'standing' },
      h('h2', { id: 'standing' }, 'Stake and reliability'),
      table(
        ['Stake', 'Unbonding', 'Completed', 'Failed', 'Slashed', 'Price'],
        [[eth(chain.stake), chain.unbonding ? `${eth(chain.unbonding)} until ${new Date(Number(chain.unbondingEndsAt) * 1000).toLocaleString()}` : '—', h('span', { 'data-testid': 'completed' }, String(chain.jobsCompleted)), String(chain.jobsFailed), String(chain.timesSlashed), p ? `${p.pricePerFuel} wei/fuel` : '—']],
      ),
      h(
        'p',
        {},
        p ? `Worker ${p.live ? 'live' : 'offline'} (last heartbeat ${when(p.lastHeartbeat)}), region ${p.region}. ` : 'The worker has not checked in with the coordinator. ',
        'Utilization: ',
        h('meter', { min: 0, max: p?.capacity ?? 1, value: p?.busy ?? 0, 'aria-label': 'job slots in use' }),
        ` ${p?.busy ?? 0} of ${p?.capacity ?? 0} job slots (${utilization}%)`,
      ),
    ),
    await balances(app, who),
    await revenue(app, me),
    await queue(app, p),
    await inFlight(app),
  );
}

/** Settled batches paying this provider: queued while their window is open, earnings once finalized. */
async function revenue(app: App, me: string): Promise<HTMLElement> {
  const fromBlock = BigInt(app.info.deployBlock);
  const address = app.info.jobEscrow;
  const [settled, finalized] = await Promise.all([
    app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ComputeBatchSettled', fromBlock }),
    app.client.getContractEvents({ address, abi: jobEscrowAbi, eventName: 'ComputeBatchFinalized', fromBlock }),
  ]);
  const done = new Map(finalized.map((f) => [f.args.batchId as bigint, f]));
  let queued = 0n;
  const feed: { batch: bigint; payout: bigint; jobs: number; tx: Hex; block: bigint }[] = [];
  for (const s of settled) {
    const outcome = s.args.outcome as unknown as Outcome & { jobIds: readonly bigint[] };
    const mine = outcome.providers.find((x) => x.provider.toLowerCase() === me);
    if (!mine) continue;
    const fin = done.get(s.args.batchId as bigint);
    if (fin) feed.push({ batch: s.args.batchId as bigint, payout: mine.payout, jobs: Number(mine.completed), tx: fin.transactionHash, block: fin.blockNumber });
    else queued += mine.payout;
  }
  feed.sort((a, b) => Number(b.block - a.block));
  const total = feed.reduce((t, f) => t + f.payout, 0n);
  return h(
    'section',
    { 'aria-labelledby': 'earnings' },
    h('h2', { id: 'earnings' }, 'Earnings'),
    h('p', {}, 'Queued in open challenge windows: ', h('strong', { 'data-testid': 'queued' }, eth(queued)), ' · paid out so far: ', h('strong', { 'data-testid': 'earned' }, eth(total))),
    feed.length
      ? table(['Batch', 'Jobs won', 'Payout', 'Block', 'Transaction'], feed.map((f) => [String(f.batch), f.jobs, eth(f.payout), String(f.block), link(`/tx/${f.tx}`, code(f.tx))]), 'Earnings feed')
      : h('p', {}, 'No finalized earnings yet.'),
  );
}

/** Funded jobs waiting for providers, and whether this provider's price fits each one's budget. */
async function queue(app: App, p: Provider | undefined): Promise<HTMLElement> {
  const [matching, unmatched] = await Promise.all([api<{ jobs: Job[] }>('/v1/jobs?status=matching&limit=20'), api<{ jobs: Job[] }>('/v1/jobs?status=unmatched&limit=20')]);
  const jobs = [...matching.jobs, ...unmatched.jobs];
  const rows = [];
  for (const j of jobs) {
    const spec = await api<{ spec: { limits: { fuel: number } } }>(`/v1/specs/${j.specHash}`).catch(() => undefined);
    const fuel = BigInt(spec?.spec.limits.fuel ?? 0);
    const cost = p ? BigInt(p.pricePerFuel) * fuel * BigInt(j.redundancy) : 0n;
    const fits = p && spec ? cost <= BigInt(j.budget) : false;
    rows.push([link(`/job/${j.jobId}`, `Job ${j.jobId}`), eth(j.budget), j.redundancy, spec ? String(fuel) : '—', fits ? 'yes' : `no (${eth(cost)} at your price)`, j.reason ?? '']);
  }
  return h(
    'section',
    { 'aria-labelledby': 'queue' },
    h('h2', { id: 'queue' }, 'Eligible queue'),
    rows.length ? table(['Job', 'Budget', 'Replicas', 'Fuel limit', 'Your price fits', 'Why it waits'], rows) : h('p', {}, 'No funded job is waiting for providers.'),
  );
}

async function inFlight(app: App): Promise<HTMLElement> {
  const section = h('section', { 'aria-labelledby': 'flight' }, h('h2', { id: 'flight' }, 'Jobs in flight'));
  if (!app.session) {
    section.append(h('p', {}, 'Sign in with Ethereum (the button at the top) to see your worker’s assignments.'));
    return section;
  }
  const me = await api<{ assignments: { assignment: number; jobId: string; status: string; leaseExpiresAt: number; updatedAt: number }[] }>('/v1/me');
  const live = me.assignments.filter((a) => a.status === 'leased' || a.status === 'sealed');
  section.append(
    live.length ? table(['Job', 'Status', 'Lease ends'], live.map((a) => [link(`/job/${a.jobId}`, `Job ${a.jobId}`), a.status, when(a.leaseExpiresAt)])) : h('p', {}, 'No job in flight right now.'),
    h('p', {}, `${me.assignments.length} assignment(s) in all; ${me.assignments.filter((a) => a.status === 'revealed').length} revealed.`),
  );
  return section;
}

// Withdrawable balances per token with a withdraw button: the escrow and the storage market pull, never
// push, so providers (earnings), buyers (refunds, unspent budget) and the treasury all withdraw here.
// ETH credited by the storage market (deal payments, refunds, slashed collateral) is its own row.

import { type Hex, zeroAddress } from 'viem';

import { jobEscrowAbi } from '../abi';
import { type App, readEscrow, readMarket, send } from '../app';
import { explain } from '../errors';
import { eth, h, notice, table } from '../ui';

/** The tokens an account may hold in the escrow: ETH, and any token a job of the market was funded in. */
async function tokens(app: App): Promise<Hex[]> {
  const created = await app.client.getContractEvents({ address: app.info.jobEscrow, abi: jobEscrowAbi, eventName: 'ComputeJobCreated', fromBlock: BigInt(app.info.deployBlock) });
  const set = new Set<Hex>([zeroAddress]);
  for (const l of created) set.add(((l.args.job as { token: Hex }).token ?? zeroAddress).toLowerCase() as Hex);
  return [...set];
}

export async function balances(app: App, who: Hex, done?: string): Promise<HTMLElement> {
  const section = h('section', { 'aria-labelledby': 'balances' }, h('h2', { id: 'balances' }, 'Withdrawable balances'));
  const status = h('p', { class: 'notice', 'data-testid': 'withdraw-status' });
  if (done) notice(status, 'ok', done);
  const rows = [];
  for (const token of await tokens(app)) {
    const amount = await readEscrow<bigint>(app, 'balanceOf', [who, token]);
    const name = token === zeroAddress ? 'ETH' : token;
    const button = h('button', { disabled: amount === 0n, 'aria-label': `Withdraw ${name}` }, 'Withdraw');
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        notice(status, 'info', 'Confirm the withdrawal in your wallet…');
        await send(app, 'escrow', 'withdraw', [token]);
        section.replaceWith(await balances(app, who, `Withdrew ${token === zeroAddress ? eth(amount) : `${amount} units of ${token}`} to your account.`));
      } catch (e) {
        notice(status, 'error', explain(e));
        button.disabled = false;
      }
    });
    rows.push([name, h('span', { 'data-testid': `balance-${name}` }, token === zeroAddress ? eth(amount) : String(amount)), button]);
  }
  const stored = await readMarket<bigint>(app, 'balanceOf', [who]);
  const fromMarket = h('button', { disabled: stored === 0n, 'aria-label': 'Withdraw storage payments' }, 'Withdraw');
  fromMarket.addEventListener('click', async () => {
    fromMarket.disabled = true;
    try {
      notice(status, 'info', 'Confirm the withdrawal in your wallet…');
      await send(app, 'market', 'withdraw', []);
      section.replaceWith(await balances(app, who, `Withdrew ${eth(stored)} from the storage market to your account.`));
    } catch (e) {
      notice(status, 'error', explain(e));
      fromMarket.disabled = false;
    }
  });
  rows.push(['ETH (storage)', h('span', { 'data-testid': 'balance-ETH-storage' }, eth(stored)), fromMarket]);
  section.append(table(['Token', 'Balance', ''], rows), status);
  return section;
}

// Errors a person understands: a refused signature, a wrong network, too little balance and a revert
// (by the contract's error name, with what to do) each get their own message.

import {
  BaseError,
  ContractFunctionRevertedError,
  InsufficientFundsError,
  UserRejectedRequestError,
  formatEther,
} from 'viem';

import { ApiError } from './api';

/** What to do about each of the escrow's, the storage market's and the registry's custom errors. */
const HINTS: Record<string, string> = {
  JobEscrow_ZeroBudget: 'Set a budget above zero.',
  JobEscrow_InvalidRedundancy: 'Choose between 1 and the maximum number of replicas.',
  JobEscrow_DeadlineInPast: 'Pick a deadline in the future (the chain’s clock decides).',
  JobEscrow_WrongValue: 'The ETH sent must equal the budget; try again from this page.',
  JobEscrow_InvalidJobStatus: 'The job is not in a state that allows this any more; reload the page.',
  JobEscrow_DeadlinePassed: 'The deadline has passed; reclaim the budget instead.',
  JobEscrow_DeadlineNotReached: 'You can reclaim only after the deadline; wait until it passes.',
  JobEscrow_ChallengeWindowClosed: 'The challenge window has closed; the result stands.',
  JobEscrow_ChallengeWindowOpen: 'The challenge window is still open; wait for it to close.',
  JobEscrow_NothingToChallenge: 'The job has no settlement to challenge yet.',
  StorageMarket_InvalidDealParameter: 'Check the deal’s periods, period length and price (at least the market’s minimum).',
  StorageMarket_NothingToWithdraw: 'There is nothing to withdraw from the storage market yet.',
  StorageMarket_Unauthorized: 'Only the account named in the error may do this; switch accounts in your wallet.',
  StorageMarket_ProviderNotActive: 'The preferred provider is not active; choose another or leave it open.',
  StorageMarket_ProviderInGoodStanding: 'The provider has not missed enough periods in a row to be dropped; wait, or let the deal run.',
  JobEscrow_NothingToWithdraw: 'There is nothing to withdraw in this token yet.',
  JobEscrow_SettlementNotInBatch: 'The settlement proof did not match the batch; reload and try again.',
};

/** One sentence (or two) for a person, from whatever the wallet, the chain or the coordinator threw. */
export function explain(e: unknown): string {
  if (e instanceof ApiError) {
    return e.field ? `The coordinator refused ${e.field}: ${e.message}` : `The coordinator said: ${e.message}`;
  }
  if (e instanceof BaseError) {
    const rejected = e.walk((x) => x instanceof UserRejectedRequestError || (x as { code?: number }).code === 4001);
    if (rejected) return 'You rejected the request in your wallet. Nothing was signed or sent.';
    const revert = e.walk((x) => x instanceof ContractFunctionRevertedError) as ContractFunctionRevertedError | null;
    if (revert?.data?.errorName) {
      const args = (revert.data.args ?? []).map((a) => (typeof a === 'bigint' ? a.toString() : JSON.stringify(a))).join(', ');
      const hint = HINTS[revert.data.errorName] ?? '';
      return `The contract refused it: ${revert.data.errorName}(${args}). ${hint}`.trim();
    }
    if (revert) return `The contract refused it: ${revert.reason ?? revert.shortMessage}`;
    const funds = e.walk((x) => x instanceof InsufficientFundsError);
    if (funds) return 'Your account’s balance does not cover the amount plus gas. Fund the account, or lower the amount.';
    const chain = e.walk((x) => /ChainMismatch|chain mismatch|SwitchChain/i.test((x as Error).name ?? '') || /does not match the target chain/i.test((x as Error).message ?? ''));
    if (chain) return 'Your wallet is on another network. Switch it to the market’s chain (the Connect button offers to) and try again.';
    return e.shortMessage;
  }
  if ((e as { code?: number })?.code === 4001) return 'You rejected the request in your wallet. Nothing was signed or sent.';
  return (e as Error)?.message ?? String(e);
}

/** A clear refusal before anything is sent: the balance is below what the action locks. */
export function insufficient(balance: bigint, needed: bigint): string {
  return `Your balance is ${formatEther(balance)} ETH; this needs ${formatEther(needed)} ETH plus gas. Fund the account or lower the amount.`;
}

// The price quote a buyer sees before paying, and the messages a person gets for each kind of failure.

import { BaseError, ContractFunctionRevertedError, InsufficientFundsError, UserRejectedRequestError, encodeErrorResult } from 'viem';
import { describe, expect, it } from 'vitest';

import { jobEscrowAbi } from '../src/abi';
import { ApiError, type Provider } from '../src/api';
import { explain, insufficient } from '../src/errors';
import { quote } from '../src/views/buyer';

const provider = (address: string, price: number, live = true): Provider =>
  ({ address, pricePerFuel: String(price), live, stake: '1', capacity: 4, busy: 0, region: 'local', completed: 0, failed: 0, slashed: 0, lastHeartbeat: 0 }) as Provider;

describe('quote', () => {
  const market = [provider('0xa', 30), provider('0xb', 10), provider('0xc', 20), provider('0xd', 1, false)];

  it('prices the cheapest live providers at the highest of their prices, as the verifier settles', () => {
    const q = quote(market, 2, 1000n, '');
    if (typeof q === 'string') throw new Error(q);
    expect(q.providers.map((p) => p.address)).toEqual(['0xb', '0xc']);
    expect(q.price).toBe(20n * 1000n * 2n);
  });

  it('puts a preferred provider first, even when it is dearer', () => {
    const q = quote(market, 2, 1000n, '0xa');
    if (typeof q === 'string') throw new Error(q);
    expect(q.providers.map((p) => p.address)).toEqual(['0xa', '0xb']);
    expect(q.price).toBe(30n * 1000n * 2n);
  });

  it('says when there are not enough live providers', () => {
    expect(quote(market, 4, 1000n, '')).toMatch(/Only 3 live provider\(s\); 4 replicas need 4/);
  });
});

describe('explain', () => {
  it('names a revert by the contract error, with its arguments and what to do', () => {
    const data = encodeErrorResult({ abi: jobEscrowAbi, errorName: 'JobEscrow_DeadlineNotReached', args: [7n, 1000n, 900n] });
    const revert = new ContractFunctionRevertedError({ abi: jobEscrowAbi, data, functionName: 'reclaim' });
    const text = explain(new BaseError('call failed', { cause: revert }));
    expect(text).toBe('The contract refused it: JobEscrow_DeadlineNotReached(7, 1000, 900). You can reclaim only after the deadline; wait until it passes.');
  });

  it('tells a rejected signature, too little balance and a coordinator refusal apart', () => {
    expect(explain(new UserRejectedRequestError(new Error('no')))).toMatch(/You rejected the request in your wallet/);
    expect(explain({ code: 4001, message: 'User rejected' })).toMatch(/You rejected the request/);
    expect(explain(new InsufficientFundsError())).toMatch(/balance does not cover/);
    expect(explain(new ApiError(400, 'invalid_spec', 'limits.fuel: must be above 0', 'limits.fuel'))).toBe('The coordinator refused limits.fuel: limits.fuel: must be above 0');
    expect(insufficient(10n ** 18n, 3n * 10n ** 18n)).toBe('Your balance is 1 ETH; this needs 3 ETH plus gas. Fund the account or lower the amount.');
  });
});

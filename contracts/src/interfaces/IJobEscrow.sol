// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IJobEscrow
/// @notice Buyers lock payment here for compute jobs; nothing is paid until the verifier
/// committee has checked the work. Compute jobs settle in batches under one M-of-N committee signature,
/// sit in a challenge window, and are finalized by anyone: 90% of the price to the winning replicas,
/// the protocol fee to the treasury, the unused budget back to the buyer, minority replicas slashed.
/// Storage deals live in {IStorageMarket}, which shares the registry and the committee.
/// Every payment is credited to a balance and pulled with `withdraw`.
///
/// @dev Gas shapes the storage layout. A compute job is stored as one slot: the keccak commitment of its
/// `ComputeJob` record, which later calls pass back in full (like a Uniswap v4 PoolKey), plus two status
/// bits packed 128 jobs to a word. A settled batch is stored as the hash of its `BatchOutcome`, the
/// payouts aggregated per provider, which the `ComputeBatchSettled` event carries and `finalize` takes.
/// Self-contained (no imports) so the Rust side can bind to it with alloy's `sol!`.
interface IJobEscrow {
    // ---------------------------------------------------------------- TYPES

    /// @notice The immutable record of a compute job, committed at creation and passed back to later calls.
    /// @param specHash keccak256 of the canonical JSON job spec.
    /// @param buyer Who funded the job and receives refunds.
    /// @param token ERC-20 the budget is in; address(0) for native ETH.
    /// @param budget Amount locked, in the token's smallest unit.
    /// @param deadline Unix time by which the job must settle; after it the buyer may reclaim.
    /// @param redundancy Number of distinct providers that must run the job.
    /// @param preferredProvider Provider the coordinator should try first; address(0) for open.
    struct ComputeJob {
        bytes32 specHash;
        address buyer;
        address token;
        uint256 budget;
        uint64 deadline;
        uint8 redundancy;
        address preferredProvider;
    }

    /// @notice The committee's verdict on one job (EIP-712 type `Settlement`).
    /// @param jobId The job.
    /// @param resultDigest The digest the majority agreed on; zero when there is no result (refund).
    /// @param price Amount charged, at most the budget; the rest goes back to the buyer.
    /// @param winners Bit i set: `providers[i]` of the batch is a winning replica.
    /// @param losers Bit i set: `providers[i]` of the batch is a losing replica (wrong digest or no reveal).
    struct Settlement {
        uint256 jobId;
        bytes32 resultDigest;
        uint256 price;
        uint256 winners;
        uint256 losers;
    }

    /// @notice What the committee signs to settle many jobs at once (EIP-712 type `SettlementBatch`).
    /// @param token Every job in the batch is in this token.
    /// @param providers The providers the settlements' bitmaps index into (at most 256).
    /// @param settlements One per job.
    /// @param validUntil The signatures are refused after this time.
    struct SettlementBatch {
        address token;
        address[] providers;
        Settlement[] settlements;
        uint64 validUntil;
    }

    /// @notice One provider's share of a settled batch.
    /// @param provider The provider.
    /// @param payout Amount credited at finalization.
    /// @param completed Jobs it won.
    /// @param failed Jobs it lost; each costs `slashPerFailure` of stake at finalization.
    struct ProviderOutcome {
        address provider;
        uint256 payout;
        uint64 completed;
        uint64 failed;
    }

    /// @notice Unused budget returned to a buyer at finalization.
    struct Refund {
        address buyer;
        uint256 amount;
    }

    /// @notice Everything finalization of a batch pays out, fixed at settlement. The escrow stores only its
    /// hash; `ComputeBatchSettled` carries it and `finalize` takes it back.
    /// @param token The batch's token.
    /// @param settlementsHash keccak256 of the concatenated EIP-712 struct hashes of the settlements.
    /// @param feeBps Protocol fee in basis points at settlement.
    /// @param slashPerFailure Stake slashed per lost job at settlement, in wei.
    /// @param treasury Where the fee and the minority slashes go, as at settlement.
    /// @param providers Per provider, aligned with `SettlementBatch.providers`.
    /// @param fee Protocol fee credited to the treasury.
    /// @param refunds Unused budgets, consecutive jobs of one buyer merged.
    /// @param jobIds The jobs settled, in batch order.
    struct BatchOutcome {
        address token;
        bytes32 settlementsHash;
        uint16 feeBps;
        uint96 slashPerFailure;
        address treasury;
        ProviderOutcome[] providers;
        uint256 fee;
        Refund[] refunds;
        uint256[] jobIds;
    }

    /// @notice What a challenger shows to dispute one job of a settled batch.
    /// @param batchId The batch that settled the job.
    /// @param job The job's record.
    /// @param outcome The batch's outcome, as emitted in `ComputeBatchSettled`.
    /// @param settlementHashes EIP-712 struct hashes of every settlement in the batch, in order.
    /// @param index Position of the disputed settlement in the batch.
    /// @param settlement The disputed settlement.
    struct ChallengeProof {
        uint256 batchId;
        ComputeJob job;
        BatchOutcome outcome;
        bytes32[] settlementHashes;
        uint256 index;
        Settlement settlement;
    }

    /// @notice A worker's signed statement of what it computed (EIP-712 type `Receipt`, signed under the
    /// escrow's domain). Checked off chain by the verifier; defined here so every side hashes it the same
    /// way: `Receipt(uint256 jobId,bytes32 specHash,address worker,bytes32 resultDigest,bytes32 stdoutHash,uint32 exitCode,uint64 fuelUsed)`.
    /// @param specHash The spec the worker ran, which must be the job's on-chain `specHash`: a receipt
    /// binds the program, so no coordinator can make a replica run another one unnoticed.
    struct Receipt {
        uint256 jobId;
        bytes32 specHash;
        address worker;
        bytes32 resultDigest;
        bytes32 stdoutHash;
        uint32 exitCode;
        uint64 fuelUsed;
    }

    /// @notice Where a compute job is. Only moves forward.
    enum ComputeJobStatus {
        None,
        Open,
        Settled,
        Challenged,
        Finalized,
        Refunded,
        Reclaimed
    }

    /// @notice Where a challenge is.
    enum ChallengeStatus {
        None,
        Pending,
        Upheld,
        Rejected,
        Expired
    }

    /// @notice A settled batch.
    struct ComputeBatch {
        bytes32 outcomeHash;
        uint64 windowEnd;
        uint32 challenges;
        bool finalized;
    }

    /// @notice A dispute over one job.
    struct Challenge {
        address challenger;
        uint96 bond;
        uint64 batchId;
        uint64 resolveBy;
        ChallengeStatus status;
        uint16 feeBps;
        uint96 slashPerFailure;
        address buyer;
        address token;
        uint256 price;
        uint256 winnersMask;
        uint256 losersMask;
        address treasury;
    }

    /// @notice The replicas of a disputed job: who won and who lost its settlement.
    struct ChallengeParties {
        address[] winners;
        address[] losers;
    }

    /// @notice Owner-set parameters.
    /// @param treasury Receives the protocol fee and minority slashes.
    /// @param feeBps Protocol fee in basis points, at most `MAX_FEE_BPS`.
    /// @param challengeWindow Seconds a settled batch stays open to challenges.
    /// @param challengeResolutionPeriod Seconds the committee has to resolve a challenge.
    /// @param challengeBond Wei a challenger locks.
    /// @param minoritySlash Wei of stake slashed per compute job lost or per upheld challenge, at most
    /// `MAX_MINORITY_SLASH`.
    struct EscrowParams {
        address treasury;
        uint16 feeBps;
        uint32 challengeWindow;
        uint32 challengeResolutionPeriod;
        uint96 challengeBond;
        uint96 minoritySlash;
    }

    // ---------------------------------------------------------------- EVENTS

    /// @notice A buyer locked `job.budget` for job `jobId`.
    event ComputeJobCreated(uint256 indexed jobId, address indexed buyer, bytes32 indexed specHash, ComputeJob job);
    /// @notice The committee settled a batch; it can be challenged until `windowEnd`.
    /// @param resultDigests The agreed digest of each job, aligned with `outcome.jobIds`.
    event ComputeBatchSettled(
        uint256 indexed batchId, uint64 windowEnd, BatchOutcome outcome, bytes32[] resultDigests
    );
    /// @notice A settled batch was paid out.
    event ComputeBatchFinalized(uint256 indexed batchId);
    /// @notice Job `jobId` of a batch was not settled: its deadline had passed (`status` Open) or the
    /// buyer had reclaimed it (`status` Reclaimed) while the batch was in flight. The rest settled.
    event ComputeJobSkipped(uint256 indexed jobId, ComputeJobStatus status);
    /// @notice The buyer took back the budget of a job that did not settle by its deadline.
    event ComputeJobReclaimed(uint256 indexed jobId, address indexed buyer, uint256 amount);
    /// @notice `challenger` disputed job `jobId` with `bond` wei.
    event ComputeJobChallenged(uint256 indexed jobId, uint256 indexed batchId, address indexed challenger, uint256 bond);
    /// @notice The dispute over `jobId` ended with `status`.
    event ChallengeResolved(uint256 indexed jobId, ChallengeStatus status);
    /// @notice `account` withdrew `amount` of `token`.
    event Withdrawn(address indexed account, address indexed token, uint256 amount);
    /// @notice The owner changed the parameters.
    event ParamsSet(EscrowParams params);
    /// @notice The owner allowed (or stopped allowing) new jobs in `token`.
    event TokenAllowed(address indexed token, bool allowed);

    // ---------------------------------------------------------------- ERRORS

    /// @notice A zero address was given for `what`.
    error JobEscrow_ZeroAddress(string what);
    /// @notice The budget is zero.
    error JobEscrow_ZeroBudget();
    /// @notice The redundancy `redundancy` is not within 1..=`max`.
    error JobEscrow_InvalidRedundancy(uint8 redundancy, uint8 max);
    /// @notice The deadline `deadline` is not after now (`nowTimestamp`).
    error JobEscrow_DeadlineInPast(uint64 deadline, uint64 nowTimestamp);
    /// @notice `value` wei were sent, `expected` were required.
    error JobEscrow_WrongValue(uint256 value, uint256 expected);
    /// @notice The escrow received `received` of the token instead of `expected` (fee-on-transfer tokens
    /// are not supported).
    error JobEscrow_TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice `token` has no code, so it cannot be an ERC-20.
    error JobEscrow_NotAToken(address token);
    /// @notice `jobId` does not exist.
    error JobEscrow_UnknownJob(uint256 jobId);
    /// @notice The record passed for `jobId` does not match its commitment.
    error JobEscrow_JobRecordMismatch(uint256 jobId);
    /// @notice `jobId` is `status`, which does not allow this.
    error JobEscrow_InvalidJobStatus(uint256 jobId, ComputeJobStatus status);
    /// @notice `jobId`'s deadline `deadline` passed (it is `nowTimestamp`).
    error JobEscrow_DeadlinePassed(uint256 jobId, uint64 deadline, uint64 nowTimestamp);
    /// @notice `jobId`'s deadline `deadline` has not passed (it is `nowTimestamp`).
    error JobEscrow_DeadlineNotReached(uint256 jobId, uint64 deadline, uint64 nowTimestamp);
    /// @notice The batch is empty, or the job and settlement lists differ in length (`jobs`, `settlements`).
    error JobEscrow_InvalidBatchLength(uint256 jobs, uint256 settlements);
    /// @notice The batch names `count` providers; at most 256 are allowed and none may be zero or repeated.
    error JobEscrow_InvalidProviders(uint256 count);
    /// @notice Provider `provider` is not registered.
    error JobEscrow_ProviderNotRegistered(address provider);
    /// @notice `jobId` is in `token` but the batch is in `batchToken`.
    error JobEscrow_TokenMismatch(uint256 jobId, address token, address batchToken);
    /// @notice `jobId` was settled for `price`, above its budget `budget`.
    error JobEscrow_PriceAboveBudget(uint256 jobId, uint256 price, uint256 budget);
    /// @notice The settlement of `jobId` has an invalid `winners`/`losers` split for `redundancy`.
    error JobEscrow_InvalidVerdict(uint256 jobId, uint256 winners, uint256 losers, uint8 redundancy);
    /// @notice `batchId` does not exist.
    error JobEscrow_UnknownBatch(uint256 batchId);
    /// @notice The outcome passed for `batchId` does not match its hash.
    error JobEscrow_OutcomeMismatch(uint256 batchId);
    /// @notice `batchId` is already finalized.
    error JobEscrow_BatchFinalized(uint256 batchId);
    /// @notice `batchId`'s challenge window ends at `windowEnd` (it is `nowTimestamp`).
    error JobEscrow_ChallengeWindowOpen(uint256 batchId, uint64 windowEnd, uint64 nowTimestamp);
    /// @notice `batchId`'s challenge window ended at `windowEnd` (it is `nowTimestamp`).
    error JobEscrow_ChallengeWindowClosed(uint256 batchId, uint64 windowEnd, uint64 nowTimestamp);
    /// @notice The settlement shown is not the one the batch committed to at `index`.
    error JobEscrow_SettlementNotInBatch(uint256 batchId, uint256 index);
    /// @notice `jobId` settled with no result; there is nothing to dispute.
    error JobEscrow_NothingToChallenge(uint256 jobId);
    /// @notice `jobId`'s challenge is `status`, which does not allow this.
    error JobEscrow_InvalidChallengeStatus(uint256 jobId, ChallengeStatus status);
    /// @notice `jobId`'s challenge can be resolved by the committee until `resolveBy` (it is `nowTimestamp`).
    error JobEscrow_ChallengeNotExpired(uint256 jobId, uint64 resolveBy, uint64 nowTimestamp);
    /// @notice `jobId`'s challenge could be resolved until `resolveBy` (it is `nowTimestamp`); it can only expire.
    error JobEscrow_ChallengeExpired(uint256 jobId, uint64 resolveBy, uint64 nowTimestamp);
    /// @notice New jobs cannot be funded in `token` (not on the allow-list).
    error JobEscrow_TokenNotAllowed(address token);
    /// @notice The committee's signatures expired at `validUntil` (it is `nowTimestamp`).
    error JobEscrow_SignaturesExpired(uint64 validUntil, uint64 nowTimestamp);
    /// @notice The escrow always has an owner (its timelock): it cannot be renounced.
    error JobEscrow_OwnerRequired();
    /// @notice There is nothing to withdraw of `token`.
    error JobEscrow_NothingToWithdraw(address token);
    /// @notice Sending `amount` wei to `to` failed.
    error JobEscrow_TransferFailed(address to, uint256 amount);
    /// @notice A parameter `field` is out of range.
    error JobEscrow_InvalidParams(string field);
    /// @notice Native ETH is accepted only from the registry (slashed stake); `sender` sent some.
    error JobEscrow_UnexpectedEther(address sender);

    // ---------------------------------------------------------------- COMPUTE

    /// @notice Locks `budget` for a compute job. For ETH (`token == address(0)`) send exactly `budget` wei;
    /// for an ERC-20 approve the escrow first and send no ETH.
    /// @dev Requirements: budget > 0; 1 ≤ redundancy ≤ `MAX_REDUNDANCY`; deadline in the future; the escrow
    /// receives exactly `budget` (fee-on-transfer tokens revert). Emits `ComputeJobCreated`.
    /// @return jobId The new job's id (ids start at 1).
    function createComputeJob(
        bytes32 specHash,
        uint8 redundancy,
        address token,
        uint256 budget,
        uint64 deadline,
        address preferredProvider
    ) external payable returns (uint256 jobId);

    /// @notice Settles many jobs under one set of committee signatures over the EIP-712 `SettlementBatch`.
    /// Each job enters the batch's challenge window; nothing is paid until `finalize`.
    /// @dev Requirements: at most `MAX_BATCH_JOBS` jobs; signed until `batch.validUntil` or later; per
    /// job: `jobs[i]` is the record of `batch.settlements[i].jobId`, in `batch.token`; price ≤ budget;
    /// winners and losers are disjoint, the winners a strict majority of at least `redundancy` replicas,
    /// or no winners, no losers, price 0 and digest 0 for a refund. Every provider is registered. A job
    /// past its deadline (reclaimed or not) is skipped with `ComputeJobSkipped`, so it does not sink the
    /// rest; a job settled already reverts the batch, and so does a batch with nothing left to settle.
    /// Emits `ComputeBatchSettled` with the jobs settled.
    /// @param jobs The records of the jobs, aligned with `batch.settlements`.
    /// @param signatures Committee signatures over `hashSettlementBatch(batch)`, signers ascending.
    /// @return batchId The new batch's id.
    function settleComputeJobs(
        SettlementBatch calldata batch,
        ComputeJob[] calldata jobs,
        bytes[] calldata signatures
    ) external returns (uint256 batchId);

    /// @notice Pays out a batch after its challenge window: payouts to providers, the fee to the treasury,
    /// refunds to buyers, slashes for losers, reputation counters. Challenged jobs are left to their
    /// challenge. Anyone may call.
    /// @param outcome The batch's outcome exactly as emitted by `ComputeBatchSettled`.
    function finalize(uint256 batchId, BatchOutcome calldata outcome) external;

    /// @notice Disputes one settled job during its batch's challenge window, locking `challengeBond` wei.
    /// @dev Requirements: the job is settled with a result and not challenged yet; the window is open; the
    /// proof matches the batch. The job's payout is held back from `finalize` until the challenge ends.
    function challenge(uint256 jobId, ChallengeProof calldata proof) external payable;

    /// @notice Resolves a pending challenge with committee signatures over the EIP-712
    /// `ChallengeResolution(jobId, upheld)`, until its `resolveBy`. Upheld: the buyer gets the whole budget
    /// back, each winner is slashed `minoritySlash`, `CHALLENGER_SHARE_BPS` of it to the challenger and the
    /// rest to the buyer, and the challenger gets the bond back. Rejected: the job is paid as settled and
    /// the bond is shared among the winners.
    function resolveChallenge(uint256 jobId, bool upheld, bytes[] calldata signatures) external;

    /// @notice Ends a challenge the committee did not resolve in time: the job is paid as settled and the
    /// challenger gets the bond back. Anyone may call after `resolveBy`.
    function expireChallenge(uint256 jobId) external;

    /// @notice Gives the buyer back the whole budget of a job that did not settle by its deadline.
    /// Anyone may call; the budget is credited to the buyer.
    function reclaim(uint256 jobId, ComputeJob calldata job) external;

    // ---------------------------------------------------------------- PAYOUTS

    /// @notice Sends the caller its whole balance of `token` (address(0) for ETH).
    function withdraw(address token) external;

    // ---------------------------------------------------------------- ADMIN

    /// @notice Sets the parameters. Only the owner. Applies to batches settled afterwards. The challenge
    /// window and bond never go below what the escrow was deployed with (`minChallengeWindow`,
    /// `minChallengeBond`); the fee and the slash stay under their caps.
    function setParams(EscrowParams calldata params) external;

    /// @notice Allows (or stops allowing) new jobs in the ERC-20 `token`; jobs already funded in it are
    /// unaffected. Only the owner. ETH is always allowed.
    function setTokenAllowed(address token, bool allowed) external;

    /// @notice Whether new jobs may be funded in `token`.
    function isTokenAllowed(address token) external view returns (bool);

    /// @notice The shortest challenge window the parameters may ever set: the one deployed with.
    function minChallengeWindow() external view returns (uint32);

    /// @notice The smallest challenge bond the parameters may ever set: the one deployed with.
    function minChallengeBond() external view returns (uint96);

    // ---------------------------------------------------------------- VIEWS

    /// @notice Where `jobId` is.
    function computeJobStatus(uint256 jobId) external view returns (ComputeJobStatus);

    /// @notice keccak256(abi.encode(job)) as stored for `jobId` (zero when unknown).
    function computeJobCommitment(uint256 jobId) external view returns (bytes32);

    /// @notice A settled batch.
    function getBatch(uint256 batchId) external view returns (ComputeBatch memory);

    /// @notice The challenge of `jobId` (all zero when none).
    function getChallenge(uint256 jobId) external view returns (Challenge memory);

    /// @notice The winners and losers of `jobId`'s disputed settlement (empty when not challenged).
    function getChallengeParties(uint256 jobId) external view returns (ChallengeParties memory);

    /// @notice `account`'s withdrawable balance of `token`.
    function balanceOf(address account, address token) external view returns (uint256);

    /// @notice The current parameters.
    function params() external view returns (EscrowParams memory);

    /// @notice EIP-712 digest the committee signs to settle `batch`.
    function hashSettlementBatch(SettlementBatch calldata batch) external view returns (bytes32);

    /// @notice EIP-712 digest the committee signs to resolve `jobId`'s challenge.
    function hashChallengeResolution(uint256 jobId, bool upheld) external view returns (bytes32);

    /// @notice EIP-712 struct hash of one settlement (what `ChallengeProof.settlementHashes` holds).
    function hashSettlement(Settlement calldata settlement) external pure returns (bytes32);

    /// @notice The id the next compute job will get.
    function nextJobId() external view returns (uint256);

    /// @notice The id the next settled batch will get.
    function nextBatchId() external view returns (uint256);

}

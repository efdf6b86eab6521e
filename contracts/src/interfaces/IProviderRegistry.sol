// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IProviderRegistry
/// @notice Providers register here with a native-ETH stake that backs their work: the escrow slashes it
/// when a provider is caught returning a wrong result or missing a storage proof. The per-provider
/// counters are the on-chain reputation the coordinator ranks providers by.
/// @dev Self-contained (no imports) so the Rust side can bind to it with alloy's `sol!`.
interface IProviderRegistry {
    // ---------------------------------------------------------------- TYPES

    /// @notice What a provider offers, as the coordinator and buyers see it.
    /// @param pricePerFuel Price in wei per unit of wasm fuel the provider asks for compute.
    /// @param capacity Number of jobs the provider runs at once.
    /// @param region Free-form region tag, e.g. "eu-west" (at most 64 bytes).
    struct ProviderMetadata {
        uint128 pricePerFuel;
        uint32 capacity;
        string region;
    }

    /// @notice Everything the registry knows about one provider.
    /// @param registered True once `register` succeeded; never reset.
    /// @param stake Stake that backs work now, in wei.
    /// @param unbonding Stake requested for withdrawal, still slashable until withdrawn, in wei.
    /// @param unbondingEndsAt Timestamp after which `unbonding` can be withdrawn.
    /// @param jobsCompleted Compute jobs and storage periods the provider was paid for.
    /// @param jobsFailed Compute jobs lost as a minority replica and storage periods missed.
    /// @param timesSlashed Number of slashes, whatever their amount.
    /// @dev `registered`, the timestamps and the counters share one slot, which registration writes, so
    /// recording outcomes never pays for a fresh slot.
    struct Provider {
        uint256 stake;
        uint256 unbonding;
        bool registered;
        uint64 unbondingEndsAt;
        uint64 jobsCompleted;
        uint64 jobsFailed;
        uint32 timesSlashed;
        ProviderMetadata metadata;
    }

    // ---------------------------------------------------------------- EVENTS

    /// @notice A provider registered with `stake` wei.
    event ProviderRegistered(address indexed provider, uint256 stake, ProviderMetadata metadata);
    /// @notice A provider changed its offer.
    event ProviderMetadataUpdated(address indexed provider, ProviderMetadata metadata);
    /// @notice A provider added `amount` wei; its stake is now `stake`.
    event StakeAdded(address indexed provider, uint256 amount, uint256 stake);
    /// @notice A provider moved `amount` wei from stake to unbonding, withdrawable after `unbondingEndsAt`.
    event StakeWithdrawalRequested(address indexed provider, uint256 amount, uint64 unbondingEndsAt);
    /// @notice A provider withdrew `amount` wei of unbonded stake.
    event StakeWithdrawn(address indexed provider, uint256 amount);
    /// @notice The escrow slashed `amount` wei of `provider`'s stake for the benefit of `beneficiary`.
    event ProviderSlashed(address indexed provider, address indexed beneficiary, uint256 amount);
    /// @notice The escrow recorded outcomes for reputation.
    event OutcomesRecorded(address indexed provider, uint64 completed, uint64 failed);
    /// @notice The owner set the minimum stake.
    event MinStakeSet(uint256 minStake);
    /// @notice The owner set the unbonding delay.
    event UnbondingDelaySet(uint64 unbondingDelay);
    /// @notice The owner bound the registry to its escrow (once).
    event EscrowSet(address escrow);
    /// @notice The owner bound the registry to its storage market (once).
    event StorageMarketSet(address storageMarket);
    /// @notice `provider` now has `collateral` wei of its stake reserved for the storage deals it holds.
    event CollateralReserved(address indexed provider, uint256 collateral);
    /// @notice `provider`'s stake is held for the obligations the escrow named: until `until` (settled
    /// jobs' challenge windows and resolution periods) and while `openDeals` storage deals it took are
    /// not settled to their last period.
    event StakeLocked(address indexed provider, uint64 until, uint32 openDeals);

    // ---------------------------------------------------------------- ERRORS

    /// @notice `provider` is already registered.
    error ProviderRegistry_AlreadyRegistered(address provider);
    /// @notice `provider` is not registered.
    error ProviderRegistry_NotRegistered(address provider);
    /// @notice The stake `stake` is below the minimum `minStake`.
    error ProviderRegistry_StakeBelowMinimum(uint256 stake, uint256 minStake);
    /// @notice Zero was given where an amount is required.
    error ProviderRegistry_ZeroAmount();
    /// @notice A withdrawal of `requested` wei exceeds the `available` stake.
    error ProviderRegistry_InsufficientStake(uint256 requested, uint256 available);
    /// @notice Unbonded stake is locked until `unbondingEndsAt`; it is `nowTimestamp`.
    error ProviderRegistry_StillUnbonding(uint64 unbondingEndsAt, uint64 nowTimestamp);
    /// @notice Only the escrow (or, for storage, the storage market) may call this; `caller` did.
    error ProviderRegistry_OnlyEscrow(address caller);
    /// @notice The registry always has an owner (its timelock): it cannot be renounced.
    error ProviderRegistry_OwnerRequired();
    /// @notice The storage market is already set to `storageMarket`.
    error ProviderRegistry_StorageMarketAlreadySet(address storageMarket);
    /// @notice `provider` has `free` wei of stake not reserved for other deals; the deal needs `needed`.
    error ProviderRegistry_InsufficientCollateral(address provider, uint256 free, uint256 needed);
    /// @notice The escrow is already set to `escrow`.
    error ProviderRegistry_EscrowAlreadySet(address escrow);
    /// @notice A zero address was given for `what`.
    error ProviderRegistry_ZeroAddress(string what);
    /// @notice The metadata field `field` is invalid.
    error ProviderRegistry_InvalidMetadata(string field);
    /// @notice Sending `amount` wei to `to` failed.
    error ProviderRegistry_TransferFailed(address to, uint256 amount);
    /// @notice The unbonding delay `delay` exceeds the maximum `maxDelay`.
    error ProviderRegistry_UnbondingDelayTooLong(uint64 delay, uint64 maxDelay);
    /// @notice Stake backs open obligations: nothing can be withdrawn before `lockedUntil`, nor while
    /// `openDeals` storage deals are unsettled.
    error ProviderRegistry_StakeLocked(uint64 lockedUntil, uint32 openDeals);
    /// @notice The unbonding delay `delay` must exceed the escrow's challenge window plus resolution
    /// period, `minDelay` - 1: stake asked back when a job is settled stays slashable until any challenge
    /// of it is resolved.
    error ProviderRegistry_UnbondingDelayTooShort(uint64 delay, uint64 minDelay);

    // ---------------------------------------------------------------- PROVIDER FUNCTIONS

    /// @notice Registers the caller as a provider with `msg.value` wei of stake.
    /// @dev Requirements: not registered yet; `msg.value >= minStake()`; capacity > 0; region ≤ 64 bytes.
    function register(ProviderMetadata calldata metadata) external payable;

    /// @notice Replaces the caller's offer. Requirements: registered; valid metadata.
    function updateMetadata(ProviderMetadata calldata metadata) external;

    /// @notice Adds `msg.value` wei to the caller's stake. Requirements: registered; `msg.value > 0`.
    function addStake() external payable;

    /// @notice Moves `amount` wei from stake to unbonding and restarts the unbonding delay.
    /// @dev Requirements: `0 < amount <= stake`; what remains is 0 or at least `minStake()`.
    /// Unbonding stake can still be slashed.
    function requestStakeWithdrawal(uint256 amount) external;

    /// @notice Sends the caller's unbonded stake to it once the delay has passed and no obligation
    /// holds it.
    /// @dev Requirements: something is unbonding, `block.timestamp >= unbondingEndsAt`, and the stake is
    /// not locked (see {stakeLock}).
    function withdrawStake() external;

    // ---------------------------------------------------------------- ESCROW FUNCTIONS

    /// @notice Takes up to `amount` wei of `provider`'s stake (then of its unbonding stake) and sends it to
    /// the caller, which credits `beneficiary`. Only the escrow or the storage market may call.
    /// @return slashed The amount actually taken: `min(amount, stake + unbonding)`.
    function slash(address provider, uint256 amount, address beneficiary) external returns (uint256 slashed);

    /// @notice Adds to `provider`'s reputation counters. Only the escrow or the storage market may call.
    function recordOutcomes(address provider, uint64 completed, uint64 failed) external;

    /// @notice Holds `provider`'s stake (and what it is unbonding) until at least `until`: the escrow
    /// calls it for every provider of a settled batch, with the end of the batch's challenge window plus
    /// the resolution period, so a slash an upheld challenge orders still finds the stake.
    /// @dev Requirements: only the escrow; `provider` is registered.
    function lockStake(address provider, uint64 until) external;

    /// @notice Holds `provider`'s stake while the storage deal it accepts runs, and reserves `collateral`
    /// wei of it for that deal alone (every period's slash), so one stake cannot back more deals than it
    /// can pay for.
    /// @dev Requirements: only the storage market; `provider` is registered; its stake not yet reserved
    /// covers `collateral`.
    function openDeal(address provider, uint256 collateral) external;

    /// @notice Gives back `amount` wei of `provider`'s reserved collateral (settled periods' share).
    /// Only the storage market may call.
    function releaseCollateral(address provider, uint256 amount) external;

    /// @notice Ends the hold of one storage deal of `provider` and gives back the `collateral` it still
    /// reserved. Only the storage market may call.
    function closeDeal(address provider, uint256 collateral) external;

    // ---------------------------------------------------------------- VIEWS

    /// @notice Everything known about `provider` (all zero when unknown).
    function getProvider(address provider) external view returns (Provider memory);

    /// @notice What holds `provider`'s stake: no withdrawal before `until`, nor while `openDeals` > 0;
    /// `collateral` of it is reserved for those deals.
    function stakeLock(address provider) external view returns (uint64 until, uint32 openDeals, uint256 collateral);

    /// @notice True when `provider` is registered and its stake is at least `minStake()`.
    function isActive(address provider) external view returns (bool);

    /// @notice True when `provider` ever registered.
    function isRegistered(address provider) external view returns (bool);

    /// @notice Minimum stake in wei to register and to stay active.
    function minStake() external view returns (uint256);

    /// @notice Seconds between a withdrawal request and the withdrawal.
    function unbondingDelay() external view returns (uint64);

    /// @notice The escrow allowed to slash and record outcomes.
    function escrow() external view returns (address);

    /// @notice The storage market allowed to slash, record outcomes and reserve collateral.
    function storageMarket() external view returns (address);
}

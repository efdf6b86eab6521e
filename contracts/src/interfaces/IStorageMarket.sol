// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IStorageMarket
/// @notice Buyers lock payment here for storage deals; a provider takes a deal by reserving, out of its
/// stake in the registry, collateral for every period's slash. Each period the provider proves the
/// deal's `challengesPerPeriod` challenged chunks (on chain, or attested by the verifier committee); a proven period pays the provider
/// (less the fee), a missed one refunds the buyer and pays it the period's collateral. After
/// `REOPEN_AFTER_MISSES` missed periods in a row, or when its provider is no longer active, the buyer may
/// re-open the deal to another provider for the periods left, or cancel it and take back what is unearned.
/// Every payment is credited to a balance and pulled with `withdraw`.
/// @dev Self-contained (no imports) so the Rust side can bind to it with alloy's `sol!`.
interface IStorageMarket {
    // ---------------------------------------------------------------- TYPES

    /// @notice Committee attestation that `provider` passed the periods of `dealId` whose bits are set in
    /// `periods`. Naming the provider keeps an attestation from counting for whoever holds the deal next.
    struct StorageAttestation {
        uint256 dealId;
        address provider;
        uint256 periods;
    }

    /// @notice Where a storage deal is. `Open` again after a re-open.
    enum StorageDealStatus {
        None,
        Open,
        Active,
        Completed,
        Cancelled
    }

    /// @notice A storage deal. Periods are counted in blocks: period p starts at
    /// `startBlock + p * periodLength`, and that block's hash picks the chunk challenged in period p. A
    /// re-opened deal keeps its period numbers: its new provider's `startBlock` is set so that the first
    /// unsettled period starts the block after it accepts.
    /// @param feeBps, slashPerPeriod, treasury The market's parameters when the deal was created; they hold
    /// for the deal's whole life.
    /// @param missedInARow Settled periods missed in a row by the current provider.
    /// @param droppedProvider The provider the buyer last dropped; it cannot take the deal back.
    /// @param challengesPerPeriod Chunks challenged each period (1 to `MAX_CHALLENGES_PER_PERIOD`): a
    /// provider missing a fraction f of the file passes a period with probability (1 - f)^k.
    /// @dev Field order is storage layout: a proof reads only the second slot, the root and the pending
    /// bitmap.
    struct StorageDeal {
        address buyer;
        uint96 pricePerPeriod;
        uint48 startBlock;
        uint16 periods;
        uint16 settledPeriods;
        StorageDealStatus status;
        uint32 periodLength;
        uint64 size;
        uint16 missedInARow;
        uint16 feeBps;
        uint8 challengesPerPeriod;
        address provider;
        uint96 slashPerPeriod;
        address preferredProvider;
        bytes32 merkleRoot;
        uint256 pendingPeriods;
        address treasury;
        address droppedProvider;
    }

    /// @notice Owner-set parameters, copied into each deal when it is created.
    /// @param treasury Receives the protocol fee.
    /// @param feeBps Protocol fee in basis points, at most `MAX_FEE_BPS`; rounded up.
    /// @param slashPerPeriod Wei of collateral a provider loses to the buyer per missed period, at most
    /// `MAX_SLASH_PER_PERIOD`.
    /// @param minPricePerPeriod The lowest price per period a deal may have (no free reputation).
    /// @param minPeriodLength The shortest period a deal may have, in blocks (at least
    /// `MIN_PERIOD_LENGTH`); 33 leaves the provider a proof window of 32 blocks. Deployments outside the
    /// devnet use at least that.
    struct StorageParams {
        address treasury;
        uint16 feeBps;
        uint96 slashPerPeriod;
        uint96 minPricePerPeriod;
        uint32 minPeriodLength;
    }

    // ---------------------------------------------------------------- EVENTS

    /// @notice A buyer locked `periods * pricePerPeriod` wei for deal `dealId`.
    event StorageDealCreated(
        uint256 indexed dealId,
        address indexed buyer,
        bytes32 indexed merkleRoot,
        uint64 size,
        uint16 periods,
        uint32 periodLength,
        uint96 pricePerPeriod,
        uint8 challengesPerPeriod,
        address preferredProvider
    );
    /// @notice `provider` took deal `dealId` with `collateral` wei of its stake reserved; period 0 starts at
    /// `startBlock` (a re-opened deal's first unsettled period starts the block after this one).
    event StorageDealAccepted(uint256 indexed dealId, address indexed provider, uint64 startBlock, uint256 collateral);
    /// @notice The buyer cancelled deal `dealId`; `refund` wei of unearned periods went back to it.
    event StorageDealCancelled(uint256 indexed dealId, uint256 refund);
    /// @notice The buyer re-opened deal `dealId`, dropping `previousProvider`; `periodsLeft` periods are
    /// offered to the next provider.
    event StorageDealReopened(uint256 indexed dealId, address indexed previousProvider, uint256 periodsLeft);
    /// @notice Deal `dealId` proved period `period` on chain with the chunks `chunkIndexes`.
    event StoragePeriodProven(uint256 indexed dealId, uint256 period, uint256[] chunkIndexes);
    /// @notice The committee attested the periods set in `periods` for deal `dealId`.
    event StoragePeriodsAttested(uint256 indexed dealId, uint256 periods);
    /// @notice An attestation for `dealId` was skipped: the deal is not active, its provider is not the one
    /// attested, or the periods are not all started and unsettled.
    event StorageAttestationSkipped(uint256 indexed dealId, address provider, uint256 periods);
    /// @notice Periods `[fromPeriod, toPeriod)` of deal `dealId` were paid (`passed`) or refunded (`missed`).
    event StoragePeriodsSettled(uint256 indexed dealId, uint256 fromPeriod, uint256 toPeriod, uint256 passed, uint256 missed);
    /// @notice `account` withdrew `amount` wei.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice The owner changed the parameters.
    event StorageParamsSet(StorageParams params);

    // ---------------------------------------------------------------- ERRORS

    /// @notice A zero address was given for `what`.
    error StorageMarket_ZeroAddress(string what);
    /// @notice `value` wei were sent, `expected` were required.
    error StorageMarket_WrongValue(uint256 value, uint256 expected);
    /// @notice A storage deal parameter `field` is invalid.
    error StorageMarket_InvalidDealParameter(string field);
    /// @notice `dealId` does not exist.
    error StorageMarket_UnknownDeal(uint256 dealId);
    /// @notice `dealId` is `status`, which does not allow this.
    error StorageMarket_InvalidDealStatus(uint256 dealId, StorageDealStatus status);
    /// @notice Only `expected` may do this; `caller` tried.
    error StorageMarket_Unauthorized(address caller, address expected);
    /// @notice `provider` is not an active (registered and staked) provider.
    error StorageMarket_ProviderNotActive(address provider);
    /// @notice `provider` was dropped from this deal and cannot take it back.
    error StorageMarket_ProviderDropped(address provider);
    /// @notice The buyer cannot hold its own deal.
    error StorageMarket_BuyerIsProvider(address account);
    /// @notice Period `period` of `dealId` does not exist (the deal has `periods`).
    error StorageMarket_InvalidPeriod(uint256 dealId, uint256 period, uint256 periods);
    /// @notice Period `period` of `dealId` can be proven on chain in blocks `[fromBlock, toBlock]`.
    error StorageMarket_OutsideProofWindow(uint256 dealId, uint256 period, uint256 fromBlock, uint256 toBlock);
    /// @notice Period `period` of `dealId` was already proven or settled.
    error StorageMarket_PeriodNotPending(uint256 dealId, uint256 period);
    /// @notice The chunk is `length` bytes; chunks are exactly `CHUNK_SIZE` bytes (the last one zero padded).
    error StorageMarket_InvalidChunkLength(uint256 length);
    /// @notice `given` chunks (or paths) were given; deal `dealId` challenges `expected` each period.
    error StorageMarket_WrongChunkCount(uint256 dealId, uint256 given, uint256 expected);
    /// @notice The Merkle path does not prove chunk `index` of `dealId`.
    error StorageMarket_InvalidStorageProof(uint256 dealId, uint256 index);
    /// @notice The block hash that seeds `period`'s challenge of `dealId` is not available yet or any more.
    error StorageMarket_ChallengeSeedUnavailable(uint256 dealId, uint256 period);
    /// @notice No period of `dealId` has ended since the last settlement; the next ends at block `endBlock`.
    error StorageMarket_NothingToSettle(uint256 dealId, uint256 endBlock);
    /// @notice `dealId`'s provider is active and missed only `missedInARow` periods in a row; the buyer may
    /// re-open or cancel after `required`.
    error StorageMarket_ProviderInGoodStanding(uint256 dealId, uint256 missedInARow, uint256 required);
    /// @notice The signed attestations expired at `validUntil` (it is `nowTimestamp`).
    error StorageMarket_AttestationExpired(uint64 validUntil, uint64 nowTimestamp);
    /// @notice There is nothing to withdraw.
    error StorageMarket_NothingToWithdraw();
    /// @notice Sending `amount` wei to `to` failed.
    error StorageMarket_TransferFailed(address to, uint256 amount);
    /// @notice A parameter `field` is out of range.
    error StorageMarket_InvalidParams(string field);
    /// @notice The market always has an owner (its timelock): it cannot be renounced.
    error StorageMarket_OwnerRequired();
    /// @notice Native ETH is accepted only from the registry (slashed collateral); `sender` sent some.
    error StorageMarket_UnexpectedEther(address sender);

    // ---------------------------------------------------------------- DEALS

    /// @notice Locks `periods * pricePerPeriod` wei (send exactly that) for a storage deal over a file whose
    /// Merkle root is `merkleRoot`.
    /// @dev Requirements: root ≠ 0; size > 0; 1 ≤ periods ≤ 256; periodLength and pricePerPeriod at least
    /// the parameters' minimums; 1 ≤ challengesPerPeriod ≤ `MAX_CHALLENGES_PER_PERIOD`. Emits
    /// `StorageDealCreated`.
    /// @return dealId The new deal's id (ids start at 1).
    function createStorageDeal(
        bytes32 merkleRoot,
        uint64 size,
        uint16 periods,
        uint32 periodLength,
        uint96 pricePerPeriod,
        uint8 challengesPerPeriod,
        address preferredProvider
    ) external payable returns (uint256 dealId);

    /// @notice The caller (an active provider other than the buyer; the preferred one if the deal names
    /// one) takes an open deal, reserving `slashPerPeriod` × the periods left of its stake as collateral.
    /// The first period left starts at the next block.
    function acceptStorageDeal(uint256 dealId) external;

    /// @notice The buyer cancels a deal: an open one at any time, an active one once it may be re-opened
    /// (see `reopenStorageDeal`). Ended periods are settled first; the price of the periods left is
    /// credited back and the provider's collateral for them released.
    function cancelStorageDeal(uint256 dealId) external;

    /// @notice The buyer drops the deal's provider after `REOPEN_AFTER_MISSES` missed periods in a row, or
    /// when the provider is no longer active, and offers the periods left to another provider. Ended
    /// periods are settled first (the missed ones slashed); the rest of the dropped provider's collateral
    /// is released.
    function reopenStorageDeal(uint256 dealId) external;

    /// @notice Proves period `period` on chain with the challenged chunks (each exactly `CHUNK_SIZE` bytes,
    /// in the order of `storageChallengeIndexes`) and their Merkle paths, leaf to root, siblings only (a
    /// level where the node has no sibling is skipped).
    /// @dev Allowed in blocks `(challengeBlock, challengeBlock + min(periodLength - 1, 256)]`, while the
    /// seed's block hash is available. Anyone may submit.
    function proveStorage(uint256 dealId, uint256 period, bytes[] calldata chunks, bytes32[][] calldata paths) external;

    /// @notice Records committee attestations (EIP-712 `StorageAttestationBatch`) of passed periods, valid
    /// until `validUntil`. An entry whose deal is not active, whose provider changed, or whose periods are
    /// not all started and unsettled is skipped with `StorageAttestationSkipped`.
    function attestStorage(StorageAttestation[] calldata attestations, uint64 validUntil, bytes[] calldata signatures)
        external;

    /// @notice Pays the deal's ended periods: each proven one to the provider (less the fee), each missed
    /// one back to the buyer with `slashPerPeriod` of the provider's collateral. Anyone may call.
    function settleStorageDeal(uint256 dealId) external;

    // ---------------------------------------------------------------- PAYOUTS

    /// @notice Sends the caller its whole balance.
    function withdraw() external;

    // ---------------------------------------------------------------- ADMIN

    /// @notice Sets the parameters for deals created afterwards. Only the owner.
    function setParams(StorageParams calldata params) external;

    // ---------------------------------------------------------------- VIEWS

    /// @notice A storage deal.
    function getStorageDeal(uint256 dealId) external view returns (StorageDeal memory);

    /// @notice The chunk indexes challenged in `period` of `dealId`, one for each j below the deal's
    /// `challengesPerPeriod`: `uint256(keccak256(abi.encode(blockhash(challengeBlock), dealId, period, j))) %
    /// chunkCount` (two may coincide).
    /// @dev Reverts while the challenge block is not mined, or when its hash is older than 256 blocks.
    function storageChallengeIndexes(uint256 dealId, uint256 period) external view returns (uint256[] memory);

    /// @notice `account`'s withdrawable balance in wei.
    function balanceOf(address account) external view returns (uint256);

    /// @notice The current parameters.
    function params() external view returns (StorageParams memory);

    /// @notice EIP-712 digest the committee signs to attest storage periods until `validUntil`.
    function hashStorageAttestations(StorageAttestation[] calldata attestations, uint64 validUntil)
        external
        view
        returns (bytes32);

    /// @notice The id the next storage deal will get.
    function nextDealId() external view returns (uint256);

    /// @notice Missed periods in a row after which the buyer may re-open or cancel a deal.
    function REOPEN_AFTER_MISSES() external view returns (uint256);
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "./interfaces/IStorageMarket.sol";
import {IVerifierCommittee} from "./interfaces/IVerifierCommittee.sol";
import {Bits} from "./libraries/Bits.sol";
import {StorageProof} from "./libraries/StorageProof.sol";

/// @title StorageMarket
/// @notice QOR storage deals: payment per proven period, collateral per deal. See {IStorageMarket}.
contract StorageMarket is IStorageMarket, EIP712, Ownable2Step, ReentrancyGuardTransient {
    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Size of a storage chunk in bytes.
    uint256 public constant CHUNK_SIZE = StorageProof.CHUNK_SIZE;
    /// @notice The most periods a deal may have (one bit each in `pendingPeriods`).
    uint256 public constant MAX_PERIODS = 256;
    /// @notice The shortest period, in blocks: one for the seed block, one to answer in.
    uint32 public constant MIN_PERIOD_LENGTH = 2;
    /// @notice Blocks after the seed block in which a proof can still be checked on chain (`blockhash`).
    uint256 public constant PROOF_WINDOW = 256;
    /// @inheritdoc IStorageMarket
    uint256 public constant REOPEN_AFTER_MISSES = 3;
    /// @notice The most chunks a deal may challenge each period.
    uint8 public constant MAX_CHALLENGES_PER_PERIOD = 16;
    /// @notice The highest protocol fee the owner may set (20%).
    uint16 public constant MAX_FEE_BPS = 2_000;
    /// @notice The highest slash per missed period the owner may set.
    uint96 public constant MAX_SLASH_PER_PERIOD = 1 ether;
    uint256 internal constant BPS = 10_000;

    bytes32 internal constant STORAGE_ATTESTATION_TYPEHASH =
        keccak256("StorageAttestation(uint256 dealId,address provider,uint256 periods)");
    bytes32 internal constant STORAGE_ATTESTATION_BATCH_TYPEHASH = keccak256(
        "StorageAttestationBatch(StorageAttestation[] attestations,uint64 validUntil)"
        "StorageAttestation(uint256 dealId,address provider,uint256 periods)"
    );

    /*//////////////////////////////////////////////////////////////
                                 STATE
    //////////////////////////////////////////////////////////////*/

    /// @notice Where providers stake, reserve collateral and are slashed.
    IProviderRegistry public immutable registry;
    /// @notice Whose signatures attest storage periods.
    IVerifierCommittee public immutable committee;

    StorageParams internal _params;

    /// @inheritdoc IStorageMarket
    uint256 public nextDealId;

    /// @inheritdoc IStorageMarket
    mapping(address account => uint256) public balanceOf;

    mapping(uint256 dealId => StorageDeal) internal _deals;

    constructor(
        address initialOwner,
        IProviderRegistry registry_,
        IVerifierCommittee committee_,
        StorageParams memory params_
    ) EIP712("QOR StorageMarket", "1") Ownable(initialOwner) {
        if (address(registry_) == address(0)) revert StorageMarket_ZeroAddress("registry");
        if (address(committee_) == address(0)) revert StorageMarket_ZeroAddress("committee");
        registry = registry_;
        committee = committee_;
        _setParams(params_);
        nextDealId = 1;
    }

    /// @dev Slashed collateral arrives from the registry during a settlement; nobody else sends ETH unasked.
    receive() external payable {
        if (msg.sender != address(registry)) revert StorageMarket_UnexpectedEther(msg.sender);
    }

    /*//////////////////////////////////////////////////////////////
                                 DEALS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IStorageMarket
    function createStorageDeal(
        bytes32 merkleRoot,
        uint64 size,
        uint16 periods,
        uint32 periodLength,
        uint96 pricePerPeriod,
        uint8 challengesPerPeriod,
        address preferredProvider
    ) external payable nonReentrant returns (uint256 dealId) {
        // Checks
        if (merkleRoot == 0) revert StorageMarket_InvalidDealParameter("merkleRoot");
        if (size == 0) revert StorageMarket_InvalidDealParameter("size");
        if (periods == 0 || periods > MAX_PERIODS) revert StorageMarket_InvalidDealParameter("periods");
        StorageParams memory p = _params;
        if (periodLength < p.minPeriodLength) revert StorageMarket_InvalidDealParameter("periodLength");
        if (pricePerPeriod < p.minPricePerPeriod) revert StorageMarket_InvalidDealParameter("pricePerPeriod");
        if (challengesPerPeriod == 0 || challengesPerPeriod > MAX_CHALLENGES_PER_PERIOD) {
            revert StorageMarket_InvalidDealParameter("challengesPerPeriod");
        }
        uint256 total = uint256(periods) * pricePerPeriod;
        if (msg.value != total) revert StorageMarket_WrongValue(msg.value, total);

        // Effects
        dealId = nextDealId;
        unchecked {
            nextDealId = dealId + 1;
        }
        StorageDeal storage d = _deals[dealId];
        d.buyer = msg.sender;
        d.pricePerPeriod = pricePerPeriod;
        d.periods = periods;
        d.status = StorageDealStatus.Open;
        d.periodLength = periodLength;
        d.size = size;
        d.feeBps = p.feeBps;
        d.challengesPerPeriod = challengesPerPeriod;
        d.slashPerPeriod = p.slashPerPeriod;
        d.preferredProvider = preferredProvider;
        d.merkleRoot = merkleRoot;
        d.treasury = p.treasury;
        emit StorageDealCreated(
            dealId, msg.sender, merkleRoot, size, periods, periodLength, pricePerPeriod, challengesPerPeriod, preferredProvider
        );
    }

    /// @inheritdoc IStorageMarket
    function acceptStorageDeal(uint256 dealId) external nonReentrant {
        // Checks
        StorageDeal storage d = _dealIn(dealId, StorageDealStatus.Open);
        address preferred = d.preferredProvider;
        if (preferred != address(0) && msg.sender != preferred) revert StorageMarket_Unauthorized(msg.sender, preferred);
        if (msg.sender == d.buyer) revert StorageMarket_BuyerIsProvider(msg.sender);
        if (msg.sender == d.droppedProvider) revert StorageMarket_ProviderDropped(msg.sender);
        if (!registry.isActive(msg.sender)) revert StorageMarket_ProviderNotActive(msg.sender);

        // Effects: the first unsettled period starts at the next block (period numbers never change, so a
        // re-opened deal's start is moved back by the periods already settled; no underflow, as those
        // periods all ended after the first start).
        uint256 settled = d.settledPeriods;
        uint256 periods = d.periods;
        uint256 startBlock = block.number + 1 - settled * d.periodLength;
        uint256 collateral = (periods - settled) * d.slashPerPeriod;
        d.provider = msg.sender;
        d.startBlock = uint48(startBlock);
        d.status = StorageDealStatus.Active;
        d.pendingPeriods = Bits.lowBits(periods) & ~Bits.lowBits(settled);
        emit StorageDealAccepted(dealId, msg.sender, uint64(startBlock), collateral);

        // Interactions (the registry only): the stake is held until the deal ends, and `collateral` of it
        // is reserved for this deal alone; the registry refuses when the provider's free stake is short.
        registry.openDeal(msg.sender, collateral);
    }

    /// @inheritdoc IStorageMarket
    function cancelStorageDeal(uint256 dealId) external nonReentrant {
        StorageDeal storage d = _deals[dealId];
        StorageDealStatus status = d.status;
        if (status == StorageDealStatus.None) revert StorageMarket_UnknownDeal(dealId);
        address buyer = d.buyer;
        if (msg.sender != buyer) revert StorageMarket_Unauthorized(msg.sender, buyer);
        if (status == StorageDealStatus.Open) {
            uint256 refund = uint256(d.periods - d.settledPeriods) * d.pricePerPeriod;
            d.status = StorageDealStatus.Cancelled;
            balanceOf[buyer] += refund;
            emit StorageDealCancelled(dealId, refund);
            return;
        }
        if (status != StorageDealStatus.Active) revert StorageMarket_InvalidDealStatus(dealId, status);
        if (!_settleAndCheckDroppable(dealId, d)) return;

        // Effects
        uint256 left = d.periods - d.settledPeriods;
        d.status = StorageDealStatus.Cancelled;
        balanceOf[buyer] += left * d.pricePerPeriod;
        emit StorageDealCancelled(dealId, left * d.pricePerPeriod);

        // Interactions (the registry only)
        registry.closeDeal(d.provider, left * d.slashPerPeriod);
    }

    /// @inheritdoc IStorageMarket
    function reopenStorageDeal(uint256 dealId) external nonReentrant {
        StorageDeal storage d = _dealIn(dealId, StorageDealStatus.Active);
        if (msg.sender != d.buyer) revert StorageMarket_Unauthorized(msg.sender, d.buyer);
        if (!_settleAndCheckDroppable(dealId, d)) return;

        // Effects
        address previous = d.provider;
        uint256 left = d.periods - d.settledPeriods;
        d.status = StorageDealStatus.Open;
        d.provider = address(0);
        d.preferredProvider = address(0);
        d.droppedProvider = previous;
        d.startBlock = 0;
        d.pendingPeriods = 0;
        d.missedInARow = 0;
        emit StorageDealReopened(dealId, previous, left);

        // Interactions (the registry only)
        registry.closeDeal(previous, left * d.slashPerPeriod);
    }

    /// @inheritdoc IStorageMarket
    /// @dev No reentrancy guard: the proof makes no external call and only clears one pending bit, which
    /// is as valid from inside another call as from outside (and it is the hot path of every period).
    function proveStorage(uint256 dealId, uint256 period, bytes[] calldata chunks, bytes32[][] calldata paths)
        external
    {
        // Checks
        StorageDeal storage d = _deals[dealId];
        (uint256 chunkCount, uint256[] memory indexes, uint256 pending) = _provableChallenge(d, dealId, period);
        uint256 k = indexes.length;
        if (chunks.length != k || paths.length != k) revert StorageMarket_WrongChunkCount(dealId, chunks.length, k);
        bytes32 root = d.merkleRoot;
        for (uint256 j; j < k; ++j) {
            bytes calldata chunk = chunks[j];
            if (chunk.length != CHUNK_SIZE) revert StorageMarket_InvalidChunkLength(chunk.length);
            if (!StorageProof.verify(root, chunkCount, indexes[j], StorageProof.leafHash(chunk), paths[j])) {
                revert StorageMarket_InvalidStorageProof(dealId, indexes[j]);
            }
        }

        // Effects
        d.pendingPeriods = pending & ~(1 << period);
        emit StoragePeriodProven(dealId, period, indexes);
    }

    /// @inheritdoc IStorageMarket
    function attestStorage(StorageAttestation[] calldata attestations, uint64 validUntil, bytes[] calldata signatures)
        external
        nonReentrant
    {
        if (block.timestamp > validUntil) revert StorageMarket_AttestationExpired(validUntil, uint64(block.timestamp));
        committee.checkSignatures(hashStorageAttestations(attestations, validUntil), signatures);
        for (uint256 i; i < attestations.length; ++i) {
            StorageAttestation calldata a = attestations[i];
            StorageDeal storage d = _deals[a.dealId];
            uint256 mask = a.periods;
            // Only periods whose seed block is mined, and not yet settled, of the provider attested. Anything
            // else (a deal settled, re-opened or cancelled since the committee signed) is skipped, so one
            // stale entry does not sink the batch.
            if (d.status == StorageDealStatus.Active && d.provider == a.provider) {
                uint256 allowed = Bits.lowBits(_startedPeriods(d)) & ~Bits.lowBits(d.settledPeriods);
                if (mask != 0 && mask & ~allowed == 0) {
                    d.pendingPeriods &= ~mask;
                    emit StoragePeriodsAttested(a.dealId, mask);
                    continue;
                }
            }
            emit StorageAttestationSkipped(a.dealId, a.provider, mask);
        }
    }

    /// @inheritdoc IStorageMarket
    function settleStorageDeal(uint256 dealId) external nonReentrant {
        StorageDeal storage d = _dealIn(dealId, StorageDealStatus.Active);
        if (!_settle(dealId, d)) {
            uint256 next = uint256(d.startBlock) + (uint256(d.settledPeriods) + 1) * d.periodLength;
            revert StorageMarket_NothingToSettle(dealId, next);
        }
    }

    /*//////////////////////////////////////////////////////////////
                                PAYOUTS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IStorageMarket
    function withdraw() external nonReentrant {
        uint256 amount = balanceOf[msg.sender];
        if (amount == 0) revert StorageMarket_NothingToWithdraw();
        balanceOf[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert StorageMarket_TransferFailed(msg.sender, amount);
    }

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IStorageMarket
    function setParams(StorageParams calldata params_) external onlyOwner {
        _setParams(params_);
    }

    /// @notice Disabled: the market always has an owner to change its parameters (through the timelock).
    function renounceOwnership() public view override onlyOwner {
        revert StorageMarket_OwnerRequired();
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IStorageMarket
    function getStorageDeal(uint256 dealId) external view returns (StorageDeal memory) {
        return _deals[dealId];
    }

    /// @inheritdoc IStorageMarket
    function storageChallengeIndexes(uint256 dealId, uint256 period) external view returns (uint256[] memory) {
        StorageDeal storage d = _deals[dealId];
        StorageDealStatus status = d.status;
        if (status != StorageDealStatus.Active && status != StorageDealStatus.Completed) {
            revert StorageMarket_InvalidDealStatus(dealId, status);
        }
        if (period >= d.periods) revert StorageMarket_InvalidPeriod(dealId, period, d.periods);
        uint256 seedBlock = d.startBlock + period * d.periodLength;
        if (seedBlock >= block.number || block.number - seedBlock > PROOF_WINDOW) {
            revert StorageMarket_ChallengeSeedUnavailable(dealId, period);
        }
        return _challengeIndexes(blockhash(seedBlock), dealId, period, d.challengesPerPeriod, StorageProof.chunkCount(d.size));
    }

    /// @inheritdoc IStorageMarket
    function params() external view returns (StorageParams memory) {
        return _params;
    }

    /// @inheritdoc IStorageMarket
    function hashStorageAttestations(StorageAttestation[] calldata attestations, uint64 validUntil)
        public
        view
        returns (bytes32)
    {
        bytes32[] memory hashes = new bytes32[](attestations.length);
        for (uint256 i; i < attestations.length; ++i) {
            StorageAttestation calldata a = attestations[i];
            hashes[i] = keccak256(abi.encode(STORAGE_ATTESTATION_TYPEHASH, a.dealId, a.provider, a.periods));
        }
        return _hashTypedDataV4(
            keccak256(abi.encode(STORAGE_ATTESTATION_BATCH_TYPEHASH, keccak256(abi.encodePacked(hashes)), validUntil))
        );
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Settles the ended periods of an active deal, if any; returns whether any were settled.
    function _settle(uint256 dealId, StorageDeal storage d) internal returns (bool) {
        // Checks
        uint256 from = d.settledPeriods;
        uint256 periods = d.periods;
        uint256 start = d.startBlock;
        uint256 ended = block.number < start ? 0 : (block.number - start) / d.periodLength;
        if (ended > periods) ended = periods;
        if (ended <= from) return false;

        // Effects
        uint256 pending = d.pendingPeriods;
        uint256 streak = d.missedInARow;
        uint256 missed;
        for (uint256 p = from; p < ended; ++p) {
            if ((pending >> p) & 1 == 1) {
                ++missed;
                ++streak;
            } else {
                streak = 0;
            }
        }
        uint256 passed = (ended - from) - missed;
        bool last = ended == periods;
        d.settledPeriods = uint16(ended);
        d.missedInARow = uint16(streak);
        if (last) d.status = StorageDealStatus.Completed;
        _pay(d, passed, missed);
        emit StoragePeriodsSettled(dealId, from, ended, passed, missed);

        // Interactions (the registry only). Each missed period costs its collateral, sent here for the
        // buyer; every settled period's collateral is then no longer reserved.
        address provider = d.provider;
        uint256 slashPerPeriod = d.slashPerPeriod;
        registry.recordOutcomes(provider, uint64(passed), uint64(missed));
        if (missed != 0) {
            address buyer = d.buyer;
            uint256 slashed = registry.slash(provider, missed * slashPerPeriod, buyer);
            if (slashed != 0) balanceOf[buyer] += slashed;
        }
        uint256 release = (ended - from) * slashPerPeriod;
        if (last) registry.closeDeal(provider, release);
        else registry.releaseCollateral(provider, release);
        return true;
    }

    /// @dev Credits passed periods to the provider less the fee, which is rounded up so that no price is
    /// too small to pay one (no free reputation), and missed periods back to the buyer.
    function _pay(StorageDeal storage d, uint256 passed, uint256 missed) internal {
        uint256 price = d.pricePerPeriod;
        uint256 gross = passed * price;
        uint256 fee = Math.mulDiv(gross, d.feeBps, BPS, Math.Rounding.Ceil);
        if (gross != 0) balanceOf[d.provider] += gross - fee;
        if (fee != 0) balanceOf[d.treasury] += fee;
        if (missed != 0) balanceOf[d.buyer] += missed * price;
    }

    /// @dev Settles what has ended and checks the buyer may drop the provider. Returns false when the
    /// settlement completed the deal (nothing is left to cancel or re-open).
    function _settleAndCheckDroppable(uint256 dealId, StorageDeal storage d) internal returns (bool) {
        _settle(dealId, d);
        if (d.status != StorageDealStatus.Active) return false;
        uint256 misses = d.missedInARow;
        if (misses < REOPEN_AFTER_MISSES && registry.isActive(d.provider)) {
            revert StorageMarket_ProviderInGoodStanding(dealId, misses, REOPEN_AFTER_MISSES);
        }
        return true;
    }

    function _dealIn(uint256 dealId, StorageDealStatus expected) internal view returns (StorageDeal storage d) {
        d = _deals[dealId];
        StorageDealStatus status = d.status;
        if (status == StorageDealStatus.None) revert StorageMarket_UnknownDeal(dealId);
        if (status != expected) revert StorageMarket_InvalidDealStatus(dealId, status);
    }

    /// @dev Checks that `period` of an active deal can be proven now and returns the deal's chunk count,
    /// the challenged chunks and the pending bitmap. Everything but the bitmap is in the deal's second
    /// storage slot (see the field order of `StorageDeal`), read once: this is the hot path of every period.
    function _provableChallenge(StorageDeal storage d, uint256 dealId, uint256 period)
        internal
        view
        returns (uint256 chunks, uint256[] memory indexes, uint256 pending)
    {
        uint256 word;
        assembly ("memory-safe") {
            word := sload(add(d.slot, 1))
        }
        StorageDealStatus status = StorageDealStatus(uint8(word >> 80));
        if (status != StorageDealStatus.Active) {
            if (status == StorageDealStatus.None) revert StorageMarket_UnknownDeal(dealId);
            revert StorageMarket_InvalidDealStatus(dealId, status);
        }
        if (period >= uint16(word >> 48)) revert StorageMarket_InvalidPeriod(dealId, period, uint16(word >> 48));
        pending = d.pendingPeriods;
        if ((pending >> period) & 1 == 0 || period < uint16(word >> 64)) {
            revert StorageMarket_PeriodNotPending(dealId, period);
        }
        uint256 len = uint32(word >> 88);
        uint256 seedBlock = uint48(word) + period * len;
        uint256 lastBlock = seedBlock + Math.min(len - 1, PROOF_WINDOW);
        if (block.number <= seedBlock || block.number > lastBlock) {
            revert StorageMarket_OutsideProofWindow(dealId, period, seedBlock + 1, lastBlock);
        }
        chunks = StorageProof.chunkCount(uint64(word >> 120));
        indexes = _challengeIndexes(blockhash(seedBlock), dealId, period, uint8(word >> 216), chunks);
    }

    /// @dev Periods whose seed block is already mined (their challenge is known).
    function _startedPeriods(StorageDeal storage d) internal view returns (uint256 started) {
        uint256 start = d.startBlock;
        if (block.number <= start) return 0;
        started = (block.number - 1 - start) / d.periodLength + 1;
        if (started > d.periods) started = d.periods;
    }

    function _challengeIndexes(bytes32 seed, uint256 dealId, uint256 period, uint256 k, uint256 chunks)
        internal
        pure
        returns (uint256[] memory indexes)
    {
        indexes = new uint256[](k);
        for (uint256 j; j < k; ++j) {
            indexes[j] = uint256(keccak256(abi.encode(seed, dealId, period, j))) % chunks;
        }
    }

    function _setParams(StorageParams memory p) internal {
        if (p.treasury == address(0)) revert StorageMarket_ZeroAddress("treasury");
        if (p.feeBps > MAX_FEE_BPS) revert StorageMarket_InvalidParams("feeBps");
        // A deal's collateral is its slash per period: zero would let anyone take deals for free.
        if (p.slashPerPeriod == 0 || p.slashPerPeriod > MAX_SLASH_PER_PERIOD) {
            revert StorageMarket_InvalidParams("slashPerPeriod");
        }
        if (p.minPricePerPeriod == 0) revert StorageMarket_InvalidParams("minPricePerPeriod");
        if (p.minPeriodLength < MIN_PERIOD_LENGTH) revert StorageMarket_InvalidParams("minPeriodLength");
        _params = p;
        emit StorageParamsSet(p);
    }
}

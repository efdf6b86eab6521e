// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IJobEscrow} from "../interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "../interfaces/IProviderRegistry.sol";
import {Bits} from "./Bits.sol";
import {StorageProof} from "./StorageProof.sol";

/// @title StorageDealLogic
/// @notice The storage-deal half of {JobEscrow}, as an external library the escrow delegatecalls: it runs on
/// the escrow's storage at the escrow's address, and keeps the escrow under the 24 KiB code size limit.
/// Events and errors are the escrow's ({IJobEscrow}).
library StorageDealLogic {
    uint256 internal constant CHUNK_SIZE = StorageProof.CHUNK_SIZE;
    uint256 internal constant MAX_PERIODS = 256;
    uint32 internal constant MIN_PERIOD_LENGTH = 2;
    uint256 internal constant PROOF_WINDOW = 256;
    uint256 internal constant BPS = 10_000;

    function create(
        mapping(uint256 => IJobEscrow.StorageDeal) storage deals,
        uint256 dealId,
        bytes32 merkleRoot,
        uint64 size,
        uint16 periods,
        uint32 periodLength,
        uint96 pricePerPeriod,
        address preferredProvider
    ) external {
        // Checks
        if (merkleRoot == 0) revert IJobEscrow.JobEscrow_InvalidDealParameter("merkleRoot");
        if (size == 0) revert IJobEscrow.JobEscrow_InvalidDealParameter("size");
        if (periods == 0 || periods > MAX_PERIODS) revert IJobEscrow.JobEscrow_InvalidDealParameter("periods");
        if (periodLength < MIN_PERIOD_LENGTH) revert IJobEscrow.JobEscrow_InvalidDealParameter("periodLength");
        if (pricePerPeriod == 0) revert IJobEscrow.JobEscrow_InvalidDealParameter("pricePerPeriod");
        uint256 total = uint256(periods) * pricePerPeriod;
        if (msg.value != total) revert IJobEscrow.JobEscrow_WrongValue(msg.value, total);

        // Effects
        IJobEscrow.StorageDeal storage d = deals[dealId];
        d.buyer = msg.sender;
        d.pricePerPeriod = pricePerPeriod;
        d.periods = periods;
        d.status = IJobEscrow.StorageDealStatus.Open;
        d.preferredProvider = preferredProvider;
        d.periodLength = periodLength;
        d.size = size;
        d.merkleRoot = merkleRoot;
        emit IJobEscrow.StorageDealCreated(
            dealId, msg.sender, merkleRoot, size, periods, periodLength, pricePerPeriod, preferredProvider
        );
    }

    function accept(
        mapping(uint256 => IJobEscrow.StorageDeal) storage deals,
        IProviderRegistry registry,
        uint256 dealId
    ) external {
        // Checks
        IJobEscrow.StorageDeal storage d = dealIn(deals, dealId, IJobEscrow.StorageDealStatus.Open);
        address preferred = d.preferredProvider;
        if (preferred != address(0) && msg.sender != preferred) {
            revert IJobEscrow.JobEscrow_Unauthorized(msg.sender, preferred);
        }
        if (!registry.isActive(msg.sender)) revert IJobEscrow.JobEscrow_ProviderNotActive(msg.sender);

        // Effects
        uint48 startBlock = uint48(block.number + 1);
        d.provider = msg.sender;
        d.startBlock = startBlock;
        d.status = IJobEscrow.StorageDealStatus.Active;
        d.pendingPeriods = Bits.lowBits(d.periods);
        emit IJobEscrow.StorageDealAccepted(dealId, msg.sender, startBlock);

        // Interactions (the registry only): the provider's stake is held until the deal's last period is
        // settled, so every missed period's slash still finds it.
        registry.openDeal(msg.sender);
    }

    function cancel(
        mapping(uint256 => IJobEscrow.StorageDeal) storage deals,
        mapping(address => mapping(address => uint256)) storage balances,
        uint256 dealId
    ) external {
        IJobEscrow.StorageDeal storage d = dealIn(deals, dealId, IJobEscrow.StorageDealStatus.Open);
        if (msg.sender != d.buyer) revert IJobEscrow.JobEscrow_Unauthorized(msg.sender, d.buyer);
        d.status = IJobEscrow.StorageDealStatus.Cancelled;
        balances[d.buyer][address(0)] += uint256(d.periods) * d.pricePerPeriod;
        emit IJobEscrow.StorageDealCancelled(dealId);
    }

    function prove(
        mapping(uint256 => IJobEscrow.StorageDeal) storage deals,
        uint256 dealId,
        uint256 period,
        bytes calldata chunk,
        bytes32[] calldata path
    ) external {
        // Checks
        IJobEscrow.StorageDeal storage d = deals[dealId];
        if (chunk.length != CHUNK_SIZE) revert IJobEscrow.JobEscrow_InvalidChunkLength(chunk.length);
        (uint256 chunks, uint256 index, uint256 pending) = _provableChallenge(d, dealId, period);
        if (!StorageProof.verify(d.merkleRoot, chunks, index, StorageProof.leafHash(chunk), path)) {
            revert IJobEscrow.JobEscrow_InvalidStorageProof(dealId, index);
        }

        // Effects
        d.pendingPeriods = pending & ~(1 << period);
        emit IJobEscrow.StoragePeriodProven(dealId, period, index);
    }

    function attest(
        mapping(uint256 => IJobEscrow.StorageDeal) storage deals,
        IJobEscrow.StorageAttestation[] calldata attestations
    ) external {
        for (uint256 i; i < attestations.length; ++i) {
            uint256 dealId = attestations[i].dealId;
            uint256 mask = attestations[i].periods;
            IJobEscrow.StorageDeal storage d = dealIn(deals, dealId, IJobEscrow.StorageDealStatus.Active);
            // Only periods whose seed block is mined, and not yet settled, can be attested.
            uint256 allowed = Bits.lowBits(_startedPeriods(d)) & ~Bits.lowBits(d.settledPeriods);
            if (mask == 0 || mask & ~allowed != 0) revert IJobEscrow.JobEscrow_InvalidAttestation(dealId, mask);
            d.pendingPeriods &= ~mask;
            emit IJobEscrow.StoragePeriodsAttested(dealId, mask);
        }
    }

    function settle(
        mapping(uint256 => IJobEscrow.StorageDeal) storage deals,
        mapping(address => mapping(address => uint256)) storage balances,
        IJobEscrow.EscrowParams storage params,
        IProviderRegistry registry,
        uint256 dealId
    ) external {
        // Checks
        IJobEscrow.StorageDeal storage d = dealIn(deals, dealId, IJobEscrow.StorageDealStatus.Active);
        uint256 from = d.settledPeriods;
        uint256 periods = d.periods;
        uint256 ended = block.number < d.startBlock ? 0 : (block.number - d.startBlock) / d.periodLength;
        if (ended > periods) ended = periods;
        if (ended <= from) {
            revert IJobEscrow.JobEscrow_NothingToSettle(dealId, d.startBlock + (from + 1) * d.periodLength);
        }

        // Effects
        uint256 passed = Bits.popcount(Bits.lowBits(ended) & ~Bits.lowBits(from) & ~d.pendingPeriods);
        uint256 missed = (ended - from) - passed;
        d.settledPeriods = uint16(ended);
        if (ended == periods) d.status = IJobEscrow.StorageDealStatus.Completed;
        _pay(d, balances, params, passed, missed);
        emit IJobEscrow.StoragePeriodsSettled(dealId, from, ended, passed, missed);

        // Interactions (the registry only). The registry sends slashed stake to the escrow (this
        // delegatecall's context), which credits the harmed buyer.
        registry.recordOutcomes(d.provider, uint64(passed), uint64(missed));
        if (missed != 0) {
            uint256 slashed = registry.slash(d.provider, missed * params.storageSlash, d.buyer);
            if (slashed != 0) balances[d.buyer][address(0)] += slashed;
        }
        // The last period is settled (its slash taken): the deal no longer holds the stake.
        if (ended == periods) registry.closeDeal(d.provider);
    }

    /// @dev Credits passed periods to the provider (less the fee) and missed ones back to the buyer.
    function _pay(
        IJobEscrow.StorageDeal storage d,
        mapping(address => mapping(address => uint256)) storage balances,
        IJobEscrow.EscrowParams storage params,
        uint256 passed,
        uint256 missed
    ) private {
        uint256 gross = passed * d.pricePerPeriod;
        uint256 fee = gross * params.feeBps / BPS;
        if (gross != 0) balances[d.provider][address(0)] += gross - fee;
        if (fee != 0) balances[params.treasury][address(0)] += fee;
        if (missed != 0) balances[d.buyer][address(0)] += missed * d.pricePerPeriod;
    }

    function challengeIndex(mapping(uint256 => IJobEscrow.StorageDeal) storage deals, uint256 dealId, uint256 period)
        external
        view
        returns (uint256)
    {
        IJobEscrow.StorageDeal storage d = deals[dealId];
        IJobEscrow.StorageDealStatus status = d.status;
        if (status != IJobEscrow.StorageDealStatus.Active && status != IJobEscrow.StorageDealStatus.Completed) {
            revert IJobEscrow.JobEscrow_InvalidDealStatus(dealId, status);
        }
        if (period >= d.periods) revert IJobEscrow.JobEscrow_InvalidPeriod(dealId, period, d.periods);
        uint256 seedBlock = d.startBlock + period * d.periodLength;
        if (seedBlock >= block.number || block.number - seedBlock > PROOF_WINDOW) {
            revert IJobEscrow.JobEscrow_ChallengeSeedUnavailable(dealId, period);
        }
        return _challengeIndex(blockhash(seedBlock), dealId, period, StorageProof.chunkCount(d.size));
    }

    function dealIn(
        mapping(uint256 => IJobEscrow.StorageDeal) storage deals,
        uint256 dealId,
        IJobEscrow.StorageDealStatus expected
    ) internal view returns (IJobEscrow.StorageDeal storage d) {
        d = deals[dealId];
        IJobEscrow.StorageDealStatus status = d.status;
        if (status == IJobEscrow.StorageDealStatus.None) revert IJobEscrow.JobEscrow_UnknownDeal(dealId);
        if (status != expected) revert IJobEscrow.JobEscrow_InvalidDealStatus(dealId, status);
    }

    /// @dev Checks that `period` of an active deal can be proven now and returns the deal's chunk count,
    /// the challenged chunk and the pending bitmap. Everything but the bitmap is in the deal's second
    /// storage slot (see the field order of `IJobEscrow.StorageDeal`), read once: this is the hot path of
    /// every period.
    function _provableChallenge(IJobEscrow.StorageDeal storage d, uint256 dealId, uint256 period)
        private
        view
        returns (uint256 chunks, uint256 index, uint256 pending)
    {
        uint256 word;
        assembly ("memory-safe") {
            word := sload(add(d.slot, 1))
        }
        IJobEscrow.StorageDealStatus status = IJobEscrow.StorageDealStatus(uint8(word >> 80));
        if (status != IJobEscrow.StorageDealStatus.Active) {
            if (status == IJobEscrow.StorageDealStatus.None) revert IJobEscrow.JobEscrow_UnknownDeal(dealId);
            revert IJobEscrow.JobEscrow_InvalidDealStatus(dealId, status);
        }
        if (period >= uint16(word >> 48)) revert IJobEscrow.JobEscrow_InvalidPeriod(dealId, period, uint16(word >> 48));
        pending = d.pendingPeriods;
        if ((pending >> period) & 1 == 0 || period < uint16(word >> 64)) {
            revert IJobEscrow.JobEscrow_PeriodNotPending(dealId, period);
        }
        uint256 len = uint32(word >> 88);
        uint256 seedBlock = uint48(word) + period * len;
        uint256 lastBlock = seedBlock + Math.min(len - 1, PROOF_WINDOW);
        if (block.number <= seedBlock || block.number > lastBlock) {
            revert IJobEscrow.JobEscrow_OutsideProofWindow(dealId, period, seedBlock + 1, lastBlock);
        }
        chunks = StorageProof.chunkCount(uint64(word >> 120));
        index = _challengeIndex(blockhash(seedBlock), dealId, period, chunks);
    }

    /// @dev Periods whose seed block is already mined (their challenge is known).
    function _startedPeriods(IJobEscrow.StorageDeal storage d) private view returns (uint256 started) {
        uint256 start = d.startBlock;
        if (block.number <= start) return 0;
        started = (block.number - 1 - start) / d.periodLength + 1;
        if (started > d.periods) started = d.periods;
    }

    function _challengeIndex(bytes32 seed, uint256 dealId, uint256 period, uint256 chunks)
        private
        pure
        returns (uint256)
    {
        return uint256(keccak256(abi.encode(seed, dealId, period))) % chunks;
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IStorageMarket} from "../../../src/interfaces/IStorageMarket.sol";
import {IVerifierCommittee} from "../../../src/interfaces/IVerifierCommittee.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";

/// @notice Shared set-up for the storage functions: a 5-chunk file and helpers to walk its periods.
abstract contract StorageBase is Base {
    uint16 internal constant PERIODS = 4;
    uint32 internal constant LEN = 10;
    uint96 internal constant PRICE = 0.1 ether;
    /// @dev Chunks challenged each period.
    uint8 internal constant K = 4;

    bytes internal file;
    bytes[] internal chunks;
    bytes32 internal root;
    address internal host;

    function setUp() public virtual override {
        super.setUp();
        file = fileOf(4 * CHUNK + 100, 7); // 5 chunks, the last padded
        bytes[] memory c = chunksOf(file);
        for (uint256 i; i < c.length; ++i) {
            chunks.push(c[i]);
        }
        (root,) = merkle(leavesOf(chunks), 0);
        host = providers[0];
    }

    function createDeal(address preferred) internal returns (uint256 dealId) {
        return createDealOf(PERIODS, preferred);
    }

    function createDealOf(uint16 periods, address preferred) internal returns (uint256 dealId) {
        vm.prank(buyer);
        dealId = market.createStorageDeal{value: uint256(periods) * PRICE}(
            root, uint64(file.length), periods, LEN, PRICE, K, preferred
        );
    }

    function activeDeal() internal returns (uint256 dealId) {
        dealId = createDeal(address(0));
        vm.prank(host);
        market.acceptStorageDeal(dealId);
    }

    function seedBlock(uint256 dealId, uint256 period) internal view returns (uint256) {
        IStorageMarket.StorageDeal memory d = market.getStorageDeal(dealId);
        return d.startBlock + period * d.periodLength;
    }

    /// @dev Rolls into `period`'s proof window and proves it with the right chunks.
    function prove(uint256 dealId, uint256 period) internal {
        vm.roll(seedBlock(dealId, period) + 1);
        (, bytes[] memory c, bytes32[][] memory paths) = proofOf(dealId, period);
        market.proveStorage(dealId, period, c, paths);
    }

    /// @dev The challenged chunks of `period` (its seed block mined) and their paths.
    function proofOf(uint256 dealId, uint256 period)
        internal
        view
        returns (uint256[] memory indexes, bytes[] memory c, bytes32[][] memory paths)
    {
        indexes = market.storageChallengeIndexes(dealId, period);
        c = new bytes[](indexes.length);
        paths = new bytes32[][](indexes.length);
        bytes32[] memory leaves = leavesOf(chunks);
        for (uint256 j; j < indexes.length; ++j) {
            c[j] = chunks[indexes[j]];
            (, paths[j]) = merkle(leaves, indexes[j]);
        }
    }

    /// @dev `k` copies of one chunk and one path (for calls that fail before any proof is checked).
    function filler(uint256 k, uint256 length) internal pure returns (bytes[] memory c, bytes32[][] memory paths) {
        c = new bytes[](k);
        paths = new bytes32[][](k);
        for (uint256 j; j < k; ++j) {
            c[j] = new bytes(length);
        }
    }

    function _expectParam(string memory field, bytes32 r, uint64 size, uint16 periods, uint32 len, uint96 price)
        internal
    {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidDealParameter.selector, field));
        vm.prank(buyer);
        market.createStorageDeal{value: uint256(periods) * price}(r, size, periods, len, price, K, address(0));
    }

    function attest(uint256 dealId, uint256 mask) internal {
        attestFor(dealId, market.getStorageDeal(dealId).provider, mask);
    }

    function attestFor(uint256 dealId, address provider, uint256 mask) internal {
        IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](1);
        a[0] = IStorageMarket.StorageAttestation(dealId, provider, mask);
        uint64 validUntil = uint64(block.timestamp + 1 hours);
        bytes[] memory sigs = committeeSign(market.hashStorageAttestations(a, validUntil), 2);
        market.attestStorage(a, validUntil, sigs);
    }
}

contract CreateStorageDeal_Unit is StorageBase {
    function test_RevertWhen_RootZero() public {
        _expectParam("merkleRoot", 0, 1, 1, LEN, 1);
    }

    function test_RevertWhen_SizeZero() public {
        _expectParam("size", root, 0, 1, LEN, 1);
    }

    function test_RevertWhen_PeriodsZero() public {
        _expectParam("periods", root, 1, 0, LEN, 1);
    }

    function test_RevertWhen_TooManyPeriods() public {
        _expectParam("periods", root, 1, 257, LEN, 1);
    }

    function test_RevertWhen_PeriodTooShort() public {
        _expectParam("periodLength", root, 1, 1, 1, 1);
    }

    function test_RevertWhen_PriceZero() public {
        _expectParam("pricePerPeriod", root, 1, 1, LEN, 0);
    }

    /// Low: reputation was farmed with 1 wei self-deals. A price below the minimum is refused.
    function test_RevertWhen_PriceBelowMinimum() public {
        _expectParam("pricePerPeriod", root, 1, 1, LEN, MIN_STORAGE_PRICE - 1);
    }

    function test_RevertWhen_ValueWrong() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_WrongValue.selector, 1, uint256(PERIODS) * PRICE));
        vm.prank(buyer);
        market.createStorageDeal{value: 1}(root, 1, PERIODS, LEN, PRICE, K, address(0));
    }

    function test_CreatesDeal() public {
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageDealCreated(1, buyer, root, uint64(file.length), PERIODS, LEN, PRICE, K, host);
        uint256 id = createDeal(host);
        IStorageMarket.StorageDeal memory d = market.getStorageDeal(id);
        assertEq(d.buyer, buyer);
        assertEq(d.merkleRoot, root);
        assertEq(d.size, file.length);
        assertEq(d.preferredProvider, host);
        assertEq(uint8(d.status), uint8(IStorageMarket.StorageDealStatus.Open));
        assertEq(address(market).balance, uint256(PERIODS) * PRICE);
        assertEq(market.nextDealId(), 2);
    }
}

contract AcceptStorageDeal_Unit is StorageBase {
    function test_RevertWhen_DealUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_UnknownDeal.selector, 9));
        vm.prank(host);
        market.acceptStorageDeal(9);
    }

    function test_RevertWhen_NotPreferred() public {
        uint256 id = createDeal(providers[1]);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_Unauthorized.selector, host, providers[1]));
        vm.prank(host);
        market.acceptStorageDeal(id);
    }

    function test_RevertWhen_NotActiveProvider() public {
        uint256 id = createDeal(address(0));
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_ProviderNotActive.selector, stranger));
        vm.prank(stranger);
        market.acceptStorageDeal(id);
    }

    function test_RevertGiven_AlreadyAccepted() public {
        uint256 id = activeDeal();
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageMarket.StorageMarket_InvalidDealStatus.selector, id, IStorageMarket.StorageDealStatus.Active
            )
        );
        vm.prank(providers[1]);
        market.acceptStorageDeal(id);
    }

    function test_Accepts() public {
        uint256 id = createDeal(host);
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageDealAccepted(id, host, uint64(block.number + 1), uint256(PERIODS) * STORAGE_SLASH);
        vm.prank(host);
        market.acceptStorageDeal(id);
        IStorageMarket.StorageDeal memory d = market.getStorageDeal(id);
        assertEq(d.provider, host);
        assertEq(d.startBlock, block.number + 1);
        assertEq(d.pendingPeriods, 0x0f);
        assertEq(uint8(d.status), uint8(IStorageMarket.StorageDealStatus.Active));
    }
}

contract CancelStorageDeal_Unit is StorageBase {
    function test_RevertWhen_NotBuyer() public {
        uint256 id = createDeal(address(0));
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_Unauthorized.selector, stranger, buyer));
        vm.prank(stranger);
        market.cancelStorageDeal(id);
    }

    function test_RevertGiven_AcceptedByAProviderInGoodStanding() public {
        uint256 id = activeDeal();
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.StorageMarket_ProviderInGoodStanding.selector, id, 0, 3)
        );
        vm.prank(buyer);
        market.cancelStorageDeal(id);
    }

    function test_CancelsAndRefunds() public {
        uint256 id = createDeal(address(0));
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageDealCancelled(id, uint256(PERIODS) * PRICE);
        vm.prank(buyer);
        market.cancelStorageDeal(id);
        assertEq(market.balanceOf(buyer), uint256(PERIODS) * PRICE);
        assertEq(uint8(market.getStorageDeal(id).status), uint8(IStorageMarket.StorageDealStatus.Cancelled));
    }
}

contract ProveStorage_Unit is StorageBase {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = activeDeal();
    }

    function _prove(uint256 period, bytes[] memory c, bytes32[][] memory paths) internal {
        market.proveStorage(id, period, c, paths);
    }

    function test_RevertWhen_PeriodOutOfRange() public {
        (bytes[] memory c, bytes32[][] memory paths) = filler(K, CHUNK);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidPeriod.selector, id, 4, 4));
        _prove(4, c, paths);
    }

    function test_RevertWhen_SeedBlockNotMined() public {
        uint256 seed = seedBlock(id, 1);
        vm.roll(seed);
        (bytes[] memory c, bytes32[][] memory paths) = filler(K, CHUNK);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.StorageMarket_OutsideProofWindow.selector, id, 1, seed + 1, seed + LEN - 1)
        );
        _prove(1, c, paths);
    }

    function test_RevertWhen_AfterWindow() public {
        uint256 seed = seedBlock(id, 0);
        vm.roll(seed + LEN);
        (bytes[] memory c, bytes32[][] memory paths) = filler(K, CHUNK);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.StorageMarket_OutsideProofWindow.selector, id, 0, seed + 1, seed + LEN - 1)
        );
        _prove(0, c, paths);
    }

    function test_RevertWhen_ChunkNotPadded() public {
        vm.roll(seedBlock(id, 0) + 1);
        (bytes[] memory c, bytes32[][] memory paths) = filler(K, 100);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidChunkLength.selector, 100));
        _prove(0, c, paths);
    }

    /// Low: one chunk per period let a provider keeping 15/16 of a file pass 93% of periods. A deal
    /// challenges `K` chunks each period, and a proof must answer all of them.
    function test_RevertWhen_FewerChunksThanChallenged() public {
        vm.roll(seedBlock(id, 0) + 1);
        (, bytes[] memory c, bytes32[][] memory paths) = proofOf(id, 0);
        bytes[] memory one = new bytes[](1);
        bytes32[][] memory onePath = new bytes32[][](1);
        one[0] = c[0];
        onePath[0] = paths[0];
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_WrongChunkCount.selector, id, 1, K));
        _prove(0, one, onePath);
    }

    function test_RevertWhen_AnyOneChunkIsWrong() public {
        vm.roll(seedBlock(id, 0) + 1);
        for (uint256 j; j < K; ++j) {
            (uint256[] memory indexes, bytes[] memory c, bytes32[][] memory paths) = proofOf(id, 0);
            c[j][0] = bytes1(uint8(c[j][0]) ^ 1);
            vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidStorageProof.selector, id, indexes[j]));
            _prove(0, c, paths);
        }
    }

    function test_RevertWhen_OtherChunkWithItsValidPath() public {
        // The index is bound by the path's left/right order: a valid proof of another chunk fails.
        vm.roll(seedBlock(id, 0) + 1);
        (uint256[] memory indexes, bytes[] memory c, bytes32[][] memory paths) = proofOf(id, 0);
        uint256 other = (indexes[0] + 1) % chunks.length;
        c[0] = chunks[other];
        (, paths[0]) = merkle(leavesOf(chunks), other);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidStorageProof.selector, id, indexes[0]));
        _prove(0, c, paths);
    }

    function test_RevertWhen_PathTooLong() public {
        vm.roll(seedBlock(id, 0) + 1);
        (uint256[] memory indexes, bytes[] memory c, bytes32[][] memory paths) = proofOf(id, 0);
        bytes32[] memory longer = new bytes32[](paths[0].length + 1);
        for (uint256 i; i < paths[0].length; ++i) {
            longer[i] = paths[0][i];
        }
        paths[0] = longer;
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidStorageProof.selector, id, indexes[0]));
        _prove(0, c, paths);
    }

    function test_RevertGiven_AlreadyProven() public {
        prove(id, 0);
        (, bytes[] memory c, bytes32[][] memory paths) = proofOf(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_PeriodNotPending.selector, id, 0));
        _prove(0, c, paths);
    }

    function test_RevertGiven_DealNotActive() public {
        uint256 open = createDeal(address(0));
        (bytes[] memory c, bytes32[][] memory paths) = filler(K, CHUNK);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidDealStatus.selector, open, IStorageMarket.StorageDealStatus.Open)
        );
        market.proveStorage(open, 0, c, paths);
    }

    function test_ProvesEveryPeriod() public {
        for (uint256 p; p < PERIODS; ++p) {
            vm.roll(seedBlock(id, p) + 1);
            (uint256[] memory indexes,,) = proofOf(id, p);
            vm.expectEmit(address(market));
            emit IStorageMarket.StoragePeriodProven(id, p, indexes);
            prove(id, p);
        }
        assertEq(market.getStorageDeal(id).pendingPeriods, 0);
    }

    function test_ChallengeIndexesFollowTheSeedBlock() public {
        vm.roll(seedBlock(id, 0) + 1);
        uint256[] memory got = market.storageChallengeIndexes(id, 0);
        assertEq(got.length, K);
        for (uint256 j; j < K; ++j) {
            uint256 expected = uint256(keccak256(abi.encode(blockhash(seedBlock(id, 0)), id, uint256(0), j))) % chunks.length;
            assertEq(got[j], expected);
        }
    }

    function test_RevertWhen_SeedTooOld() public {
        vm.roll(seedBlock(id, 0) + 257);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_ChallengeSeedUnavailable.selector, id, 0));
        market.storageChallengeIndexes(id, 0);
    }

    function test_RevertWhen_ChallengesPerPeriodOutOfRange() public {
        vm.startPrank(buyer);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidDealParameter.selector, "challengesPerPeriod"));
        market.createStorageDeal{value: PRICE}(root, uint64(file.length), 1, LEN, PRICE, 0, address(0));
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidDealParameter.selector, "challengesPerPeriod"));
        market.createStorageDeal{value: PRICE}(root, uint64(file.length), 1, LEN, PRICE, 17, address(0));
        vm.stopPrank();
    }
}

contract AttestStorage_Unit is StorageBase {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = activeDeal();
    }

    /// An entry that cannot apply is skipped with an event and leaves the deal alone.
    function _attestExpectingSkip(address provider, uint256 mask) internal {
        uint256 pending = market.getStorageDeal(id).pendingPeriods;
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageAttestationSkipped(id, provider, mask);
        attestFor(id, provider, mask);
        assertEq(market.getStorageDeal(id).pendingPeriods, pending);
    }

    function test_SkipsWhen_PeriodNotStarted() public {
        vm.roll(seedBlock(id, 1)); // period 1's seed block is not mined yet
        _attestExpectingSkip(host, 0x02);
    }

    function test_SkipsWhen_EmptyMask() public {
        vm.roll(seedBlock(id, 0) + 1);
        _attestExpectingSkip(host, 0);
    }

    /// Low: one deal settled in front of an attestation batch reverted the whole batch. Its entry is
    /// skipped; the others in the batch still count.
    function test_SkipsGiven_PeriodSettled_AndKeepsTheRestOfTheBatch() public {
        uint256 other = activeDeal();
        vm.roll(seedBlock(id, 1));
        market.settleStorageDeal(id); // period 0 settled as missed
        IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](2);
        a[0] = IStorageMarket.StorageAttestation(id, host, 0x01);
        a[1] = IStorageMarket.StorageAttestation(other, host, 0x01);
        uint64 validUntil = uint64(block.timestamp + 1 hours);
        bytes[] memory sigs = committeeSign(market.hashStorageAttestations(a, validUntil), 2);
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageAttestationSkipped(id, host, 0x01);
        vm.expectEmit(address(market));
        emit IStorageMarket.StoragePeriodsAttested(other, 0x01);
        market.attestStorage(a, validUntil, sigs);
        assertEq(market.getStorageDeal(other).pendingPeriods & 1, 0);
    }

    /// An attestation names the provider: it does not count for whoever holds the deal instead.
    function test_SkipsWhen_ProviderIsNotTheDealsProvider() public {
        vm.roll(seedBlock(id, 0) + 1);
        _attestExpectingSkip(providers[1], 0x01);
    }

    /// Low: signed attestations never expired. Past `validUntil` they are refused.
    function test_RevertWhen_Expired() public {
        vm.roll(seedBlock(id, 0) + 1);
        IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](1);
        a[0] = IStorageMarket.StorageAttestation(id, host, 1);
        uint64 validUntil = uint64(block.timestamp + 1 hours);
        bytes[] memory sigs = committeeSign(market.hashStorageAttestations(a, validUntil), 2);
        vm.warp(validUntil + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStorageMarket.StorageMarket_AttestationExpired.selector, validUntil, validUntil + 1)
        );
        market.attestStorage(a, validUntil, sigs);
        // Nor can the deadline be stretched: the signatures cover it.
        vm.expectRevert();
        market.attestStorage(a, validUntil + 2 hours, sigs);
    }

    function test_RevertWhen_OneSignature() public {
        vm.roll(seedBlock(id, 0) + 1);
        IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](1);
        a[0] = IStorageMarket.StorageAttestation(id, host, 1);
        uint64 validUntil = uint64(block.timestamp + 1 hours);
        bytes[] memory sigs = committeeSign(market.hashStorageAttestations(a, validUntil), 1);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_NotEnoughSignatures.selector, 1, 2));
        market.attestStorage(a, validUntil, sigs);
    }

    function test_AttestsStartedPeriods() public {
        vm.roll(seedBlock(id, 2) + 1);
        vm.expectEmit(address(market));
        emit IStorageMarket.StoragePeriodsAttested(id, 0x07);
        attest(id, 0x07);
        assertEq(market.getStorageDeal(id).pendingPeriods, 0x08);
        attest(id, 0x01); // replaying a pass changes nothing
        assertEq(market.getStorageDeal(id).pendingPeriods, 0x08);
    }
}

contract SettleStorageDeal_Unit is StorageBase {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = activeDeal();
    }

    function test_RevertWhen_NothingEnded() public {
        uint256 end = seedBlock(id, 1);
        vm.roll(end - 1);
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_NothingToSettle.selector, id, end));
        market.settleStorageDeal(id);
    }

    function test_PaysProvenPeriodsAndRefundsMissedOnes() public {
        prove(id, 0); // on chain
        vm.roll(seedBlock(id, 2) + 1);
        attest(id, 0x04); // period 2 by the committee; period 1 missed
        vm.roll(seedBlock(id, 3));
        vm.expectEmit(address(market));
        emit IStorageMarket.StoragePeriodsSettled(id, 0, 3, 2, 1);
        vm.prank(stranger);
        market.settleStorageDeal(id);

        assertEq(market.balanceOf(host), 2 * PRICE * 9 / 10);
        assertEq(market.balanceOf(treasury), 2 * PRICE / 10);
        assertEq(market.balanceOf(buyer), PRICE + STORAGE_SLASH);
        assertEq(registry.getProvider(host).stake, 2 ether - STORAGE_SLASH);
        assertEq(registry.getProvider(host).jobsCompleted, 2);
        assertEq(registry.getProvider(host).jobsFailed, 1);
        assertEq(market.getStorageDeal(id).settledPeriods, 3);

        prove(id, 3);
        vm.roll(seedBlock(id, 4));
        market.settleStorageDeal(id);
        assertEq(uint8(market.getStorageDeal(id).status), uint8(IStorageMarket.StorageDealStatus.Completed));
        assertEq(market.balanceOf(host), 3 * PRICE * 9 / 10);
        // Every wei the buyer locked is credited to someone.
        assertEq(
            market.balanceOf(host) + market.balanceOf(treasury)
                + market.balanceOf(buyer) - STORAGE_SLASH,
            uint256(PERIODS) * PRICE
        );
    }

    function test_RevertGiven_Completed() public {
        vm.roll(seedBlock(id, 4) + 5);
        market.settleStorageDeal(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStorageMarket.StorageMarket_InvalidDealStatus.selector, id, IStorageMarket.StorageDealStatus.Completed
            )
        );
        market.settleStorageDeal(id);
        assertEq(market.balanceOf(buyer), uint256(PERIODS) * PRICE + 4 * STORAGE_SLASH);
    }
}

contract StorageStakeHold_Unit is StorageBase {
    /// Medium 1: a storage provider unbonded right after `accept`, and every period it then missed was
    /// refunded with no slash. The deal now holds its stake until its last period is settled.
    function test_AStorageProviderCannotUnbondAwayFromItsDeal() public {
        uint256 id = activeDeal();
        (uint64 until, uint32 open,) = registry.stakeLock(host);
        assertEq(open, 1);

        vm.prank(host);
        registry.requestStakeWithdrawal(2 ether); // all of it
        vm.warp(block.timestamp + UNBONDING);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_StakeLocked.selector, until, 1)
        );
        vm.prank(host);
        registry.withdrawStake();

        // It proves nothing: every period is missed, and each slash finds the stake it tried to take.
        vm.roll(seedBlock(id, PERIODS));
        uint256 before = market.balanceOf(buyer);
        market.settleStorageDeal(id);
        uint256 slash = uint256(PERIODS) * STORAGE_SLASH;
        if (slash > 2 ether) slash = 2 ether;
        assertEq(market.balanceOf(buyer), before + uint256(PERIODS) * PRICE + slash);
        (, open,) = registry.stakeLock(host);
        assertEq(open, 0, "the settled deal no longer holds the stake");
        if (registry.getProvider(host).unbonding != 0) {
            vm.prank(host);
            registry.withdrawStake();
        }
    }

    /// Two deals, two holds: settling one leaves the other's.
    function test_EachOpenDealHoldsTheStake() public {
        uint256 a = activeDeal();
        activeDeal();
        (, uint32 open,) = registry.stakeLock(host);
        assertEq(open, 2);
        vm.roll(seedBlock(a, PERIODS));
        market.settleStorageDeal(a);
        (, open,) = registry.stakeLock(host);
        assertEq(open, 1);
    }
}

/// Medium 2: open deals were hijacked for the price of one stake. Each deal now reserves collateral for
/// every period's slash; the buyer can drop a provider that stops proving.
contract StorageCollateral_Unit is StorageBase {
    /// One stake took ten deals it could never pay for. Now it takes as many as its stake covers.
    function test_OneStakeTakesOnlyTheDealsItsCollateralCovers() public {
        // 2 ether of stake, 0.8 ether of collateral per 4-period deal: two deals, not a third.
        activeDeal();
        activeDeal();
        (,, uint256 reserved) = registry.stakeLock(host);
        assertEq(reserved, 2 * uint256(PERIODS) * STORAGE_SLASH);
        uint256 third = createDeal(address(0));
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistry_InsufficientCollateral.selector,
                host,
                2 ether - reserved,
                uint256(PERIODS) * STORAGE_SLASH
            )
        );
        vm.prank(host);
        market.acceptStorageDeal(third);
    }

    /// Every missed period of every deal is paid in full from the collateral, however many deals.
    function test_EveryMissedPeriodIsPaidInFull() public {
        uint256 a = activeDeal();
        uint256 b = activeDeal();
        vm.roll(seedBlock(b, PERIODS));
        market.settleStorageDeal(a);
        market.settleStorageDeal(b);
        uint256 owed = 2 * uint256(PERIODS) * (PRICE + STORAGE_SLASH);
        assertEq(market.balanceOf(buyer), owed);
        (, uint32 open, uint256 reserved) = registry.stakeLock(host);
        assertEq(open, 0);
        assertEq(reserved, 0);
        assertEq(registry.getProvider(host).stake, 2 ether - 2 * uint256(PERIODS) * STORAGE_SLASH);
    }

    /// Settled periods give their collateral back.
    function test_SettledPeriodsReleaseTheirCollateral() public {
        uint256 id = activeDeal();
        prove(id, 0);
        vm.roll(seedBlock(id, 1));
        market.settleStorageDeal(id);
        (,, uint256 reserved) = registry.stakeLock(host);
        assertEq(reserved, uint256(PERIODS - 1) * STORAGE_SLASH);
    }

    /// Low: the buyer could take its own deal and farm reputation.
    function test_RevertWhen_BuyerTakesItsOwnDeal() public {
        registerProvider(buyer, 2 ether);
        uint256 id = createDeal(address(0));
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_BuyerIsProvider.selector, buyer));
        vm.prank(buyer);
        market.acceptStorageDeal(id);
    }
}

contract ReopenStorageDeal_Unit is StorageBase {
    uint16 internal constant LONG = 8;
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = createDealOf(LONG, address(0));
        vm.prank(host);
        market.acceptStorageDeal(id);
    }

    function test_RevertWhen_ProviderInGoodStanding() public {
        prove(id, 0);
        vm.roll(seedBlock(id, 3)); // periods 1 and 2 missed: two in a row, not three
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_ProviderInGoodStanding.selector, id, 2, 3));
        vm.prank(buyer);
        market.reopenStorageDeal(id);
    }

    function test_RevertWhen_NotBuyer() public {
        vm.roll(seedBlock(id, 3));
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_Unauthorized.selector, stranger, buyer));
        vm.prank(stranger);
        market.reopenStorageDeal(id);
    }

    /// The buyer could neither cancel nor re-open a deal whose provider vanished. After three missed
    /// periods it re-opens the rest to another provider, which is paid only for what it proves.
    function test_ReopensAfterThreeMissesToAnotherProvider() public {
        prove(id, 0);
        vm.roll(seedBlock(id, 4)); // 1, 2, 3 missed
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageDealReopened(id, host, LONG - 4);
        vm.prank(buyer);
        market.reopenStorageDeal(id);

        IStorageMarket.StorageDeal memory d = market.getStorageDeal(id);
        assertEq(uint8(d.status), uint8(IStorageMarket.StorageDealStatus.Open));
        assertEq(d.settledPeriods, 4);
        (, uint32 open, uint256 reserved) = registry.stakeLock(host);
        assertEq(open, 0, "the dropped provider's hold and collateral are released");
        assertEq(reserved, 0, "the dropped provider's hold and collateral are released");
        assertEq(market.balanceOf(buyer), 3 * (PRICE + STORAGE_SLASH));

        // The dropped provider cannot take it back (and reset its misses); another provider takes the
        // periods left; period 4 starts at the next block.
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_ProviderDropped.selector, host));
        vm.prank(host);
        market.acceptStorageDeal(id);
        vm.roll(block.number + 50);
        address next = providers[1];
        vm.prank(next);
        market.acceptStorageDeal(id);
        d = market.getStorageDeal(id);
        assertEq(d.startBlock + 4 * uint256(LEN), block.number + 1);
        assertEq(d.pendingPeriods, 0xf0);
        (, open, reserved) = registry.stakeLock(next);
        assertEq(open, 1);
        assertEq(reserved, uint256(LONG - 4) * STORAGE_SLASH);

        // The old provider's attestation does not count for the new one.
        vm.roll(seedBlock(id, 4) + 1);
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageAttestationSkipped(id, host, 0x10);
        attestFor(id, host, 0x10);
        for (uint256 p = 4; p < LONG; ++p) {
            prove(id, p);
        }
        vm.roll(seedBlock(id, LONG));
        market.settleStorageDeal(id);
        assertEq(uint8(market.getStorageDeal(id).status), uint8(IStorageMarket.StorageDealStatus.Completed));
        assertEq(market.balanceOf(next), 4 * PRICE * 9 / 10);
        assertEq(market.balanceOf(host), PRICE * 9 / 10);
        // Every wei the buyer locked is credited to someone; the slashes on top.
        assertEq(
            market.balanceOf(host) + market.balanceOf(next) + market.balanceOf(treasury) + market.balanceOf(buyer)
                - 3 * STORAGE_SLASH,
            uint256(LONG) * PRICE
        );
        assertEq(address(market).balance, uint256(LONG) * PRICE + 3 * STORAGE_SLASH);
    }

    /// A provider that is no longer active (its stake below the minimum) can be dropped at once.
    function test_ReopensWhenTheProviderIsNoLongerActive() public {
        vm.prank(host);
        registry.requestStakeWithdrawal(2 ether);
        assertFalse(registry.isActive(host));
        vm.prank(buyer);
        market.reopenStorageDeal(id);
        assertEq(uint8(market.getStorageDeal(id).status), uint8(IStorageMarket.StorageDealStatus.Open));
    }

    /// Or the buyer cancels and takes back what is unearned.
    function test_CancelsAfterThreeMissesAndTakesBackWhatIsUnearned() public {
        vm.roll(seedBlock(id, 3)); // 0, 1, 2 missed
        vm.expectEmit(address(market));
        emit IStorageMarket.StorageDealCancelled(id, uint256(LONG - 3) * PRICE);
        vm.prank(buyer);
        market.cancelStorageDeal(id);
        assertEq(market.balanceOf(buyer), uint256(LONG) * PRICE + 3 * STORAGE_SLASH);
        (, uint32 open, uint256 reserved) = registry.stakeLock(host);
        assertEq(open, 0);
        assertEq(reserved, 0);
        assertEq(uint8(market.getStorageDeal(id).status), uint8(IStorageMarket.StorageDealStatus.Cancelled));
    }

    /// A re-opened deal nobody takes can still be cancelled for the periods left.
    function test_CancelsAReopenedDeal() public {
        vm.roll(seedBlock(id, 3));
        vm.startPrank(buyer);
        market.reopenStorageDeal(id);
        market.cancelStorageDeal(id);
        vm.stopPrank();
        assertEq(market.balanceOf(buyer), uint256(LONG) * PRICE + 3 * STORAGE_SLASH);
    }
}

/// Low: the fee and the slash were read when periods settled, not when the deal started. Medium 3: the
/// treasury is fixed per deal too.
contract StorageSnapshot_Unit is StorageBase {
    function test_FeeSlashAndTreasuryAreThoseOfTheDealsStart() public {
        uint256 id = activeDeal();
        address otherTreasury = makeAddr("other-treasury");
        vm.prank(owner);
        market.setParams(
            IStorageMarket.StorageParams({
                treasury: otherTreasury, feeBps: 2_000, slashPerPeriod: 1 ether, minPricePerPeriod: 1, minPeriodLength: 2
            })
        );
        prove(id, 0);
        vm.roll(seedBlock(id, 2)); // period 1 missed
        market.settleStorageDeal(id);
        assertEq(market.balanceOf(treasury), PRICE / 10);
        assertEq(market.balanceOf(otherTreasury), 0);
        assertEq(market.balanceOf(host), PRICE * 9 / 10);
        assertEq(market.balanceOf(buyer), PRICE + STORAGE_SLASH);
    }

    /// Low: a fee that rounded to zero gave reputation away. It rounds up.
    function test_FeeRoundsUp() public {
        vm.prank(buyer);
        uint256 id = market.createStorageDeal{value: 1_001}(root, uint64(file.length), 1, LEN, 1_001, K, address(0));
        vm.prank(host);
        market.acceptStorageDeal(id);
        prove(id, 0);
        vm.roll(seedBlock(id, 1));
        market.settleStorageDeal(id);
        assertEq(market.balanceOf(treasury), 101); // 10% of 1,001 is 100.1
        assertEq(market.balanceOf(host), 900);
    }

    function test_RevertWhen_ParamsOutOfRange() public {
        IStorageMarket.StorageParams memory p = defaultStorageParams();
        p.slashPerPeriod = 0;
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidParams.selector, "slashPerPeriod"));
        vm.prank(owner);
        market.setParams(p);
        p.slashPerPeriod = 1 ether + 1;
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidParams.selector, "slashPerPeriod"));
        vm.prank(owner);
        market.setParams(p);
        p = defaultStorageParams();
        p.feeBps = 2_001;
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidParams.selector, "feeBps"));
        vm.prank(owner);
        market.setParams(p);
    }

    /// Low: two-block periods left one block to prove in. A deployment sets the shortest period; outside
    /// the devnet it leaves a 32-block proof window.
    function test_RevertWhen_PeriodShorterThanTheMinimum() public {
        IStorageMarket.StorageParams memory p = defaultStorageParams();
        p.minPeriodLength = 33;
        vm.prank(owner);
        market.setParams(p);
        _expectParam("periodLength", root, 1, 1, 32, PRICE);
        p.minPeriodLength = 1;
        vm.expectRevert(abi.encodeWithSelector(IStorageMarket.StorageMarket_InvalidParams.selector, "minPeriodLength"));
        vm.prank(owner);
        market.setParams(p);
    }

    function test_RevertWhen_OwnerRenounces() public {
        vm.expectRevert(IStorageMarket.StorageMarket_OwnerRequired.selector);
        vm.prank(owner);
        market.renounceOwnership();
        assertEq(market.owner(), owner);
    }
}

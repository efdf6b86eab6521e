// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {IVerifierCommittee} from "../../../src/interfaces/IVerifierCommittee.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";

/// @notice Shared set-up for the storage functions: a 5-chunk file and helpers to walk its periods.
abstract contract StorageBase is Base {
    uint16 internal constant PERIODS = 4;
    uint32 internal constant LEN = 10;
    uint96 internal constant PRICE = 0.1 ether;

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
        vm.prank(buyer);
        dealId = escrow.createStorageDeal{value: uint256(PERIODS) * PRICE}(
            root, uint64(file.length), PERIODS, LEN, PRICE, preferred
        );
    }

    function activeDeal() internal returns (uint256 dealId) {
        dealId = createDeal(address(0));
        vm.prank(host);
        escrow.acceptStorageDeal(dealId);
    }

    function seedBlock(uint256 dealId, uint256 period) internal view returns (uint256) {
        IJobEscrow.StorageDeal memory d = escrow.getStorageDeal(dealId);
        return d.startBlock + period * d.periodLength;
    }

    /// @dev Rolls into `period`'s proof window and proves it with the right chunk.
    function prove(uint256 dealId, uint256 period) internal {
        vm.roll(seedBlock(dealId, period) + 1);
        uint256 index = escrow.storageChallengeIndex(dealId, period);
        bytes32[] memory leaves = leavesOf(chunks);
        (, bytes32[] memory path) = merkle(leaves, index);
        escrow.proveStorage(dealId, period, chunks[index], path);
    }

    function attest(uint256 dealId, uint256 mask) internal {
        IJobEscrow.StorageAttestation[] memory a = new IJobEscrow.StorageAttestation[](1);
        a[0] = IJobEscrow.StorageAttestation(dealId, mask);
        bytes[] memory sigs = committeeSign(escrow.hashStorageAttestations(a), 2);
        escrow.attestStorage(a, sigs);
    }
}

contract CreateStorageDeal_Unit is StorageBase {
    function _expectParam(string memory field, bytes32 r, uint64 size, uint16 periods, uint32 len, uint96 price)
        internal
    {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidDealParameter.selector, field));
        vm.prank(buyer);
        escrow.createStorageDeal{value: uint256(periods) * price}(r, size, periods, len, price, address(0));
    }

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

    function test_RevertWhen_ValueWrong() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_WrongValue.selector, 1, uint256(PERIODS) * PRICE));
        vm.prank(buyer);
        escrow.createStorageDeal{value: 1}(root, 1, PERIODS, LEN, PRICE, address(0));
    }

    function test_CreatesDeal() public {
        vm.expectEmit(address(escrow));
        emit IJobEscrow.StorageDealCreated(1, buyer, root, uint64(file.length), PERIODS, LEN, PRICE, host);
        uint256 id = createDeal(host);
        IJobEscrow.StorageDeal memory d = escrow.getStorageDeal(id);
        assertEq(d.buyer, buyer);
        assertEq(d.merkleRoot, root);
        assertEq(d.size, file.length);
        assertEq(d.preferredProvider, host);
        assertEq(uint8(d.status), uint8(IJobEscrow.StorageDealStatus.Open));
        assertEq(address(escrow).balance, uint256(PERIODS) * PRICE);
        assertEq(escrow.nextDealId(), 2);
    }
}

contract AcceptStorageDeal_Unit is StorageBase {
    function test_RevertWhen_DealUnknown() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_UnknownDeal.selector, 9));
        vm.prank(host);
        escrow.acceptStorageDeal(9);
    }

    function test_RevertWhen_NotPreferred() public {
        uint256 id = createDeal(providers[1]);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_Unauthorized.selector, host, providers[1]));
        vm.prank(host);
        escrow.acceptStorageDeal(id);
    }

    function test_RevertWhen_NotActiveProvider() public {
        uint256 id = createDeal(address(0));
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_ProviderNotActive.selector, stranger));
        vm.prank(stranger);
        escrow.acceptStorageDeal(id);
    }

    function test_RevertGiven_AlreadyAccepted() public {
        uint256 id = activeDeal();
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidDealStatus.selector, id, IJobEscrow.StorageDealStatus.Active
            )
        );
        vm.prank(providers[1]);
        escrow.acceptStorageDeal(id);
    }

    function test_Accepts() public {
        uint256 id = createDeal(host);
        vm.expectEmit(address(escrow));
        emit IJobEscrow.StorageDealAccepted(id, host, uint64(block.number + 1));
        vm.prank(host);
        escrow.acceptStorageDeal(id);
        IJobEscrow.StorageDeal memory d = escrow.getStorageDeal(id);
        assertEq(d.provider, host);
        assertEq(d.startBlock, block.number + 1);
        assertEq(d.pendingPeriods, 0x0f);
        assertEq(uint8(d.status), uint8(IJobEscrow.StorageDealStatus.Active));
    }
}

contract CancelStorageDeal_Unit is StorageBase {
    function test_RevertWhen_NotBuyer() public {
        uint256 id = createDeal(address(0));
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_Unauthorized.selector, stranger, buyer));
        vm.prank(stranger);
        escrow.cancelStorageDeal(id);
    }

    function test_RevertGiven_Accepted() public {
        uint256 id = activeDeal();
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidDealStatus.selector, id, IJobEscrow.StorageDealStatus.Active
            )
        );
        vm.prank(buyer);
        escrow.cancelStorageDeal(id);
    }

    function test_CancelsAndRefunds() public {
        uint256 id = createDeal(address(0));
        vm.expectEmit(address(escrow));
        emit IJobEscrow.StorageDealCancelled(id);
        vm.prank(buyer);
        escrow.cancelStorageDeal(id);
        assertEq(escrow.balanceOf(buyer, address(0)), uint256(PERIODS) * PRICE);
        assertEq(uint8(escrow.getStorageDeal(id).status), uint8(IJobEscrow.StorageDealStatus.Cancelled));
    }
}

contract ProveStorage_Unit is StorageBase {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = activeDeal();
    }

    function _args(uint256 period) internal view returns (uint256 index, bytes memory chunk, bytes32[] memory path) {
        index = escrow.storageChallengeIndex(id, period);
        (, path) = merkle(leavesOf(chunks), index);
        chunk = chunks[index];
    }

    function test_RevertWhen_PeriodOutOfRange() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidPeriod.selector, id, 4, 4));
        escrow.proveStorage(id, 4, new bytes(CHUNK), new bytes32[](0));
    }

    function test_RevertWhen_SeedBlockNotMined() public {
        uint256 seed = seedBlock(id, 1);
        vm.roll(seed);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_OutsideProofWindow.selector, id, 1, seed + 1, seed + LEN - 1)
        );
        escrow.proveStorage(id, 1, new bytes(CHUNK), new bytes32[](0));
    }

    function test_RevertWhen_AfterWindow() public {
        uint256 seed = seedBlock(id, 0);
        vm.roll(seed + LEN);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_OutsideProofWindow.selector, id, 0, seed + 1, seed + LEN - 1)
        );
        escrow.proveStorage(id, 0, new bytes(CHUNK), new bytes32[](0));
    }

    function test_RevertWhen_ChunkNotPadded() public {
        vm.roll(seedBlock(id, 0) + 1);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidChunkLength.selector, 100));
        escrow.proveStorage(id, 0, new bytes(100), new bytes32[](0));
    }

    function test_RevertWhen_WrongChunk() public {
        vm.roll(seedBlock(id, 0) + 1);
        (uint256 index, bytes memory chunk, bytes32[] memory path) = _args(0);
        chunk[0] = bytes1(uint8(chunk[0]) ^ 1);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidStorageProof.selector, id, index));
        escrow.proveStorage(id, 0, chunk, path);
    }

    function test_RevertWhen_OtherChunkWithItsValidPath() public {
        // The index is bound by the path's left/right order: a valid proof of another chunk fails.
        vm.roll(seedBlock(id, 0) + 1);
        uint256 index = escrow.storageChallengeIndex(id, 0);
        uint256 other = (index + 1) % chunks.length;
        (, bytes32[] memory path) = merkle(leavesOf(chunks), other);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidStorageProof.selector, id, index));
        escrow.proveStorage(id, 0, chunks[other], path);
    }

    function test_RevertWhen_PathTooLong() public {
        vm.roll(seedBlock(id, 0) + 1);
        (uint256 index, bytes memory chunk, bytes32[] memory path) = _args(0);
        bytes32[] memory longer = new bytes32[](path.length + 1);
        for (uint256 i; i < path.length; ++i) {
            longer[i] = path[i];
        }
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidStorageProof.selector, id, index));
        escrow.proveStorage(id, 0, chunk, longer);
    }

    function test_RevertGiven_AlreadyProven() public {
        prove(id, 0);
        (, bytes memory chunk, bytes32[] memory path) = _args(0);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_PeriodNotPending.selector, id, 0));
        escrow.proveStorage(id, 0, chunk, path);
    }

    function test_RevertGiven_DealNotActive() public {
        uint256 open = createDeal(address(0));
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidDealStatus.selector, open, IJobEscrow.StorageDealStatus.Open)
        );
        escrow.proveStorage(open, 0, new bytes(CHUNK), new bytes32[](0));
    }

    function test_ProvesEveryPeriod() public {
        for (uint256 p; p < PERIODS; ++p) {
            vm.roll(seedBlock(id, p) + 1);
            (uint256 index,,) = _args(p);
            vm.expectEmit(address(escrow));
            emit IJobEscrow.StoragePeriodProven(id, p, index);
            prove(id, p);
        }
        assertEq(escrow.getStorageDeal(id).pendingPeriods, 0);
    }

    function test_ChallengeIndexFollowsTheSeedBlock() public {
        vm.roll(seedBlock(id, 0) + 1);
        uint256 expected =
            uint256(keccak256(abi.encode(blockhash(seedBlock(id, 0)), id, uint256(0)))) % chunks.length;
        assertEq(escrow.storageChallengeIndex(id, 0), expected);
    }

    function test_RevertWhen_SeedTooOld() public {
        vm.roll(seedBlock(id, 0) + 257);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_ChallengeSeedUnavailable.selector, id, 0));
        escrow.storageChallengeIndex(id, 0);
    }
}

contract AttestStorage_Unit is StorageBase {
    uint256 internal id;

    function setUp() public override {
        super.setUp();
        id = activeDeal();
    }

    function _attestExpectingRevert(uint256 mask) internal {
        IJobEscrow.StorageAttestation[] memory a = new IJobEscrow.StorageAttestation[](1);
        a[0] = IJobEscrow.StorageAttestation(id, mask);
        bytes[] memory sigs = committeeSign(escrow.hashStorageAttestations(a), 2);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidAttestation.selector, id, mask));
        escrow.attestStorage(a, sigs);
    }

    function test_RevertWhen_PeriodNotStarted() public {
        vm.roll(seedBlock(id, 1)); // period 1's seed block is not mined yet
        _attestExpectingRevert(0x02);
    }

    function test_RevertWhen_EmptyMask() public {
        vm.roll(seedBlock(id, 0) + 1);
        _attestExpectingRevert(0);
    }

    function test_RevertGiven_PeriodSettled() public {
        vm.roll(seedBlock(id, 1));
        escrow.settleStorageDeal(id); // period 0 settled as missed
        _attestExpectingRevert(0x01);
    }

    function test_RevertWhen_OneSignature() public {
        vm.roll(seedBlock(id, 0) + 1);
        IJobEscrow.StorageAttestation[] memory a = new IJobEscrow.StorageAttestation[](1);
        a[0] = IJobEscrow.StorageAttestation(id, 1);
        bytes[] memory sigs = committeeSign(escrow.hashStorageAttestations(a), 1);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_NotEnoughSignatures.selector, 1, 2));
        escrow.attestStorage(a, sigs);
    }

    function test_AttestsStartedPeriods() public {
        vm.roll(seedBlock(id, 2) + 1);
        vm.expectEmit(address(escrow));
        emit IJobEscrow.StoragePeriodsAttested(id, 0x07);
        attest(id, 0x07);
        assertEq(escrow.getStorageDeal(id).pendingPeriods, 0x08);
        attest(id, 0x01); // replaying a pass changes nothing
        assertEq(escrow.getStorageDeal(id).pendingPeriods, 0x08);
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
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_NothingToSettle.selector, id, end));
        escrow.settleStorageDeal(id);
    }

    function test_PaysProvenPeriodsAndRefundsMissedOnes() public {
        prove(id, 0); // on chain
        vm.roll(seedBlock(id, 2) + 1);
        attest(id, 0x04); // period 2 by the committee; period 1 missed
        vm.roll(seedBlock(id, 3));
        vm.expectEmit(address(escrow));
        emit IJobEscrow.StoragePeriodsSettled(id, 0, 3, 2, 1);
        vm.prank(stranger);
        escrow.settleStorageDeal(id);

        assertEq(escrow.balanceOf(host, address(0)), 2 * PRICE * 9 / 10);
        assertEq(escrow.balanceOf(treasury, address(0)), 2 * PRICE / 10);
        assertEq(escrow.balanceOf(buyer, address(0)), PRICE + STORAGE_SLASH);
        assertEq(registry.getProvider(host).stake, 2 ether - STORAGE_SLASH);
        assertEq(registry.getProvider(host).jobsCompleted, 2);
        assertEq(registry.getProvider(host).jobsFailed, 1);
        assertEq(escrow.getStorageDeal(id).settledPeriods, 3);

        prove(id, 3);
        vm.roll(seedBlock(id, 4));
        escrow.settleStorageDeal(id);
        assertEq(uint8(escrow.getStorageDeal(id).status), uint8(IJobEscrow.StorageDealStatus.Completed));
        assertEq(escrow.balanceOf(host, address(0)), 3 * PRICE * 9 / 10);
        // Every wei the buyer locked is credited to someone.
        assertEq(
            escrow.balanceOf(host, address(0)) + escrow.balanceOf(treasury, address(0))
                + escrow.balanceOf(buyer, address(0)) - STORAGE_SLASH,
            uint256(PERIODS) * PRICE
        );
    }

    function test_RevertGiven_Completed() public {
        vm.roll(seedBlock(id, 4) + 5);
        escrow.settleStorageDeal(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidDealStatus.selector, id, IJobEscrow.StorageDealStatus.Completed
            )
        );
        escrow.settleStorageDeal(id);
        assertEq(escrow.balanceOf(buyer, address(0)), uint256(PERIODS) * PRICE + 4 * STORAGE_SLASH);
    }
}

contract StorageStakeHold_Unit is StorageBase {
    /// Medium 1: a storage provider unbonded right after `accept`, and every period it then missed was
    /// refunded with no slash. The deal now holds its stake until its last period is settled.
    function test_AStorageProviderCannotUnbondAwayFromItsDeal() public {
        uint256 id = activeDeal();
        (uint64 until, uint32 open) = registry.stakeLock(host);
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
        uint256 before = escrow.balanceOf(buyer, address(0));
        escrow.settleStorageDeal(id);
        uint256 slash = uint256(PERIODS) * STORAGE_SLASH;
        if (slash > 2 ether) slash = 2 ether;
        assertEq(escrow.balanceOf(buyer, address(0)), before + uint256(PERIODS) * PRICE + slash);
        (, open) = registry.stakeLock(host);
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
        (, uint32 open) = registry.stakeLock(host);
        assertEq(open, 2);
        vm.roll(seedBlock(a, PERIODS));
        escrow.settleStorageDeal(a);
        (, open) = registry.stakeLock(host);
        assertEq(open, 1);
    }
}

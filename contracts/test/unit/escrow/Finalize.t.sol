// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";

contract Finalize_Unit is Base {
    uint256 internal jobId;
    IJobEscrow.ComputeJob internal job;

    function setUp() public override {
        super.setUp();
        (jobId, job) = createEthJob(1 ether);
    }

    function test_RevertWhen_BatchUnknown() public {
        IJobEscrow.BatchOutcome memory o;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_UnknownBatch.selector, 7));
        escrow.finalize(7, o);
    }

    function test_RevertWhen_WindowOpen() public {
        Settled memory st = settleOne(job, verdict(jobId, 0.6 ether, 3, 3));
        vm.warp(st.windowEnd - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_ChallengeWindowOpen.selector, st.batchId, st.windowEnd, st.windowEnd - 1
            )
        );
        escrow.finalize(st.batchId, st.outcome);
    }

    function test_RevertWhen_OutcomeAltered() public {
        Settled memory st = settleOne(job, verdict(jobId, 0.6 ether, 3, 3));
        vm.warp(st.windowEnd);
        st.outcome.providers[0].payout += 1;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_OutcomeMismatch.selector, st.batchId));
        escrow.finalize(st.batchId, st.outcome);
    }

    /// Low: `finalize` hashed the outcome to the end of calldata, so a forwarder that appends the
    /// sender (ERC-2771) could not call it. The hash covers the outcome's own encoding only.
    function test_FinalizesThroughAForwarderThatAppendsBytes() public {
        Settled memory st = settleOne(job, verdict(jobId, 0.6 ether, 3, 3));
        vm.warp(st.windowEnd);
        bytes memory data = abi.encodePacked(abi.encodeCall(escrow.finalize, (st.batchId, st.outcome)), bytes20(stranger));
        (bool ok,) = address(escrow).call(data);
        assertTrue(ok, "finalize with 20 bytes appended");
        assertTrue(escrow.getBatch(st.batchId).finalized);
    }

    /// A non-canonical encoding that decodes to another outcome still does not match.
    function test_RevertWhen_OutcomeEncodingPointsElsewhere() public {
        Settled memory st = settleOne(job, verdict(jobId, 0.6 ether, 3, 3));
        vm.warp(st.windowEnd);
        bytes memory data = abi.encodeCall(escrow.finalize, (st.batchId, st.outcome));
        // The jobIds offset (the 9th head word of the outcome) moved to a copy appended at the end.
        uint256 headStart = 4 + 64; // selector, batchId, the outcome's offset
        uint256 jobIdsOffset;
        assembly {
            jobIdsOffset := mload(add(add(data, 0x20), add(headStart, 256)))
        }
        bytes memory tail = abi.encode(uint256(1), uint256(999));
        bytes memory moved = bytes.concat(data, tail);
        uint256 newOffset = data.length - headStart;
        assembly {
            mstore(add(add(moved, 0x20), add(headStart, 256)), newOffset)
        }
        assertTrue(newOffset != jobIdsOffset);
        (bool ok, bytes memory why) = address(escrow).call(moved);
        assertFalse(ok);
        assertEq(why, abi.encodeWithSelector(IJobEscrow.JobEscrow_OutcomeMismatch.selector, st.batchId));
    }

    function test_RevertGiven_AlreadyFinalized() public {
        Settled memory st = settleOne(job, verdict(jobId, 0.6 ether, 3, 3));
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_BatchFinalized.selector, st.batchId));
        escrow.finalize(st.batchId, st.outcome);
    }

    function test_PaysNinetyTenAndRefunds() public {
        Settled memory st = settleOne(job, verdict(jobId, 0.6 ether, 3, 3));
        vm.warp(st.windowEnd);
        vm.expectEmit(address(escrow));
        emit IJobEscrow.ComputeBatchFinalized(st.batchId);
        vm.prank(stranger); // anyone may finalize
        escrow.finalize(st.batchId, st.outcome);

        for (uint256 i; i < 3; ++i) {
            assertEq(escrow.balanceOf(providers[i], address(0)), 0.18 ether);
            assertEq(registry.getProvider(providers[i]).jobsCompleted, 1);
        }
        assertEq(escrow.balanceOf(treasury, address(0)), 0.06 ether);
        assertEq(escrow.balanceOf(buyer, address(0)), 0.4 ether);
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Finalized));
        assertTrue(escrow.getBatch(st.batchId).finalized);
        // Everything the buyer locked is accounted for.
        assertEq(address(escrow).balance, 1 ether);
    }

    function test_SlashesMinorityToTreasury() public {
        Settled memory st = settleOne(job, verdict(jobId, 1 ether, 2, 3));
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        IProviderRegistry.Provider memory liar = registry.getProvider(providers[2]);
        assertEq(liar.stake, 2 ether - MINORITY_SLASH);
        assertEq(liar.jobsFailed, 1);
        assertEq(liar.timesSlashed, 1);
        assertEq(escrow.balanceOf(treasury, address(0)), 0.1 ether + MINORITY_SLASH);
        assertEq(escrow.balanceOf(providers[0], address(0)), 0.45 ether);
        assertEq(escrow.balanceOf(providers[2], address(0)), 0);
        assertEq(address(escrow).balance, 1 ether + MINORITY_SLASH);
    }

    function test_RefundSettlementReturnsBudget() public {
        Settled memory st = settleOne(job, verdict(jobId, 0, 0, 0));
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        assertEq(escrow.balanceOf(buyer, address(0)), 1 ether);
        assertEq(escrow.balanceOf(treasury, address(0)), 0);
    }

    function test_PaysInToken() public {
        IJobEscrow.ComputeJob memory tj = jobRecord(buyer, address(token), 100 ether, 3);
        uint256 id = createJob(tj);
        Settled memory st = settle(batchOf(address(token), one(verdict(id, 30 ether, 3, 3))), one(tj));
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        assertEq(escrow.balanceOf(providers[0], address(token)), 9 ether);
        assertEq(escrow.balanceOf(treasury, address(token)), 3 ether);
        assertEq(escrow.balanceOf(buyer, address(token)), 70 ether);
        assertEq(escrow.balanceOf(providers[0], address(0)), 0);
    }

    function test_LeavesChallengedJobToItsChallenge() public {
        (uint256 id2, IJobEscrow.ComputeJob memory j2) = createEthJob(1 ether);
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](2);
        list[0] = verdict(jobId, 0.6 ether, 3, 3);
        list[1] = verdict(id2, 0.3 ether, 2, 3);
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](2);
        jobs[0] = job;
        jobs[1] = j2;
        Settled memory st = settle(batchOf(address(0), list), jobs);

        vm.deal(stranger, 1 ether);
        IJobEscrow.ChallengeProof memory proof = challengeProof(st, j2, list, 1);
        vm.prank(stranger);
        escrow.challenge{value: BOND}(id2, proof);

        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        // Only job 1 is paid; job 2's price waits for its challenge, its unused budget is refunded.
        assertEq(escrow.balanceOf(providers[0], address(0)), 0.18 ether);
        assertEq(escrow.balanceOf(providers[2], address(0)), 0.18 ether);
        assertEq(escrow.balanceOf(treasury, address(0)), 0.06 ether);
        assertEq(escrow.balanceOf(buyer, address(0)), 0.4 ether + 0.7 ether);
        assertEq(registry.getProvider(providers[2]).jobsFailed, 0, "loser not counted while challenged");
        assertEq(registry.getProvider(providers[2]).stake, 2 ether, "loser not slashed while challenged");
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Finalized));
        assertEq(uint8(escrow.computeJobStatus(id2)), uint8(IJobEscrow.ComputeJobStatus.Challenged));
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";

contract Reclaim_Unit is Base {
    uint256 internal jobId;
    IJobEscrow.ComputeJob internal job;

    function setUp() public override {
        super.setUp();
        (jobId, job) = createEthJob(1 ether);
    }

    function test_RevertWhen_BeforeDeadline() public {
        vm.warp(job.deadline);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_DeadlineNotReached.selector, jobId, job.deadline, job.deadline)
        );
        escrow.reclaim(jobId, job);
    }

    function test_RevertWhen_RecordAltered() public {
        vm.warp(job.deadline + 1);
        IJobEscrow.ComputeJob memory forged = job;
        forged.buyer = stranger;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_JobRecordMismatch.selector, jobId));
        escrow.reclaim(jobId, forged);
    }

    function test_RevertGiven_Settled() public {
        settleOne(job, verdict(jobId, 0.5 ether, 3, 3));
        vm.warp(job.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidJobStatus.selector, jobId, IJobEscrow.ComputeJobStatus.Settled)
        );
        escrow.reclaim(jobId, job);
    }

    function test_RevertGiven_AlreadyReclaimed() public {
        vm.warp(job.deadline + 1);
        escrow.reclaim(jobId, job);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidJobStatus.selector, jobId, IJobEscrow.ComputeJobStatus.Reclaimed
            )
        );
        escrow.reclaim(jobId, job);
    }

    function test_CreditsWholeBudgetToBuyer() public {
        vm.warp(job.deadline + 1);
        vm.expectEmit(address(escrow));
        emit IJobEscrow.ComputeJobReclaimed(jobId, buyer, 1 ether);
        vm.prank(stranger); // anyone may trigger it; the money goes to the buyer
        escrow.reclaim(jobId, job);
        assertEq(escrow.balanceOf(buyer, address(0)), 1 ether);
        assertEq(escrow.balanceOf(stranger, address(0)), 0);
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Reclaimed));
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";

contract ExpireChallenge_Unit is Base {
    uint256 internal jobId;
    address internal challenger = makeAddr("challenger");

    function setUp() public override {
        super.setUp();
        IJobEscrow.ComputeJob memory job;
        (jobId, job) = createEthJob(1 ether);
        IJobEscrow.Settlement[] memory list = one(verdict(jobId, 0.6 ether, 3, 3));
        Settled memory s = settleOne(job, list[0]);
        vm.deal(challenger, 10 ether);
        IJobEscrow.ChallengeProof memory proof = challengeProof(s, job, list, 0);
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, proof);
    }

    function test_RevertWhen_CommitteeStillHasTime() public {
        uint64 resolveBy = escrow.getChallenge(jobId).resolveBy;
        vm.warp(resolveBy);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_ChallengeNotExpired.selector, jobId, resolveBy, resolveBy)
        );
        escrow.expireChallenge(jobId);
    }

    function test_RevertGiven_NotPending() public {
        vm.warp(escrow.getChallenge(jobId).resolveBy + 1);
        escrow.expireChallenge(jobId);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidChallengeStatus.selector, jobId, IJobEscrow.ChallengeStatus.Expired
            )
        );
        escrow.expireChallenge(jobId);
    }

    function test_ExpiredPaysJobAndReturnsBond() public {
        vm.warp(escrow.getChallenge(jobId).resolveBy + 1);
        vm.prank(stranger);
        escrow.expireChallenge(jobId);
        assertEq(escrow.balanceOf(challenger, address(0)), BOND);
        assertEq(escrow.balanceOf(providers[0], address(0)), 0.18 ether);
        assertEq(escrow.balanceOf(treasury, address(0)), 0.06 ether);
        assertEq(uint8(escrow.getChallenge(jobId).status), uint8(IJobEscrow.ChallengeStatus.Expired));
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Finalized));
    }
}

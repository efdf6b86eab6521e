// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";

contract Challenge_Unit is Base {
    uint256 internal jobId;
    IJobEscrow.ComputeJob internal job;
    IJobEscrow.Settlement[] internal list;
    bytes internal settledData;
    address internal challenger = makeAddr("challenger");

    function setUp() public override {
        super.setUp();
        (jobId, job) = createEthJob(1 ether);
        (uint256 other, IJobEscrow.ComputeJob memory otherJob) = createEthJob(1 ether);
        list.push(verdict(other, 0.5 ether, 3, 3));
        list.push(verdict(jobId, 0.6 ether, 2, 3));
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](2);
        jobs[0] = otherJob;
        jobs[1] = job;
        Settled memory s = settle(batchOf(address(0), list), jobs);
        settledData = abi.encode(s);
        vm.deal(challenger, 10 ether);
    }

    function st() internal view returns (Settled memory) {
        return abi.decode(settledData, (Settled));
    }

    function _proof() internal view returns (IJobEscrow.ChallengeProof memory) {
        return challengeProof(st(), job, list, 1);
    }

    function test_RevertWhen_JobRecordAltered() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        p.job.budget = 2 ether;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_JobRecordMismatch.selector, jobId));
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertGiven_JobNotSettled() public {
        (uint256 open, IJobEscrow.ComputeJob memory openJob) = createEthJob(1 ether);
        IJobEscrow.ChallengeProof memory p = _proof();
        p.job = openJob;
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidJobStatus.selector, open, IJobEscrow.ComputeJobStatus.Open)
        );
        vm.prank(challenger);
        escrow.challenge{value: BOND}(open, p);
    }

    function test_RevertGiven_AlreadyChallenged() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidJobStatus.selector, jobId, IJobEscrow.ComputeJobStatus.Challenged
            )
        );
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertWhen_BatchUnknown() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        p.batchId = 42;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_UnknownBatch.selector, 42));
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertWhen_OutcomeAltered() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        p.outcome.fee = 0;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_OutcomeMismatch.selector, st().batchId));
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertWhen_WindowClosed() public {
        vm.warp(st().windowEnd);
        IJobEscrow.ChallengeProof memory p = _proof();
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_ChallengeWindowClosed.selector, st().batchId, st().windowEnd, st().windowEnd
            )
        );
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertWhen_SettlementAltered() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        p.settlement.winners = 1; // claims provider 1 did not win
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_SettlementNotInBatch.selector, st().batchId, 1));
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertWhen_SettlementOfAnotherJob() public {
        IJobEscrow.ChallengeProof memory p = challengeProof(st(), job, list, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_SettlementNotInBatch.selector, st().batchId, 0));
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertWhen_IndexOutOfRange() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        p.index = 2;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_SettlementNotInBatch.selector, st().batchId, 2));
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);
    }

    function test_RevertWhen_BondWrong() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_WrongValue.selector, BOND - 1, BOND));
        vm.prank(challenger);
        escrow.challenge{value: BOND - 1}(jobId, p);
    }

    function test_RevertWhen_NothingToChallenge() public {
        (uint256 id, IJobEscrow.ComputeJob memory j) = createEthJob(1 ether);
        Settled memory s = settleOne(j, verdict(id, 0, 0, 0));
        IJobEscrow.Settlement[] memory l = one(verdict(id, 0, 0, 0));
        IJobEscrow.ChallengeProof memory p = challengeProof(s, j, l, 0);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_NothingToChallenge.selector, id));
        vm.prank(challenger);
        escrow.challenge{value: BOND}(id, p);
    }

    function test_Challenges() public {
        IJobEscrow.ChallengeProof memory p = _proof();
        vm.expectEmit(address(escrow));
        emit IJobEscrow.ComputeJobChallenged(jobId, st().batchId, challenger, BOND);
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, p);

        IJobEscrow.Challenge memory c = escrow.getChallenge(jobId);
        assertEq(c.challenger, challenger);
        assertEq(c.bond, BOND);
        assertEq(c.batchId, st().batchId);
        assertEq(c.resolveBy, block.timestamp + RESOLUTION);
        assertEq(uint8(c.status), uint8(IJobEscrow.ChallengeStatus.Pending));
        assertEq(c.price, 0.6 ether);
        IJobEscrow.ChallengeParties memory parties = escrow.getChallengeParties(jobId);
        assertEq(parties.winners.length, 2);
        assertEq(parties.winners[0], providers[0]);
        assertEq(parties.winners[1], providers[1]);
        assertEq(parties.losers.length, 1);
        assertEq(parties.losers[0], providers[2]);
        assertEq(escrow.getBatch(st().batchId).challenges, 1);
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Challenged));
    }

    /// A challenge holds its parties' stake until it can be resolved, even when the resolution period
    /// was raised after the batch settled (its stake hold ended with the old period).
    function test_HoldsThePartiesStakeUntilTheChallengeCanBeResolved() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.challengeResolutionPeriod = RESOLUTION + 1 days;
        vm.prank(owner);
        escrow.setParams(p);
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, _proof());
        uint64 resolveBy = escrow.getChallenge(jobId).resolveBy;
        for (uint256 i; i < 3; ++i) {
            (uint64 until,,) = registry.stakeLock(providers[i]);
            assertGe(until, resolveBy, "every party of the challenged settlement");
        }
    }
}

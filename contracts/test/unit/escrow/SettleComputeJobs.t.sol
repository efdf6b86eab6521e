// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {IVerifierCommittee} from "../../../src/interfaces/IVerifierCommittee.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";

contract SettleComputeJobs_Unit is Base {
    uint256 internal jobId;
    IJobEscrow.ComputeJob internal job;

    function setUp() public override {
        super.setUp();
        (jobId, job) = createEthJob(1 ether);
    }

    function _sigs(IJobEscrow.SettlementBatch memory b) internal view returns (bytes[] memory) {
        return committeeSign(escrow.hashSettlementBatch(b), 2);
    }

    function test_RevertWhen_BatchEmpty() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), new IJobEscrow.Settlement[](0));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidBatchLength.selector, 0, 0));
        escrow.settleComputeJobs(b, new IJobEscrow.ComputeJob[](0), sigs);
    }

    /// Low: batch size was unbounded, and finalize costs ~2.5× settle per job. A batch settles at most
    /// `MAX_BATCH_JOBS` jobs, so that finalizing it always fits in a block.
    function test_RevertWhen_BatchTooLarge() public {
        uint256 n = escrow.MAX_BATCH_JOBS() + 1;
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), new IJobEscrow.Settlement[](n));
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidBatchLength.selector, n, n));
        escrow.settleComputeJobs(b, new IJobEscrow.ComputeJob[](n), new bytes[](0));
    }

    function test_RevertWhen_LengthsDiffer() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidBatchLength.selector, 0, 1));
        escrow.settleComputeJobs(b, new IJobEscrow.ComputeJob[](0), sigs);
    }

    function test_RevertWhen_OneSignatureOfTwo() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = committeeSign(escrow.hashSettlementBatch(b), 1);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_NotEnoughSignatures.selector, 1, 2));
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_SignedForAnotherBatch() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        b.settlements[0].price = 1 ether; // the committee signed 0.5
        vm.expectRevert();
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_ProvidersNotAscending() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 1, 1)));
        (b.providers[0], b.providers[1]) = (b.providers[1], b.providers[0]);
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidProviders.selector, 3));
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_NoProviders() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0, 0, 0)));
        b.providers = new address[](0);
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidProviders.selector, 0));
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_ProviderNotRegistered() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        b.providers = new address[](1);
        b.providers[0] = stranger;
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_NotRegistered.selector, stranger));
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_JobUnknown() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(99, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_UnknownJob.selector, 99));
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_JobRecordAltered() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        IJobEscrow.ComputeJob memory forged = job;
        forged.budget = 100 ether;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_JobRecordMismatch.selector, jobId));
        escrow.settleComputeJobs(b, one(forged), sigs);
    }

    function test_RevertGiven_JobAlreadySettled() public {
        settleOne(job, verdict(jobId, 0.5 ether, 3, 3));
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.4 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidJobStatus.selector, jobId, IJobEscrow.ComputeJobStatus.Settled
            )
        );
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertGiven_SameBatchSubmittedTwice() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        escrow.settleComputeJobs(b, one(job), sigs);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidJobStatus.selector, jobId, IJobEscrow.ComputeJobStatus.Settled
            )
        );
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_JobTwiceInOneBatch() public {
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](2);
        list[0] = verdict(jobId, 0.1 ether, 3, 3);
        list[1] = verdict(jobId, 0.1 ether, 3, 3);
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](2);
        jobs[0] = job;
        jobs[1] = job;
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), list);
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidJobStatus.selector, jobId, IJobEscrow.ComputeJobStatus.Settled
            )
        );
        escrow.settleComputeJobs(b, jobs, sigs);
    }

    /// Low: one job whose deadline passed while its batch was in flight reverted the whole batch. It is
    /// skipped with an event (reclaimed meanwhile or not); the others settle.
    function test_SkipsAReclaimedJobAndSettlesTheRest() public {
        (uint256 other, IJobEscrow.ComputeJob memory otherJob) = _laterJob();
        vm.warp(job.deadline + 1);
        escrow.reclaim(jobId, job);
        _settlesOnlyTheSecond(other, otherJob, IJobEscrow.ComputeJobStatus.Reclaimed);
    }

    function test_SkipsAJobPastItsDeadlineAndSettlesTheRest() public {
        (uint256 other, IJobEscrow.ComputeJob memory otherJob) = _laterJob();
        vm.warp(job.deadline + 1);
        _settlesOnlyTheSecond(other, otherJob, IJobEscrow.ComputeJobStatus.Open);
        vm.warp(block.timestamp + 1);
        escrow.reclaim(jobId, job); // the skipped job is still the buyer's to reclaim
    }

    function _laterJob() internal returns (uint256 id, IJobEscrow.ComputeJob memory j) {
        j = jobRecord(buyer, address(0), 1 ether, 3);
        j.deadline = uint64(block.timestamp + 10 days);
        id = createJob(j);
    }

    function _settlesOnlyTheSecond(uint256 other, IJobEscrow.ComputeJob memory otherJob, IJobEscrow.ComputeJobStatus was)
        internal
    {
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](2);
        list[0] = verdict(jobId, 0.5 ether, 3, 3);
        list[1] = verdict(other, 0.5 ether, 3, 3);
        IJobEscrow.ComputeJob[] memory records = new IJobEscrow.ComputeJob[](2);
        records[0] = job;
        records[1] = otherJob;
        vm.expectEmit(address(escrow));
        emit IJobEscrow.ComputeJobSkipped(jobId, was);
        Settled memory st = settle(batchOf(address(0), list), records);
        assertEq(st.outcome.jobIds.length, 1);
        assertEq(st.outcome.jobIds[0], other);
        assertEq(st.digests.length, 1);
        assertEq(uint8(escrow.computeJobStatus(other)), uint8(IJobEscrow.ComputeJobStatus.Settled));
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        assertEq(uint8(escrow.computeJobStatus(other)), uint8(IJobEscrow.ComputeJobStatus.Finalized));
    }

    function test_RevertWhen_EveryJobIsSkipped() public {
        vm.warp(job.deadline + 1);
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidBatchLength.selector, 0, 1));
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    /// Low: signed batches never expired. Past `validUntil` they are refused.
    function test_RevertWhen_SignaturesExpired() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        vm.warp(b.validUntil + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_SignaturesExpired.selector, b.validUntil, b.validUntil + 1)
        );
        escrow.settleComputeJobs(b, one(job), sigs);
        // Nor can the deadline be stretched: the signatures cover it.
        b.validUntil += 1 hours;
        vm.expectRevert();
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_TokenDiffersFromBatch() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(token), one(verdict(jobId, 0.5 ether, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_TokenMismatch.selector, jobId, address(0), address(token))
        );
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_PriceAboveBudget() public {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(jobId, 1 ether + 1, 3, 3)));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_PriceAboveBudget.selector, jobId, 1 ether + 1, 1 ether)
        );
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function _expectInvalidVerdict(IJobEscrow.Settlement memory s) internal {
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(s));
        bytes[] memory sigs = _sigs(b);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidVerdict.selector, jobId, s.winners, s.losers, 3)
        );
        escrow.settleComputeJobs(b, one(job), sigs);
    }

    function test_RevertWhen_NoStrictMajority() public {
        IJobEscrow.Settlement memory s = verdict(jobId, 0.5 ether, 1, 2); // 1 of 2 is a tie
        s.losers = 2;
        _expectInvalidVerdict(s);
    }

    function test_RevertWhen_FewerReplicasThanRedundancy() public {
        _expectInvalidVerdict(verdict(jobId, 0.5 ether, 2, 2));
    }

    function test_RevertWhen_WinnersAndLosersOverlap() public {
        IJobEscrow.Settlement memory s = verdict(jobId, 0.5 ether, 3, 3);
        s.losers = 1;
        _expectInvalidVerdict(s);
    }

    function test_RevertWhen_BitOutsideProviders() public {
        IJobEscrow.Settlement memory s = verdict(jobId, 0.5 ether, 3, 3);
        s.winners = 0x0f; // bit 3: there is no providers[3]
        _expectInvalidVerdict(s);
    }

    function test_RevertWhen_ResultWithZeroDigest() public {
        IJobEscrow.Settlement memory s = verdict(jobId, 0.5 ether, 3, 3);
        s.resultDigest = 0;
        _expectInvalidVerdict(s);
    }

    function test_RevertWhen_RefundChargesAPrice() public {
        _expectInvalidVerdict(verdict(jobId, 1, 0, 0));
    }

    function test_RevertWhen_RefundNamesLosers() public {
        IJobEscrow.Settlement memory s = verdict(jobId, 0, 0, 0);
        s.losers = 1;
        _expectInvalidVerdict(s);
    }

    function test_SettlesUnanimous() public {
        Settled memory st = settleOne(job, verdict(jobId, 0.6 ether, 3, 3));
        assertEq(st.batchId, 1);
        assertEq(escrow.nextBatchId(), 2);
        assertEq(st.windowEnd, block.timestamp + WINDOW);
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Settled));
        IJobEscrow.BatchOutcome memory o = st.outcome;
        assertEq(o.token, address(0));
        assertEq(o.feeBps, FEE_BPS);
        assertEq(o.slashPerFailure, MINORITY_SLASH);
        assertEq(o.jobIds.length, 1);
        assertEq(o.jobIds[0], jobId);
        assertEq(st.digests[0], keccak256(abi.encode("digest", jobId)));
        // 0.6 ether: 90% = 0.54 split three ways, 0.06 fee.
        for (uint256 i; i < 3; ++i) {
            assertEq(o.providers[i].provider, providers[i]);
            assertEq(o.providers[i].payout, 0.18 ether);
            assertEq(o.providers[i].completed, 1);
            assertEq(o.providers[i].failed, 0);
        }
        assertEq(o.fee, 0.06 ether);
        assertEq(o.refunds.length, 1);
        assertEq(o.refunds[0].buyer, buyer);
        assertEq(o.refunds[0].amount, 0.4 ether);
        IJobEscrow.ComputeBatch memory b = escrow.getBatch(st.batchId);
        assertEq(b.outcomeHash, keccak256(abi.encode(o)));
        assertFalse(b.finalized);
        // Nothing is paid yet.
        assertEq(escrow.balanceOf(providers[0], address(0)), 0);
    }

    function test_SettlesMajorityWithALoser() public {
        Settled memory st = settleOne(job, verdict(jobId, 1 ether, 2, 3));
        assertEq(st.outcome.providers[0].payout, 0.45 ether);
        assertEq(st.outcome.providers[1].payout, 0.45 ether);
        assertEq(st.outcome.providers[2].payout, 0);
        assertEq(st.outcome.providers[2].failed, 1);
        assertEq(st.outcome.refunds.length, 0, "whole budget charged");
    }

    function test_SettlesRefund() public {
        Settled memory st = settleOne(job, verdict(jobId, 0, 0, 0));
        assertEq(st.outcome.fee, 0);
        assertEq(st.outcome.refunds[0].amount, 1 ether);
    }

    function test_FeeDustGoesToTreasury() public {
        (uint256 id2, IJobEscrow.ComputeJob memory j2) = createEthJob(1 ether);
        Settled memory st = settleOne(j2, verdict(id2, 100, 3, 3));
        // 90 split three ways is 30 each; fee 10. With 101 wei: 90.9 → 90 → 30 each, fee 11.
        assertEq(st.outcome.providers[0].payout + st.outcome.providers[1].payout + st.outcome.providers[2].payout + st.outcome.fee, 100);
        (uint256 id3, IJobEscrow.ComputeJob memory j3) = createEthJob(1 ether);
        st = settleOne(j3, verdict(id3, 101, 3, 3));
        assertEq(st.outcome.providers[0].payout, 30);
        assertEq(st.outcome.fee, 11);
    }

    function test_AggregatesManyJobsOfOneBuyer() public {
        uint256 n = 5;
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](n);
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](n);
        for (uint256 i; i < n; ++i) {
            (uint256 id, IJobEscrow.ComputeJob memory j) = createEthJob(1 ether);
            list[i] = verdict(id, 0.3 ether, 3, 3);
            jobs[i] = j;
        }
        Settled memory st = settle(batchOf(address(0), list), jobs);
        assertEq(st.outcome.refunds.length, 1, "consecutive refunds to one buyer merge");
        assertEq(st.outcome.refunds[0].amount, 3.5 ether);
        assertEq(st.outcome.providers[0].payout, 0.45 ether);
        assertEq(st.outcome.providers[0].completed, 5);
        assertEq(st.outcome.jobIds.length, n);
    }

    function test_JobsAcrossStatusWords() public {
        // Ids 2..=200 straddle the 128-job status words.
        uint256 n = 199;
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](n);
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](n);
        for (uint256 i; i < n; ++i) {
            (uint256 id, IJobEscrow.ComputeJob memory j) = createEthJob(1);
            list[i] = verdict(id, 1, 3, 3);
            jobs[i] = j;
        }
        settle(batchOf(address(0), list), jobs);
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Open), "job 1 untouched");
        for (uint256 i; i < n; ++i) {
            assertEq(uint8(escrow.computeJobStatus(list[i].jobId)), uint8(IJobEscrow.ComputeJobStatus.Settled));
        }
    }

    /// Medium 1: stake asked back while a job runs used to leave when the unbonding delay ended, even
    /// if the job settled meanwhile and its challenge window was still open: an upheld challenge then
    /// found nothing to slash. Every provider a batch names is now held until the batch's window and
    /// resolution period are over.
    function test_ABatchsProvidersCannotWithdrawBeforeItsChallengeCouldBeResolved() public {
        address winner = providers[0];
        vm.prank(winner);
        registry.requestStakeWithdrawal(MIN_STAKE); // while a job runs
        vm.warp(block.timestamp + UNBONDING - 1 hours);
        (uint256 id, IJobEscrow.ComputeJob memory late) = createEthJob(1 ether);
        Settled memory s = settleOne(late, verdict(id, 0.5 ether, 3, 3));
        uint64 holdUntil = s.windowEnd + RESOLUTION;
        (uint64 until, uint32 open,) = registry.stakeLock(winner);
        assertEq(until, holdUntil);
        assertEq(open, 0);

        vm.warp(block.timestamp + 1 hours); // the unbonding delay is over...
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_StakeLocked.selector, holdUntil, 0));
        vm.prank(winner);
        registry.withdrawStake(); // ...the hold is not

        vm.warp(holdUntil);
        uint256 before = winner.balance;
        vm.prank(winner);
        registry.withdrawStake();
        assertEq(winner.balance, before + MIN_STAKE);
    }

    /// A later batch extends the hold; an earlier one never shortens it.
    function test_HoldsOnlyGrow() public {
        Settled memory first = settleOne(job, verdict(jobId, 0.5 ether, 3, 3));
        (uint256 id2, IJobEscrow.ComputeJob memory job2) = createEthJob(1 ether);
        vm.warp(block.timestamp + 1 hours);
        Settled memory second = settleOne(job2, verdict(id2, 0.5 ether, 3, 3));
        (uint64 until,,) = registry.stakeLock(providers[1]);
        assertEq(until, second.windowEnd + RESOLUTION);
        assertGt(until, first.windowEnd + RESOLUTION);
    }
}

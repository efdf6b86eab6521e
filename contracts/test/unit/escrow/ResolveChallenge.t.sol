// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {IVerifierCommittee} from "../../../src/interfaces/IVerifierCommittee.sol";

contract ResolveChallenge_Unit is Base {
    uint256 internal jobId;
    IJobEscrow.ComputeJob internal job;
    bytes internal settledData;
    address internal challenger = makeAddr("challenger");

    function setUp() public override {
        super.setUp();
        (jobId, job) = createEthJob(1 ether);
        IJobEscrow.Settlement[] memory list = one(verdict(jobId, 0.6 ether, 2, 3));
        Settled memory s = settleOne(job, list[0]);
        settledData = abi.encode(s);
        vm.deal(challenger, 10 ether);
        IJobEscrow.ChallengeProof memory proof = challengeProof(s, job, list, 0);
        vm.prank(challenger);
        escrow.challenge{value: BOND}(jobId, proof);
    }

    function st() internal view returns (Settled memory) {
        return abi.decode(settledData, (Settled));
    }

    function _resolve(bool upheld) internal {
        bytes[] memory sigs = committeeSign(escrow.hashChallengeResolution(jobId, upheld), 2);
        escrow.resolveChallenge(jobId, upheld, sigs);
    }

    function test_RevertGiven_NoChallenge() public {
        (uint256 id,) = createEthJob(1);
        bytes[] memory sigs = committeeSign(escrow.hashChallengeResolution(id, true), 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidChallengeStatus.selector, id, IJobEscrow.ChallengeStatus.None
            )
        );
        escrow.resolveChallenge(id, true, sigs);
    }

    function test_RevertWhen_SignedTheOtherVerdict() public {
        bytes[] memory sigs = committeeSign(escrow.hashChallengeResolution(jobId, false), 2);
        vm.expectRevert(); // recovers to strangers
        escrow.resolveChallenge(jobId, true, sigs);
    }

    function test_RevertWhen_OneSignature() public {
        bytes[] memory sigs = committeeSign(escrow.hashChallengeResolution(jobId, true), 1);
        vm.expectRevert(abi.encodeWithSelector(IVerifierCommittee.VerifierCommittee_NotEnoughSignatures.selector, 1, 2));
        escrow.resolveChallenge(jobId, true, sigs);
    }

    function test_RevertGiven_AlreadyResolved() public {
        _resolve(true);
        bytes[] memory sigs = committeeSign(escrow.hashChallengeResolution(jobId, true), 2);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_InvalidChallengeStatus.selector, jobId, IJobEscrow.ChallengeStatus.Upheld
            )
        );
        escrow.resolveChallenge(jobId, true, sigs);
    }

    function test_UpheldRefundsBuyerAndSlashesWinners() public {
        vm.expectEmit(address(escrow));
        emit IJobEscrow.ChallengeResolved(jobId, IJobEscrow.ChallengeStatus.Upheld);
        _resolve(true);
        vm.warp(st().windowEnd);
        escrow.finalize(st().batchId, st().outcome);

        // Budget back in full: the price from the challenge, the rest from the batch; plus both
        // winners' slashed stake, 80% to the harmed buyer and 20% to the challenger who showed it (Low:
        // an upheld challenge paid the challenger only its bond back).
        uint256 share = MINORITY_SLASH * 2_000 / 10_000;
        assertEq(escrow.balanceOf(buyer, address(0)), 1 ether + 2 * (MINORITY_SLASH - share));
        assertEq(escrow.balanceOf(challenger, address(0)), BOND + 2 * share);
        assertEq(escrow.balanceOf(providers[0], address(0)), 0);
        assertEq(escrow.balanceOf(providers[1], address(0)), 0);
        assertEq(escrow.balanceOf(treasury, address(0)), 0);
        assertEq(registry.getProvider(providers[0]).stake, 2 ether - MINORITY_SLASH);
        assertEq(registry.getProvider(providers[0]).jobsFailed, 1);
        assertEq(registry.getProvider(providers[2]).stake, 2 ether, "the minority was right");
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Refunded));
        assertEq(address(escrow).balance, 1 ether + BOND + 2 * MINORITY_SLASH);
    }

    function test_RejectedPaysJobAndForfeitsBond() public {
        _resolve(false);
        assertEq(escrow.balanceOf(providers[0], address(0)), 0.27 ether + BOND / 2);
        assertEq(escrow.balanceOf(providers[1], address(0)), 0.27 ether + BOND / 2);
        assertEq(escrow.balanceOf(treasury, address(0)), 0.06 ether + MINORITY_SLASH);
        assertEq(escrow.balanceOf(challenger, address(0)), 0);
        assertEq(registry.getProvider(providers[2]).stake, 2 ether - MINORITY_SLASH);
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Finalized));

        vm.warp(st().windowEnd);
        escrow.finalize(st().batchId, st().outcome);
        // The batch pays only the refund; the job was paid by the challenge, once.
        assertEq(escrow.balanceOf(providers[0], address(0)), 0.27 ether + BOND / 2);
        assertEq(escrow.balanceOf(buyer, address(0)), 0.4 ether);
        assertEq(escrow.balanceOf(treasury, address(0)), 0.06 ether + MINORITY_SLASH);
        assertEq(registry.getProvider(providers[2]).timesSlashed, 1, "slashed once");
    }

    /// Low: a resolution sent after `resolveBy` raced `expireChallenge`. It is refused; the challenge can
    /// only expire then.
    function test_RevertWhen_ResolvedAfterResolveBy() public {
        IJobEscrow.Challenge memory c = escrow.getChallenge(jobId);
        bytes[] memory sigs = committeeSign(escrow.hashChallengeResolution(jobId, true), 2);
        vm.warp(c.resolveBy + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_ChallengeExpired.selector, jobId, c.resolveBy, c.resolveBy + 1)
        );
        escrow.resolveChallenge(jobId, true, sigs);
        escrow.expireChallenge(jobId);
        assertEq(uint8(escrow.getChallenge(jobId).status), uint8(IJobEscrow.ChallengeStatus.Expired));
    }

    /// Resolving at `resolveBy` itself still works.
    function test_ResolvesAtResolveBy() public {
        vm.warp(escrow.getChallenge(jobId).resolveBy);
        _resolve(false);
        assertEq(uint8(escrow.getChallenge(jobId).status), uint8(IJobEscrow.ChallengeStatus.Rejected));
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {JobEscrow} from "../../../src/JobEscrow.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IVerifierCommittee} from "../../../src/interfaces/IVerifierCommittee.sol";
import {IStorageMarket} from "../../../src/interfaces/IStorageMarket.sol";

contract SetParams_Unit is Base {
    function test_RevertWhen_NotOwner() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        escrow.setParams(p);
    }

    function test_RevertWhen_FeeAboveCap() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.feeBps = 2_001;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidParams.selector, "feeBps"));
        vm.prank(owner);
        escrow.setParams(p);
    }

    function test_RevertWhen_TreasuryZero() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.treasury = address(0);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_ZeroAddress.selector, "treasury"));
        vm.prank(owner);
        escrow.setParams(p);
    }

    function test_RevertWhen_WindowTooLong() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.challengeWindow = 30 days + 1;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidParams.selector, "challengeWindow"));
        vm.prank(owner);
        escrow.setParams(p);
    }

    /// Medium 1: stake asked back at settlement must outlast any challenge of it.
    function test_RevertWhen_WindowPlusResolutionReachesTheUnbondingDelay() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.challengeWindow = uint32(UNBONDING - p.challengeResolutionPeriod);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidParams.selector, "challengeWindow"));
        vm.prank(owner);
        escrow.setParams(p);
        p.challengeWindow -= 1;
        vm.prank(owner);
        escrow.setParams(p);
    }

    function test_RevertWhen_ResolutionPeriodZero() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.challengeResolutionPeriod = 0;
        vm.expectRevert(
            abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidParams.selector, "challengeResolutionPeriod")
        );
        vm.prank(owner);
        escrow.setParams(p);
    }

    function test_RevertWhen_ConstructedWithoutRegistry() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_ZeroAddress.selector, "registry"));
        new JobEscrow(owner, IProviderRegistry(address(0)), committee, defaultParams());
    }

    function test_SetsParamsForLaterBatches() public {
        (uint256 a, IJobEscrow.ComputeJob memory ja) = createEthJob(1 ether);
        Settled memory before = settleOne(ja, verdict(a, 0.9 ether, 3, 3));

        IJobEscrow.EscrowParams memory p = defaultParams();
        p.feeBps = 500;
        p.treasury = stranger;
        vm.expectEmit(address(escrow));
        emit IJobEscrow.ParamsSet(p);
        vm.prank(owner);
        escrow.setParams(p);
        assertEq(escrow.params().feeBps, 500);

        (uint256 b, IJobEscrow.ComputeJob memory jb) = createEthJob(1 ether);
        Settled memory afterwards = settleOne(jb, verdict(b, 0.9 ether, 3, 3));
        assertEq(before.outcome.fee, 0.09 ether, "fee fixed at settlement");
        assertEq(afterwards.outcome.fee, 0.045 ether);
    }

    /// Medium 3: the owner could set a zero challenge window and bond, and unbounded slashes. The window
    /// and the bond never go below what the escrow was deployed with; the slash stays under its cap.
    function test_RevertWhen_WindowOrBondBelowTheDeployedOnes() public {
        assertEq(escrow.minChallengeWindow(), WINDOW);
        assertEq(escrow.minChallengeBond(), BOND);
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.challengeWindow = WINDOW - 1;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidParams.selector, "challengeWindow"));
        vm.prank(owner);
        escrow.setParams(p);
        p = defaultParams();
        p.challengeBond = BOND - 1;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidParams.selector, "challengeBond"));
        vm.prank(owner);
        escrow.setParams(p);
        // Raising them is fine.
        p = defaultParams();
        p.challengeWindow = WINDOW + 1;
        p.challengeBond = BOND + 1;
        vm.prank(owner);
        escrow.setParams(p);
    }

    function test_RevertWhen_SlashAboveCap() public {
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.minoritySlash = 1 ether + 1;
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidParams.selector, "minoritySlash"));
        vm.prank(owner);
        escrow.setParams(p);
    }

    /// Medium 3: the treasury was read at finalization, so a new one took the fees of batches settled
    /// before it was set. It is fixed when the batch settles.
    function test_TreasuryIsTheOneOfTheBatchesSettlement() public {
        (uint256 a, IJobEscrow.ComputeJob memory ja) = createEthJob(1 ether);
        Settled memory st = settleOne(ja, verdict(a, 0.9 ether, 2, 3)); // one loser: a slash to the treasury
        assertEq(st.outcome.treasury, treasury);
        IJobEscrow.EscrowParams memory p = defaultParams();
        p.treasury = stranger;
        vm.prank(owner);
        escrow.setParams(p);
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        assertEq(escrow.balanceOf(treasury, address(0)), 0.09 ether + MINORITY_SLASH);
        assertEq(escrow.balanceOf(stranger, address(0)), 0);
    }

    /// Medium 3: ownership moves in two steps and cannot be renounced, in all four contracts.
    function test_OwnershipMovesInTwoStepsAndIsNeverRenounced() public {
        address next = makeAddr("timelock");
        vm.prank(owner);
        escrow.transferOwnership(next);
        assertEq(escrow.owner(), owner, "nothing moves until the new owner accepts");
        vm.prank(next);
        escrow.acceptOwnership();
        assertEq(escrow.owner(), next);

        vm.expectRevert(IJobEscrow.JobEscrow_OwnerRequired.selector);
        vm.prank(next);
        escrow.renounceOwnership();
        vm.expectRevert(IProviderRegistry.ProviderRegistry_OwnerRequired.selector);
        vm.prank(owner);
        registry.renounceOwnership();
        vm.expectRevert(IVerifierCommittee.VerifierCommittee_OwnerRequired.selector);
        vm.prank(owner);
        committee.renounceOwnership();
        vm.expectRevert(IStorageMarket.StorageMarket_OwnerRequired.selector);
        vm.prank(owner);
        market.renounceOwnership();
        assertEq(registry.owner(), owner);
        assertEq(committee.owner(), owner);
        assertEq(market.owner(), owner);
    }
}

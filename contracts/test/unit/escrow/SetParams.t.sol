// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {JobEscrow} from "../../../src/JobEscrow.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

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
}

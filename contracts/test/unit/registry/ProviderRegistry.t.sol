// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";
import {ProviderRegistry} from "../../../src/ProviderRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract Register_Unit is Base {
    address internal p = makeAddr("new-provider");

    function test_RevertWhen_StakeBelowMinimum() public {
        vm.deal(p, 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_StakeBelowMinimum.selector, 0.5 ether, MIN_STAKE)
        );
        vm.prank(p);
        registry.register{value: 0.5 ether}(metadata());
    }

    function test_RevertWhen_CapacityZero() public {
        IProviderRegistry.ProviderMetadata memory m = metadata();
        m.capacity = 0;
        vm.deal(p, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_InvalidMetadata.selector, "capacity"));
        vm.prank(p);
        registry.register{value: 1 ether}(m);
    }

    function test_RevertWhen_RegionTooLong() public {
        IProviderRegistry.ProviderMetadata memory m = metadata();
        m.region = string(new bytes(65));
        vm.deal(p, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_InvalidMetadata.selector, "region"));
        vm.prank(p);
        registry.register{value: 1 ether}(m);
    }

    function test_RevertGiven_AlreadyRegistered() public {
        vm.deal(providers[0], 1 ether);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_AlreadyRegistered.selector, providers[0])
        );
        vm.prank(providers[0]);
        registry.register{value: 1 ether}(metadata());
    }

    function test_Registers() public {
        vm.deal(p, 3 ether);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.ProviderRegistered(p, 3 ether, metadata());
        vm.prank(p);
        registry.register{value: 3 ether}(metadata());
        IProviderRegistry.Provider memory info = registry.getProvider(p);
        assertTrue(info.registered);
        assertEq(info.stake, 3 ether);
        assertEq(info.metadata.pricePerFuel, 1 gwei);
        assertEq(info.metadata.region, "eu-west");
        assertTrue(registry.isActive(p));
        assertTrue(registry.isRegistered(p));
        assertEq(address(registry).balance, 3 * 2 ether + 3 ether);
    }
}

contract UpdateMetadata_Unit is Base {
    function test_RevertGiven_NotRegistered() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_NotRegistered.selector, stranger));
        vm.prank(stranger);
        registry.updateMetadata(metadata());
    }

    function test_Updates() public {
        IProviderRegistry.ProviderMetadata memory m = metadata();
        m.pricePerFuel = 7;
        m.region = "us-east";
        vm.prank(providers[0]);
        registry.updateMetadata(m);
        assertEq(registry.getProvider(providers[0]).metadata.pricePerFuel, 7);
        assertEq(registry.getProvider(providers[0]).metadata.region, "us-east");
    }
}

contract Stake_Unit is Base {
    address internal p;

    function setUp() public override {
        super.setUp();
        p = providers[0];
    }

    function test_RevertWhen_AddZero() public {
        vm.expectRevert(IProviderRegistry.ProviderRegistry_ZeroAmount.selector);
        vm.prank(p);
        registry.addStake();
    }

    function test_AddsStake() public {
        vm.deal(p, 1 ether);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.StakeAdded(p, 1 ether, 3 ether);
        vm.prank(p);
        registry.addStake{value: 1 ether}();
        assertEq(registry.getProvider(p).stake, 3 ether);
    }

    function test_RevertWhen_WithdrawMoreThanStake() public {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_InsufficientStake.selector, 3 ether, 2 ether)
        );
        vm.prank(p);
        registry.requestStakeWithdrawal(3 ether);
    }

    function test_RevertWhen_RemainderBelowMinimum() public {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_StakeBelowMinimum.selector, 0.5 ether, MIN_STAKE)
        );
        vm.prank(p);
        registry.requestStakeWithdrawal(1.5 ether);
    }

    function test_RevertWhen_WithdrawBeforeUnbonding() public {
        vm.prank(p);
        registry.requestStakeWithdrawal(2 ether);
        uint64 endsAt = uint64(block.timestamp) + UNBONDING;
        vm.warp(endsAt - 1);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_StillUnbonding.selector, endsAt, endsAt - 1)
        );
        vm.prank(p);
        registry.withdrawStake();
    }

    function test_RevertWhen_NothingUnbonding() public {
        vm.expectRevert(IProviderRegistry.ProviderRegistry_ZeroAmount.selector);
        vm.prank(p);
        registry.withdrawStake();
    }

    function test_UnbondsAndWithdraws() public {
        vm.prank(p);
        registry.requestStakeWithdrawal(2 ether);
        assertFalse(registry.isActive(p), "inactive with no stake");
        vm.warp(block.timestamp + UNBONDING);
        uint256 before = p.balance;
        vm.prank(p);
        registry.withdrawStake();
        assertEq(p.balance - before, 2 ether);
        assertEq(registry.getProvider(p).unbonding, 0);
    }
}

contract Slash_Unit is Base {
    function test_RevertWhen_NotEscrow() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_OnlyEscrow.selector, stranger));
        vm.prank(stranger);
        registry.slash(providers[0], 1, stranger);
    }

    function test_RevertWhen_RecordOutcomesNotEscrow() public {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_OnlyEscrow.selector, stranger));
        vm.prank(stranger);
        registry.recordOutcomes(providers[0], 1, 0);
    }

    function test_SlashTakesStakeThenUnbonding() public {
        address p = providers[0];
        vm.prank(p);
        registry.requestStakeWithdrawal(1 ether); // 1 staked, 1 unbonding
        vm.prank(address(escrow));
        uint256 slashed = registry.slash(p, 1.5 ether, buyer);
        assertEq(slashed, 1.5 ether);
        assertEq(registry.getProvider(p).stake, 0);
        assertEq(registry.getProvider(p).unbonding, 0.5 ether);
        assertEq(registry.getProvider(p).timesSlashed, 1);
        assertEq(address(escrow).balance, 1.5 ether);
    }

    function test_SlashNeverExceedsStake() public {
        vm.prank(address(escrow));
        uint256 slashed = registry.slash(providers[0], 100 ether, buyer);
        assertEq(slashed, 2 ether);
        vm.prank(address(escrow));
        assertEq(registry.slash(providers[0], 1 ether, buyer), 0);
        assertEq(registry.getProvider(providers[0]).timesSlashed, 1, "a slash of nothing is not counted");
    }

    function test_RecordsOutcomes() public {
        vm.prank(address(escrow));
        registry.recordOutcomes(providers[0], 3, 1);
        assertEq(registry.getProvider(providers[0]).jobsCompleted, 3);
        assertEq(registry.getProvider(providers[0]).jobsFailed, 1);
    }
}

contract RegistryAdmin_Unit is Base {
    function test_RevertWhen_EscrowSetTwice() public {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_EscrowAlreadySet.selector, address(escrow))
        );
        vm.prank(owner);
        registry.setEscrow(stranger);
    }

    function test_RevertWhen_EscrowZero() public {
        ProviderRegistry fresh = new ProviderRegistry(owner, 1, 0);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_ZeroAddress.selector, "escrow"));
        vm.prank(owner);
        fresh.setEscrow(address(0));
    }

    function test_RevertWhen_NotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        registry.setMinStake(1);
    }

    function test_RevertWhen_MinStakeZero() public {
        vm.expectRevert(IProviderRegistry.ProviderRegistry_ZeroAmount.selector);
        vm.prank(owner);
        registry.setMinStake(0);
    }

    function test_RevertWhen_DelayTooLong() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistry_UnbondingDelayTooLong.selector, 91 days, 90 days
            )
        );
        vm.prank(owner);
        registry.setUnbondingDelay(91 days);
    }

    /// Medium 1: once bound to an escrow, the unbonding delay outlasts its challenge window plus
    /// resolution period.
    function test_RevertWhen_UnbondingDelayNotLongerThanWindowPlusResolution() public {
        uint64 minDelay = uint64(WINDOW) + RESOLUTION + 1;
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_UnbondingDelayTooShort.selector, minDelay - 1, minDelay)
        );
        vm.prank(owner);
        registry.setUnbondingDelay(minDelay - 1);
        vm.prank(owner);
        registry.setUnbondingDelay(minDelay);
        assertEq(registry.unbondingDelay(), minDelay);
    }

    function test_RaisingMinStakeDeactivates() public {
        vm.prank(owner);
        registry.setMinStake(3 ether);
        assertFalse(registry.isActive(providers[0]));
        assertTrue(registry.isRegistered(providers[0]));
    }
}

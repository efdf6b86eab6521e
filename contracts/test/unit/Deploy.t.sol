// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

import {Deploy} from "../../script/Deploy.s.sol";
import {JobEscrow} from "../../src/JobEscrow.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {StorageMarket} from "../../src/StorageMarket.sol";
import {VerifierCommittee} from "../../src/VerifierCommittee.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";

/// @notice Medium 3: one owner key could, in one block, add its own key to the committee and set the
/// threshold to 1 (and set any parameters), then sign verdicts naming any registered provider. The deploy
/// script's default outside the devnet is a timelock that owns all four contracts, with a delay longer
/// than a challenge window plus its resolution period.
contract Deploy_Unit is Test {
    uint256 internal constant KEY = 0xD3910;
    address internal deployer = vm.addr(KEY);
    address internal attacker = makeAddr("attacker");

    ProviderRegistry internal registry;
    VerifierCommittee internal committee;
    JobEscrow internal escrow;
    StorageMarket internal market;
    TimelockController internal timelock;

    /// @dev The environment is the process's, shared by tests running in parallel: every test sets the
    /// same values, and none reads the written file back (anvil/test.sh checks it on a real chain).
    function _deploy(uint256 chainId) internal {
        vm.warp(1_700_000_000);
        vm.chainId(chainId);
        vm.deal(deployer, 100 ether);
        vm.setEnv("QOR_DEPLOYER_KEY", vm.toString(KEY));
        vm.setEnv("QOR_DEPLOYMENTS", string.concat(vm.projectRoot(), "/cache/deploy-test.json"));
        (registry, committee, escrow, market) = new Deploy().run();
        timelock = TimelockController(payable(committee.owner()));
    }

    function test_OutsideTheDevnetATimelockOwnsEverything() public {
        _deploy(4242);
        IJobEscrow.EscrowParams memory p = escrow.params();
        assertGt(timelock.getMinDelay(), uint256(p.challengeWindow) + p.challengeResolutionPeriod);
        address[4] memory owned = [address(registry), address(committee), address(escrow), address(market)];
        for (uint256 i; i < 4; ++i) {
            assertEq(Ownable(owned[i]).owner(), address(timelock));
        }
        // The deployer keeps only the proposer and canceller roles it was given (a multisig in
        // production), not the admin role, so it cannot grant itself anything else.
        assertFalse(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), deployer));
        assertTrue(timelock.hasRole(timelock.PROPOSER_ROLE(), deployer));
        assertFalse(timelock.hasRole(timelock.EXECUTOR_ROLE(), deployer));
        assertTrue(timelock.hasRole(timelock.EXECUTOR_ROLE(), address(0)), "anyone executes after the delay");
    }

    /// The attack: the key that deployed adds its own member and sets threshold 1 in one block.
    function test_NoSingleKeySeizesTheCommittee() public {
        _deploy(4242);
        vm.startPrank(deployer);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, deployer));
        committee.addMember(attacker);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, deployer));
        committee.setThreshold(1);
        IJobEscrow.EscrowParams memory p = escrow.params();
        p.treasury = deployer;
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, deployer));
        escrow.setParams(p);

        // Through the timelock the change is public for the whole delay before anyone can execute it.
        address[] memory targets = new address[](2);
        targets[0] = address(committee);
        targets[1] = address(committee);
        uint256[] memory values = new uint256[](2);
        bytes[] memory payloads = new bytes[](2);
        payloads[0] = abi.encodeCall(VerifierCommittee.addMember, (attacker));
        payloads[1] = abi.encodeCall(VerifierCommittee.setThreshold, (1));
        uint256 delay = timelock.getMinDelay();
        vm.expectRevert();
        timelock.scheduleBatch(targets, values, payloads, 0, 0, delay - 1);
        timelock.scheduleBatch(targets, values, payloads, 0, 0, delay);
        vm.stopPrank();
        vm.expectRevert();
        timelock.executeBatch(targets, values, payloads, 0, 0);
        vm.warp(block.timestamp + delay);
        timelock.executeBatch(targets, values, payloads, 0, 0);
        assertTrue(committee.isMember(attacker));
        assertEq(committee.threshold(), 1);
    }

    function test_TheDelayMustOutlastAChallenge() public {
        Deploy d = new Deploy();
        IJobEscrow.EscrowParams memory p;
        p.challengeWindow = 3_600;
        p.challengeResolutionPeriod = 86_400;
        vm.expectRevert(abi.encodeWithSelector(Deploy.Deploy_TimelockDelayTooShort.selector, 90_000, 90_001));
        d.checkDelay(90_000, p);
        d.checkDelay(90_001, p);
    }

    function test_OnTheDevnetTheDeployerOwns() public {
        _deploy(31337);
        assertEq(committee.owner(), deployer);
        assertEq(escrow.owner(), deployer);
    }
}

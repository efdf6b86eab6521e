// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {ReentrantERC20, ReentrantReceiver, RevertingReceiver} from "../../utils/Mocks.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

contract Withdraw_Unit is Base {
    function _reclaimed(address who, uint256 budget) internal {
        vm.deal(who, budget);
        IJobEscrow.ComputeJob memory job = jobRecord(who, address(0), budget, 1);
        uint256 id = createJob(job);
        vm.warp(job.deadline + 1);
        escrow.reclaim(id, job);
    }

    function test_RevertWhen_NothingToWithdraw() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_NothingToWithdraw.selector, address(0)));
        vm.prank(buyer);
        escrow.withdraw(address(0));
    }

    function test_WithdrawsEth() public {
        _reclaimed(buyer, 1 ether);
        uint256 before = buyer.balance;
        vm.expectEmit(address(escrow));
        emit IJobEscrow.Withdrawn(buyer, address(0), 1 ether);
        vm.prank(buyer);
        escrow.withdraw(address(0));
        assertEq(buyer.balance - before, 1 ether);
        assertEq(escrow.balanceOf(buyer, address(0)), 0);
        assertEq(address(escrow).balance, 0);
    }

    function test_WithdrawsToken() public {
        IJobEscrow.ComputeJob memory job = jobRecord(buyer, address(token), 5 ether, 1);
        uint256 id = createJob(job);
        vm.warp(job.deadline + 1);
        escrow.reclaim(id, job);
        uint256 before = token.balanceOf(buyer);
        vm.prank(buyer);
        escrow.withdraw(address(token));
        assertEq(token.balanceOf(buyer) - before, 5 ether);
    }

    function test_RevertingReceiverBlocksOnlyItself() public {
        RevertingReceiver bad = new RevertingReceiver();
        vm.deal(address(bad), 1 ether);
        IJobEscrow.ComputeJob memory badJob = jobRecord(address(bad), address(0), 1 ether, 1);
        uint256 badId = createJob(badJob);
        _reclaimed(buyer, 2 ether);
        vm.warp(badJob.deadline + 1);
        escrow.reclaim(badId, badJob);

        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_TransferFailed.selector, address(bad), 1 ether));
        bad.withdraw(escrow);
        assertEq(escrow.balanceOf(address(bad), address(0)), 1 ether, "kept for a later try");

        uint256 before = buyer.balance;
        vm.prank(buyer);
        escrow.withdraw(address(0));
        assertEq(buyer.balance - before, 2 ether);
    }

    function test_ReentrantReceiverCannotDrain() public {
        ReentrantReceiver attacker = new ReentrantReceiver(escrow);
        _reclaimed(address(attacker), 1 ether);
        _reclaimed(buyer, 5 ether); // what it would like to take
        attacker.withdraw();
        assertEq(attacker.calls(), 1);
        assertEq(bytes4(attacker.lastRevert()), ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        assertEq(address(attacker).balance, 1 ether);
        assertEq(address(escrow).balance, 5 ether);
        assertEq(escrow.balanceOf(buyer, address(0)), 5 ether);
    }

    function test_ReentrantTokenCannotDrain() public {
        ReentrantERC20 evil = new ReentrantERC20();
        vm.prank(owner);
        escrow.setTokenAllowed(address(evil), true); // allowed by mistake: the guard still holds
        evil.mint(buyer, 10 ether);
        vm.prank(buyer);
        evil.approve(address(escrow), type(uint256).max);
        IJobEscrow.ComputeJob memory job = jobRecord(buyer, address(evil), 10 ether, 1);
        uint256 id = createJob(job);
        vm.warp(job.deadline + 1);
        escrow.reclaim(id, job);

        evil.arm(escrow);
        vm.prank(buyer);
        escrow.withdraw(address(evil));
        assertTrue(evil.reentered());
        assertEq(bytes4(evil.lastRevert()), ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        assertEq(evil.balanceOf(buyer), 10 ether);
        assertEq(evil.balanceOf(address(escrow)), 0);
    }

    function test_ReentrantTokenCannotCreateTwice() public {
        ReentrantERC20 evil = new ReentrantERC20();
        vm.prank(owner);
        escrow.setTokenAllowed(address(evil), true); // allowed by mistake: the guard still holds
        evil.mint(buyer, 10 ether);
        vm.prank(buyer);
        evil.approve(address(escrow), type(uint256).max);
        evil.arm(escrow);
        IJobEscrow.ComputeJob memory job = jobRecord(buyer, address(evil), 10 ether, 1);
        createJob(job);
        assertEq(bytes4(evil.lastRevert()), ReentrancyGuardTransient.ReentrancyGuardReentrantCall.selector);
        assertEq(evil.balanceOf(address(escrow)), 10 ether);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../../utils/Base.t.sol";
import {FeeOnTransferERC20, MockERC20} from "../../utils/Mocks.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";

contract CreateComputeJob_Unit is Base {
    function test_RevertWhen_BudgetZero() public {
        vm.expectRevert(IJobEscrow.JobEscrow_ZeroBudget.selector);
        vm.prank(buyer);
        escrow.createComputeJob(bytes32(uint256(1)), 3, address(0), 0, uint64(block.timestamp + 1), address(0));
    }

    function test_RevertWhen_RedundancyZero() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidRedundancy.selector, 0, 32));
        vm.prank(buyer);
        escrow.createComputeJob{value: 1}(bytes32(0), 0, address(0), 1, uint64(block.timestamp + 1), address(0));
    }

    function test_RevertWhen_RedundancyAboveMax() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_InvalidRedundancy.selector, 33, 32));
        vm.prank(buyer);
        escrow.createComputeJob{value: 1}(bytes32(0), 33, address(0), 1, uint64(block.timestamp + 1), address(0));
    }

    function test_RevertWhen_DeadlineNotInFuture() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobEscrow.JobEscrow_DeadlineInPast.selector, uint64(block.timestamp), uint64(block.timestamp)
            )
        );
        vm.prank(buyer);
        escrow.createComputeJob{value: 1}(bytes32(0), 1, address(0), 1, uint64(block.timestamp), address(0));
    }

    function test_RevertWhen_EthValueDiffersFromBudget() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_WrongValue.selector, 1, 2));
        vm.prank(buyer);
        escrow.createComputeJob{value: 1}(bytes32(0), 1, address(0), 2, uint64(block.timestamp + 1), address(0));
    }

    function test_RevertWhen_EthSentWithToken() public {
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_WrongValue.selector, 1, 0));
        vm.prank(buyer);
        escrow.createComputeJob{value: 1}(bytes32(0), 1, address(token), 5, uint64(block.timestamp + 1), address(0));
    }

    function test_RevertWhen_TokenNotApproved() public {
        vm.prank(buyer);
        token.approve(address(escrow), 0);
        vm.expectRevert();
        vm.prank(buyer);
        escrow.createComputeJob(bytes32(0), 1, address(token), 5, uint64(block.timestamp + 1), address(0));
    }

    function test_RevertWhen_TokenHasNoCode() public {
        address notAToken = makeAddr("not-a-token");
        vm.prank(owner);
        escrow.setTokenAllowed(notAToken, true);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_NotAToken.selector, notAToken));
        vm.prank(buyer);
        escrow.createComputeJob(bytes32(0), 1, notAToken, 5, uint64(block.timestamp + 1), address(0));
    }

    function test_RevertWhen_TokenTakesAFee() public {
        FeeOnTransferERC20 fot = new FeeOnTransferERC20();
        vm.prank(owner);
        escrow.setTokenAllowed(address(fot), true);
        fot.mint(buyer, 1000);
        vm.startPrank(buyer);
        fot.approve(address(escrow), 1000);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_TransferAmountMismatch.selector, 1000, 990));
        escrow.createComputeJob(bytes32(0), 1, address(fot), 1000, uint64(block.timestamp + 1), address(0));
        vm.stopPrank();
    }

    /// Low: any ERC-20 could fund a job, a rebasing one making the escrow owe more than it holds. Only
    /// tokens the owner (the timelock) allowed can; jobs already funded in a token it stops allowing still
    /// settle and reclaim.
    function test_RevertWhen_TokenNotAllowed() public {
        MockERC20 other = new MockERC20();
        other.mint(buyer, 1000);
        vm.startPrank(buyer);
        other.approve(address(escrow), 1000);
        vm.expectRevert(abi.encodeWithSelector(IJobEscrow.JobEscrow_TokenNotAllowed.selector, address(other)));
        escrow.createComputeJob(bytes32(0), 1, address(other), 1000, uint64(block.timestamp + 1), address(0));
        vm.stopPrank();
        assertFalse(escrow.isTokenAllowed(address(other)));
        assertTrue(escrow.isTokenAllowed(address(0)));

        IJobEscrow.ComputeJob memory job = jobRecord(buyer, address(token), 500 ether, 1);
        uint256 jobId = createJob(job);
        vm.expectEmit(address(escrow));
        emit IJobEscrow.TokenAllowed(address(token), false);
        vm.prank(owner);
        escrow.setTokenAllowed(address(token), false);
        vm.warp(job.deadline + 1);
        escrow.reclaim(jobId, job);
        assertEq(escrow.balanceOf(buyer, address(token)), 500 ether);
    }

    function test_RevertWhen_StrangerAllowsAToken() public {
        vm.expectRevert(abi.encodeWithSignature("OwnableUnauthorizedAccount(address)", stranger));
        vm.prank(stranger);
        escrow.setTokenAllowed(makeAddr("token"), true);
    }

    function test_CreatesEthJob() public {
        IJobEscrow.ComputeJob memory job = jobRecord(buyer, address(0), 1 ether, 3);
        job.preferredProvider = providers[1];
        uint256 before = address(escrow).balance;

        vm.expectEmit(address(escrow));
        emit IJobEscrow.ComputeJobCreated(1, buyer, job.specHash, job);
        uint256 jobId = createJob(job);

        assertEq(jobId, 1);
        assertEq(escrow.nextJobId(), 2);
        assertEq(address(escrow).balance - before, 1 ether);
        assertEq(escrow.computeJobCommitment(jobId), keccak256(abi.encode(job)));
        assertEq(uint8(escrow.computeJobStatus(jobId)), uint8(IJobEscrow.ComputeJobStatus.Open));
    }

    function test_CreatesTokenJob() public {
        IJobEscrow.ComputeJob memory job = jobRecord(buyer, address(token), 500 ether, 1);
        uint256 jobId = createJob(job);
        assertEq(token.balanceOf(address(escrow)), 500 ether);
        assertEq(escrow.computeJobCommitment(jobId), keccak256(abi.encode(job)));
    }

    function test_IdsIncrease() public {
        (uint256 a,) = createEthJob(1);
        (uint256 b,) = createEthJob(1);
        assertEq(b, a + 1);
        assertEq(uint8(escrow.computeJobStatus(b + 1)), uint8(IJobEscrow.ComputeJobStatus.None));
    }
}

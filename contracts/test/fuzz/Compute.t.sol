// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../utils/Base.t.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";

contract Compute_Fuzz is Base {
    function testFuzz_CreateLocksExactly(uint256 budget, uint8 redundancy, uint64 ahead, bool useToken) public {
        budget = bound(budget, 1, 100 ether);
        redundancy = uint8(bound(redundancy, 1, 32));
        ahead = uint64(bound(ahead, 1, 365 days));
        address tok = useToken ? address(token) : address(0);
        IJobEscrow.ComputeJob memory job = jobRecord(buyer, tok, budget, redundancy);
        job.deadline = uint64(block.timestamp) + ahead;
        uint256 ethBefore = address(escrow).balance;
        uint256 tokBefore = token.balanceOf(address(escrow));
        uint256 id = createJob(job);
        assertEq(escrow.computeJobCommitment(id), keccak256(abi.encode(job)));
        assertEq(address(escrow).balance - ethBefore, useToken ? 0 : budget);
        assertEq(token.balanceOf(address(escrow)) - tokBefore, useToken ? budget : 0);
    }

    /// Whatever the price and verdict, finalization credits exactly the budget: shares + fee + refund,
    /// equal shares, fee at least the configured rate.
    function testFuzz_FinalizeConservesBudget(uint256 budget, uint256 price, uint8 mode) public {
        budget = bound(budget, 1, 1_000 ether);
        price = bound(price, 0, budget);
        mode = uint8(bound(mode, 0, 2));
        vm.deal(buyer, budget);
        IJobEscrow.ComputeJob memory job = jobRecord(buyer, address(0), budget, 3);
        uint256 id = createJob(job);
        IJobEscrow.Settlement memory s =
            mode == 0 ? verdict(id, price, 3, 3) : mode == 1 ? verdict(id, price, 2, 3) : verdict(id, 0, 0, 0);
        uint256 charged = mode == 2 ? 0 : price;
        Settled memory st = settleOne(job, s);
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);

        uint256 winners = mode == 0 ? 3 : mode == 1 ? 2 : 0;
        uint256 shares;
        for (uint256 i; i < winners; ++i) {
            uint256 b = escrow.balanceOf(providers[i], address(0));
            assertEq(b, escrow.balanceOf(providers[0], address(0)), "equal shares");
            shares += b;
        }
        uint256 fee = escrow.balanceOf(treasury, address(0)) - (mode == 1 ? MINORITY_SLASH : 0);
        assertGe(fee * 10_000, charged * FEE_BPS, "fee at least the rate");
        assertLe(fee, charged * FEE_BPS / 10_000 + winners, "fee is the rate plus rounding dust");
        assertEq(shares + fee, charged);
        assertEq(escrow.balanceOf(buyer, address(0)), budget - charged);
    }

    function testFuzz_BatchOfManyJobsConserves(uint8 count, uint256 seed) public {
        uint256 n = bound(count, 1, 40);
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](n);
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](n);
        uint256 total;
        uint256 charged;
        for (uint256 i; i < n; ++i) {
            uint256 budget = bound(uint256(keccak256(abi.encode(seed, i))), 1, 10 ether);
            uint256 price = bound(uint256(keccak256(abi.encode(seed, i, "p"))), 0, budget);
            (uint256 id, IJobEscrow.ComputeJob memory j) = createEthJob(budget);
            list[i] = verdict(id, price, 3, 3);
            jobs[i] = j;
            total += budget;
            charged += price;
        }
        Settled memory st = settle(batchOf(address(0), list), jobs);
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        uint256 credited = escrow.balanceOf(buyer, address(0)) + escrow.balanceOf(treasury, address(0));
        for (uint256 i; i < 3; ++i) {
            credited += escrow.balanceOf(providers[i], address(0));
        }
        assertEq(credited, total);
        assertEq(escrow.balanceOf(buyer, address(0)), total - charged);
    }

    function testFuzz_RevertWhen_SignedByNonMembers(uint256 k1, uint256 k2) public {
        k1 = bound(k1, 1, 1e60);
        k2 = bound(k2, 1, 1e60);
        vm.assume(k1 != k2);
        for (uint256 i; i < memberKeys.length; ++i) {
            vm.assume(k1 != memberKeys[i] && k2 != memberKeys[i]);
        }
        (uint256 id, IJobEscrow.ComputeJob memory job) = createEthJob(1 ether);
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), one(verdict(id, 1, 3, 3)));
        bytes32 digest = escrow.hashSettlementBatch(b);
        bytes[] memory sigs = new bytes[](2);
        (sigs[0], sigs[1]) = vm.addr(k1) < vm.addr(k2)
            ? (signWith(k1, digest), signWith(k2, digest))
            : (signWith(k2, digest), signWith(k1, digest));
        vm.expectRevert();
        escrow.settleComputeJobs(b, one(job), sigs);
    }
}

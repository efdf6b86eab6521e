// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../test/utils/Base.t.sol";
import {IJobEscrow} from "../src/interfaces/IJobEscrow.sol";
import {BenchFixtures} from "./BenchFixtures.sol";

/// @notice Forge gas snapshots of the hot paths (`FOUNDRY_PROFILE=bench`, isolated: each call is its own
/// transaction, so a snapshot is whole-transaction gas, cold storage and calldata included). Written to
/// `snapshots/GasSnapshots.json`; bench/gas.sh prints them next to the same paths measured on anvil.
contract GasSnapshots is Base {
    uint256 internal constant JOBS = 100;

    function test_createComputeJob() public {
        createEthJob(0.01 ether); // the first job ever also pays for the buyer's first interaction
        createEthJob(0.01 ether);
        vm.snapshotGasLastCall("createComputeJob_eth_tx");
    }

    function test_settleAndFinalizeBatch() public {
        // The first batch pays for fresh balance slots; the second is the steady state.
        _batch(JOBS, "first");
        _batch(JOBS, "steady");
        _batch(1, "single");
    }

    function _batch(uint256 n, string memory label) internal {
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](n);
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](n);
        for (uint256 i; i < n; ++i) {
            (uint256 id, IJobEscrow.ComputeJob memory j) = createEthJob(0.01 ether);
            list[i] = verdict(id, 0.006 ether, 3, 3);
            jobs[i] = j;
        }
        Settled memory st = settle(batchOf(address(0), list), jobs);
        uint256 settleGas = vm.snapshotGasLastCall(string.concat("settle_batch_", vm.toString(n), "_", label, "_tx"));
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        uint256 finalizeGas =
            vm.snapshotGasLastCall(string.concat("finalize_batch_", vm.toString(n), "_", label, "_tx"));
        vm.snapshotValue(
            string.concat("settle_finalize_per_job_batch_", vm.toString(n), "_", label, "_tx"), (settleGas + finalizeGas) / n
        );
    }

    /// A period's proof of k chunks of a 1 GiB file, for k = 1, 4 and 16 (priced per chunk in the README).
    function test_proveStorage1GiB() public {
        uint8[3] memory ks = [1, 4, 16];
        for (uint256 i; i < ks.length; ++i) {
            (bytes[] memory chunks, bytes32[][] memory paths, bytes32 root) = BenchFixtures.identicalGiB(ks[i]);
            vm.prank(buyer);
            uint256 dealId =
                market.createStorageDeal{value: 0.01 ether}(root, uint64(1 << 30), 1, 100, 0.01 ether, ks[i], address(0));
            vm.prank(providers[i]);
            market.acceptStorageDeal(dealId);
            vm.roll(block.number + 2);
            market.proveStorage(dealId, 0, chunks, paths);
            vm.snapshotGasLastCall(string.concat("proveStorage_1gib_k", vm.toString(ks[i]), "_tx"));
            assertEq(market.getStorageDeal(dealId).pendingPeriods, 0);
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {console2} from "forge-std/console2.sol";
import {Base} from "../utils/Base.t.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";

import {Vm} from "forge-std/Vm.sol";

contract Profile is Base {
    function _read() internal returns (Settled memory out) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IJobEscrow.ComputeBatchSettled.selector) {
                out.batchId = uint256(logs[i].topics[1]);
                (out.windowEnd, out.outcome, out.digests) =
                    abi.decode(logs[i].data, (uint64, IJobEscrow.BatchOutcome, bytes32[]));
            }
        }
    }

    function test_profileSettle() public {
        (uint256 s100, uint256 f100) = _settle(100);
        (uint256 s1, uint256 f1) = _settle(1);
        console2.log("settle marginal per job", (s100 - s1) / 99);
        console2.log("finalize marginal per job", (f100 - f1) / 99);
        console2.log("finalize 100", f100);
    }

    function _settle(uint256 n) internal returns (uint256 used, uint256 fin) {
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](n);
        IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](n);
        for (uint256 i; i < n; ++i) {
            (uint256 id, IJobEscrow.ComputeJob memory j) = createEthJob(0.01 ether);
            list[i] = verdict(id, 0.006 ether, 3, 3);
            jobs[i] = j;
        }
        IJobEscrow.SettlementBatch memory b = batchOf(address(0), list);
        bytes[] memory sigs = committeeSign(escrow.hashSettlementBatch(b), 2);
        vm.recordLogs();
        escrow.settleComputeJobs(b, jobs, sigs);
        used = vm.snapshotGasLastCall(string.concat("settle_", vm.toString(n)));
        Settled memory st = _read();
        vm.warp(st.windowEnd);
        escrow.finalize(st.batchId, st.outcome);
        fin = vm.snapshotGasLastCall(string.concat("finalize_", vm.toString(n)));
    }
}

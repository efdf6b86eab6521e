// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Script} from "forge-std/Script.sol";
import {Vm} from "forge-std/Vm.sol";

import {JobEscrow} from "../../src/JobEscrow.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {StorageMarket} from "../../src/StorageMarket.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {BenchFixtures} from "../../bench/BenchFixtures.sol";

/// @notice Sends the benchmarked transactions to a real chain (bench/gas.sh starts anvil and deploys with a
/// 2-of-3 committee and a zero challenge window); bench/gas.sh reads their receipts and labels them by the
/// function called and its occurrence.
contract GasBench is Script {
    uint256 internal constant JOBS = 100;
    string internal mnemonic;
    JobEscrow internal escrow;
    StorageMarket internal market;
    ProviderRegistry internal registry;
    address[] internal providers;
    uint256[] internal committeeKeys;

    function run() external {
        mnemonic = vm.envString("QOR_MNEMONIC");
        string memory dep = vm.readFile(vm.envString("QOR_DEPLOYMENTS"));
        escrow = JobEscrow(payable(vm.parseJsonAddress(dep, ".jobEscrow")));
        registry = ProviderRegistry(vm.parseJsonAddress(dep, ".providerRegistry"));
        market = StorageMarket(payable(vm.parseJsonAddress(dep, ".storageMarket")));
        uint32[3] memory committeeIdx = [uint32(1), 6, 7];
        for (uint256 i; i < 3; ++i) {
            committeeKeys.push(vm.deriveKey(mnemonic, committeeIdx[i]));
        }
        _sortKeys();

        // tx 0-2: three providers register.
        uint256[3] memory providerKeys = [vm.deriveKey(mnemonic, 2), vm.deriveKey(mnemonic, 3), vm.deriveKey(mnemonic, 4)];
        for (uint256 i; i < 3; ++i) {
            vm.broadcast(providerKeys[i]);
            registry.register{value: 2 ether}(
                IProviderRegistry.ProviderMetadata({pricePerFuel: 1 gwei, capacity: 8, region: "bench"})
            );
            providers.push(vm.addr(providerKeys[i]));
        }
        _sortProviders();

        // Two rounds of 100 ETH jobs, each settled and finalized as one batch: the first pays for the
        // fresh balance slots of providers, treasury and buyer, the second is the steady state.
        uint256 buyerKey = vm.deriveKey(mnemonic, 5);
        for (uint256 round; round < 2; ++round) {
            IJobEscrow.ComputeJob[] memory jobs = new IJobEscrow.ComputeJob[](JOBS);
            IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](JOBS);
            for (uint256 i; i < JOBS; ++i) {
                (jobs[i], list[i]) = _job(buyerKey, round * JOBS + i);
            }
            _settleAndFinalize(list, jobs);
        }
        // One job settled and finalized alone, for comparison.
        (IJobEscrow.ComputeJob memory single, IJobEscrow.Settlement memory singleSettlement) = _job(buyerKey, 2 * JOBS);
        IJobEscrow.Settlement[] memory oneS = new IJobEscrow.Settlement[](1);
        IJobEscrow.ComputeJob[] memory oneJ = new IJobEscrow.ComputeJob[](1);
        oneS[0] = singleSettlement;
        oneJ[0] = single;
        _settleAndFinalize(oneS, oneJ);

        // A storage deal over 1 GiB of identical 1 KiB chunks (every chunk has the same proof, whichever
        // the chain challenges), accepted, one filler transaction so the seed block is mined, the proof.
        // Proofs of k = 1 and k = 4 chunks a period.
        uint8[2] memory ks = [1, 4];
        for (uint256 i; i < ks.length; ++i) {
            (bytes[] memory chunks, bytes32[][] memory paths, bytes32 root) = BenchFixtures.identicalGiB(ks[i]);
            vm.broadcast(buyerKey);
            uint256 dealId =
                market.createStorageDeal{value: 0.01 ether}(root, uint64(1 << 30), 1, 100, 0.01 ether, ks[i], address(0));
            vm.broadcast(providerKeys[i]);
            market.acceptStorageDeal(dealId);
            vm.broadcast(buyerKey);
            payable(vm.addr(buyerKey)).transfer(1);
            // The simulation runs in one block; on chain each transaction mines its own.
            vm.roll(block.number + 2);
            vm.broadcast(buyerKey);
            market.proveStorage(dealId, 0, chunks, paths);
        }
    }

    function _job(uint256 buyerKey, uint256 i)
        internal
        returns (IJobEscrow.ComputeJob memory job, IJobEscrow.Settlement memory s)
    {
        job = IJobEscrow.ComputeJob({
            specHash: keccak256(abi.encode("bench", i)),
            buyer: vm.addr(buyerKey),
            token: address(0),
            budget: 0.01 ether,
            deadline: uint64(block.timestamp + 30 days),
            redundancy: 3,
            preferredProvider: address(0)
        });
        vm.broadcast(buyerKey);
        uint256 id = escrow.createComputeJob{value: job.budget}(
            job.specHash, job.redundancy, address(0), job.budget, job.deadline, address(0)
        );
        s = IJobEscrow.Settlement({
            jobId: id,
            resultDigest: keccak256(abi.encode("digest", id)),
            price: 0.006 ether,
            winners: 7,
            losers: 0
        });
    }

    function _settleAndFinalize(IJobEscrow.Settlement[] memory list, IJobEscrow.ComputeJob[] memory jobs) internal {
        IJobEscrow.SettlementBatch memory batch =
            IJobEscrow.SettlementBatch({token: address(0), providers: providers, settlements: list, validUntil: uint64(block.timestamp + 1 hours)});
        bytes32 digest = escrow.hashSettlementBatch(batch);
        bytes[] memory sigs = new bytes[](2);
        for (uint256 i; i < 2; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(committeeKeys[i], digest);
            sigs[i] = abi.encodePacked(r, s, v);
        }
        vm.recordLogs();
        vm.broadcast(committeeKeys[0]);
        uint256 batchId = escrow.settleComputeJobs(batch, jobs, sigs);
        IJobEscrow.BatchOutcome memory outcome = _outcome(vm.getRecordedLogs());
        vm.broadcast(committeeKeys[0]);
        escrow.finalize(batchId, outcome);
    }

    function _outcome(Vm.Log[] memory logs) internal pure returns (IJobEscrow.BatchOutcome memory outcome) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IJobEscrow.ComputeBatchSettled.selector) {
                (, outcome,) = abi.decode(logs[i].data, (uint64, IJobEscrow.BatchOutcome, bytes32[]));
                return outcome;
            }
        }
        revert("no ComputeBatchSettled");
    }

    function _sortKeys() internal {
        for (uint256 i = 1; i < committeeKeys.length; ++i) {
            for (uint256 j = i; j > 0 && vm.addr(committeeKeys[j - 1]) > vm.addr(committeeKeys[j]); --j) {
                (committeeKeys[j - 1], committeeKeys[j]) = (committeeKeys[j], committeeKeys[j - 1]);
            }
        }
    }

    function _sortProviders() internal {
        for (uint256 i = 1; i < providers.length; ++i) {
            for (uint256 j = i; j > 0 && providers[j - 1] > providers[j]; --j) {
                (providers[j - 1], providers[j]) = (providers[j], providers[j - 1]);
            }
        }
    }
}

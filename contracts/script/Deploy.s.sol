// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Script, console2} from "forge-std/Script.sol";

import {JobEscrow} from "../src/JobEscrow.sol";
import {ProviderRegistry} from "../src/ProviderRegistry.sol";
import {StorageMarket} from "../src/StorageMarket.sol";
import {VerifierCommittee} from "../src/VerifierCommittee.sol";
import {IJobEscrow} from "../src/interfaces/IJobEscrow.sol";
import {IStorageMarket} from "../src/interfaces/IStorageMarket.sol";

/// @notice Deploys the registry, the committee, the escrow and the storage market, binds them, and writes their addresses to
/// `anvil/deployments/<chainId>.json` (set `QOR_DEPLOYMENTS` to write elsewhere).
/// @dev Configuration from the environment, with devnet defaults:
/// - `QOR_DEPLOYER_KEY` (required): the broadcasting key, also the owner.
/// - `QOR_COMMITTEE`: comma-separated verifier addresses (default: the deployer); `QOR_THRESHOLD` (1).
/// - `QOR_TREASURY` (the deployer), `QOR_FEE_BPS` (1000), `QOR_CHALLENGE_WINDOW` seconds (3600),
///   `QOR_RESOLUTION_PERIOD` seconds (86400), `QOR_CHALLENGE_BOND` wei (0.01 ether),
///   `QOR_MINORITY_SLASH` wei (0.1 ether), `QOR_STORAGE_SLASH` wei per missed period, which is also
///   each period's collateral (0.05 ether), `QOR_STORAGE_MIN_PRICE` wei per period (1000),
///   `QOR_MIN_STAKE` wei (1 ether), `QOR_UNBONDING_DELAY` seconds (604800: 7 days, longer than the
///   challenge window plus the resolution period, as the contracts require).
contract Deploy is Script {
    function run()
        external
        returns (ProviderRegistry registry, VerifierCommittee committee, JobEscrow escrow, StorageMarket market)
    {
        uint256 key = vm.envUint("QOR_DEPLOYER_KEY");
        address deployer = vm.addr(key);
        address[] memory members = vm.envOr("QOR_COMMITTEE", ",", _single(deployer));
        IJobEscrow.EscrowParams memory p = IJobEscrow.EscrowParams({
            treasury: vm.envOr("QOR_TREASURY", deployer),
            feeBps: uint16(vm.envOr("QOR_FEE_BPS", uint256(1_000))),
            challengeWindow: uint32(vm.envOr("QOR_CHALLENGE_WINDOW", uint256(3_600))),
            challengeResolutionPeriod: uint32(vm.envOr("QOR_RESOLUTION_PERIOD", uint256(86_400))),
            challengeBond: uint96(vm.envOr("QOR_CHALLENGE_BOND", uint256(0.01 ether))),
            minoritySlash: uint96(vm.envOr("QOR_MINORITY_SLASH", uint256(0.1 ether)))
        });
        IStorageMarket.StorageParams memory sp = IStorageMarket.StorageParams({
            treasury: p.treasury,
            feeBps: p.feeBps,
            slashPerPeriod: uint96(vm.envOr("QOR_STORAGE_SLASH", uint256(0.05 ether))),
            minPricePerPeriod: uint96(vm.envOr("QOR_STORAGE_MIN_PRICE", uint256(1_000)))
        });

        vm.startBroadcast(key);
        registry = new ProviderRegistry(
            deployer, vm.envOr("QOR_MIN_STAKE", uint256(1 ether)), uint64(vm.envOr("QOR_UNBONDING_DELAY", uint256(7 days)))
        );
        committee = new VerifierCommittee(deployer, members, vm.envOr("QOR_THRESHOLD", uint256(1)));
        escrow = new JobEscrow(deployer, registry, committee, p);
        market = new StorageMarket(deployer, registry, committee, sp);
        registry.setEscrow(address(escrow));
        registry.setStorageMarket(address(market));
        vm.stopBroadcast();

        string memory obj = "deployment";
        vm.serializeUint(obj, "chainId", block.chainid);
        vm.serializeUint(obj, "deployBlock", block.number);
        vm.serializeAddress(obj, "owner", deployer);
        vm.serializeAddress(obj, "providerRegistry", address(registry));
        vm.serializeAddress(obj, "verifierCommittee", address(committee));
        vm.serializeAddress(obj, "storageMarket", address(market));
        string memory json = vm.serializeAddress(obj, "jobEscrow", address(escrow));
        string memory path = vm.envOr(
            "QOR_DEPLOYMENTS",
            string.concat(vm.projectRoot(), "/../anvil/deployments/", vm.toString(block.chainid), ".json")
        );
        vm.writeJson(json, path);
        console2.log("JobEscrow", address(escrow));
        console2.log("StorageMarket", address(market));
        console2.log("ProviderRegistry", address(registry));
        console2.log("VerifierCommittee", address(committee));
        console2.log("deployments written to", path);
    }

    function _single(address a) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }
}

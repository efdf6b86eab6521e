// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Script, console2} from "forge-std/Script.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

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
///   `QOR_STORAGE_MIN_PERIOD` blocks (33 outside the devnet: a 32-block proof window; 2 on it),
///   `QOR_MIN_STAKE` wei (1 ether), `QOR_UNBONDING_DELAY` seconds (604800: 7 days, longer than the
///   challenge window plus the resolution period, as the contracts require).
/// - Who holds what: on the devnet (chain 31337) the deployer owns the four contracts, unless
///   `QOR_TIMELOCK_DELAY` is set. On any other chain an OpenZeppelin `TimelockController` owns all four:
///   membership, threshold, parameters and the token list change only through it, after
///   `QOR_TIMELOCK_DELAY` seconds (default: challenge window + resolution period + 1 hour; it must exceed
///   window + resolution, so no job in flight is affected). `QOR_TIMELOCK_PROPOSERS` (comma-separated,
///   default the deployer; a multisig in production) propose and cancel; `QOR_TIMELOCK_EXECUTORS`
///   execute (default: anyone, once the delay is over). The deployer keeps no role.
contract Deploy is Script {
    /// @dev Thrown when the timelock's delay would let a change land inside a job's challenge window
    /// plus resolution period.
    error Deploy_TimelockDelayTooShort(uint256 delay, uint256 minimum);

    function run()
        external
        returns (ProviderRegistry registry, VerifierCommittee committee, JobEscrow escrow, StorageMarket market)
    {
        uint256 key = vm.envUint("QOR_DEPLOYER_KEY");
        address deployer = vm.addr(key);
        IJobEscrow.EscrowParams memory p = _escrowParams(deployer);

        vm.startBroadcast(key);
        registry = new ProviderRegistry(
            deployer, vm.envOr("QOR_MIN_STAKE", uint256(1 ether)), uint64(vm.envOr("QOR_UNBONDING_DELAY", uint256(7 days)))
        );
        committee = new VerifierCommittee(
            deployer, vm.envOr("QOR_COMMITTEE", ",", _single(deployer)), vm.envOr("QOR_THRESHOLD", uint256(1))
        );
        escrow = new JobEscrow(deployer, registry, committee, p);
        market = new StorageMarket(deployer, registry, committee, _storageParams(p));
        registry.setEscrow(address(escrow));
        registry.setStorageMarket(address(market));
        address owner = _owner(deployer, p, [address(registry), address(committee), address(escrow), address(market)]);
        vm.stopBroadcast();

        _write(owner, [address(registry), address(committee), address(escrow), address(market)]);
    }

    function _escrowParams(address deployer) internal view returns (IJobEscrow.EscrowParams memory) {
        return IJobEscrow.EscrowParams({
            treasury: vm.envOr("QOR_TREASURY", deployer),
            feeBps: uint16(vm.envOr("QOR_FEE_BPS", uint256(1_000))),
            challengeWindow: uint32(vm.envOr("QOR_CHALLENGE_WINDOW", uint256(3_600))),
            challengeResolutionPeriod: uint32(vm.envOr("QOR_RESOLUTION_PERIOD", uint256(86_400))),
            challengeBond: uint96(vm.envOr("QOR_CHALLENGE_BOND", uint256(0.01 ether))),
            minoritySlash: uint96(vm.envOr("QOR_MINORITY_SLASH", uint256(0.1 ether)))
        });
    }

    function _storageParams(IJobEscrow.EscrowParams memory p) internal view returns (IStorageMarket.StorageParams memory) {
        return IStorageMarket.StorageParams({
            treasury: p.treasury,
            feeBps: p.feeBps,
            slashPerPeriod: uint96(vm.envOr("QOR_STORAGE_SLASH", uint256(0.05 ether))),
            minPricePerPeriod: uint96(vm.envOr("QOR_STORAGE_MIN_PRICE", uint256(1_000))),
            // Outside the devnet a period leaves at least 32 blocks to prove in; the devnet keeps short ones.
            minPeriodLength: uint32(vm.envOr("QOR_STORAGE_MIN_PERIOD", block.chainid == 31337 ? uint256(2) : uint256(33)))
        });
    }

    /// @dev The deployer on the devnet (unless `QOR_TIMELOCK_DELAY` is set), a timelock elsewhere.
    function _owner(address deployer, IJobEscrow.EscrowParams memory p, address[4] memory owned)
        internal
        returns (address)
    {
        if (block.chainid == 31337 && !vm.envExists("QOR_TIMELOCK_DELAY")) return deployer;
        uint256 minimum = uint256(p.challengeWindow) + p.challengeResolutionPeriod;
        uint256 delay = vm.envOr("QOR_TIMELOCK_DELAY", minimum + 1 hours);
        checkDelay(delay, p);
        TimelockController timelock = _handOver(
            deployer,
            delay,
            owned,
            vm.envOr("QOR_TIMELOCK_PROPOSERS", ",", _single(deployer)),
            vm.envOr("QOR_TIMELOCK_EXECUTORS", ",", _single(address(0)))
        );
        return address(timelock);
    }

    /// @notice Reverts unless `delay` outlasts a challenge window plus its resolution period under `p`:
    /// a change scheduled now then lands only after every job settled before it is beyond dispute.
    function checkDelay(uint256 delay, IJobEscrow.EscrowParams memory p) public pure {
        uint256 minimum = uint256(p.challengeWindow) + p.challengeResolutionPeriod;
        if (delay <= minimum) revert Deploy_TimelockDelayTooShort(delay, minimum + 1);
    }

    function _write(address owner, address[4] memory c) internal {
        string memory obj = "deployment";
        vm.serializeUint(obj, "chainId", block.chainid);
        vm.serializeUint(obj, "deployBlock", block.number);
        vm.serializeAddress(obj, "owner", owner);
        vm.serializeBool(obj, "timelocked", owner.code.length != 0);
        vm.serializeAddress(obj, "providerRegistry", c[0]);
        vm.serializeAddress(obj, "verifierCommittee", c[1]);
        vm.serializeAddress(obj, "storageMarket", c[3]);
        string memory json = vm.serializeAddress(obj, "jobEscrow", c[2]);
        string memory path = vm.envOr(
            "QOR_DEPLOYMENTS",
            string.concat(vm.projectRoot(), "/../anvil/deployments/", vm.toString(block.chainid), ".json")
        );
        vm.writeJson(json, path);
        console2.log("JobEscrow", c[2]);
        console2.log("StorageMarket", c[3]);
        console2.log("ProviderRegistry", c[0]);
        console2.log("VerifierCommittee", c[1]);
        console2.log("owner", owner);
        console2.log("deployments written to", path);
    }

    /// @dev Makes a timelock the owner of `owned`: created with no delay and the deployer as its only
    /// proposer, executor and admin, it accepts each ownership (Ownable2Step) and sets its own delay in one
    /// batch executed at once; then the final proposers and executors get their roles and the deployer
    /// gives up all of its own.
    function _handOver(
        address deployer,
        uint256 delay,
        address[4] memory owned,
        address[] memory proposers,
        address[] memory executors
    ) internal returns (TimelockController timelock) {
        timelock = new TimelockController(0, _single(deployer), _single(deployer), deployer);
        address[] memory targets = new address[](5);
        uint256[] memory values = new uint256[](5);
        bytes[] memory payloads = new bytes[](5);
        for (uint256 i; i < 4; ++i) {
            Ownable(owned[i]).transferOwnership(address(timelock));
            targets[i] = owned[i];
            payloads[i] = abi.encodeWithSignature("acceptOwnership()");
        }
        targets[4] = address(timelock);
        payloads[4] = abi.encodeCall(TimelockController.updateDelay, (delay));
        timelock.scheduleBatch(targets, values, payloads, 0, 0, 0);
        timelock.executeBatch(targets, values, payloads, 0, 0);
        for (uint256 i; i < proposers.length; ++i) {
            timelock.grantRole(timelock.PROPOSER_ROLE(), proposers[i]);
            timelock.grantRole(timelock.CANCELLER_ROLE(), proposers[i]);
        }
        for (uint256 i; i < executors.length; ++i) {
            timelock.grantRole(timelock.EXECUTOR_ROLE(), executors[i]);
        }
        _renounceUnlessListed(timelock, timelock.PROPOSER_ROLE(), deployer, proposers);
        _renounceUnlessListed(timelock, timelock.CANCELLER_ROLE(), deployer, proposers);
        _renounceUnlessListed(timelock, timelock.EXECUTOR_ROLE(), deployer, executors);
        timelock.renounceRole(timelock.DEFAULT_ADMIN_ROLE(), deployer);
        console2.log("TimelockController", address(timelock), "delay (s)", delay);
    }

    function _renounceUnlessListed(TimelockController timelock, bytes32 role, address deployer, address[] memory list)
        internal
    {
        for (uint256 i; i < list.length; ++i) {
            if (list[i] == deployer) return;
        }
        timelock.renounceRole(role, deployer);
    }

    function _single(address a) internal pure returns (address[] memory list) {
        list = new address[](1);
        list[0] = a;
    }
}

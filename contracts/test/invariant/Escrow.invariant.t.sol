// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {StdInvariant} from "forge-std/StdInvariant.sol";

import {Base} from "../utils/Base.t.sol";
import {EscrowHandler} from "./handlers/EscrowHandler.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";

/// @notice Invariants of the escrow and the registry, listed in words in `README.md` beside this file.
contract Escrow_Invariant is StdInvariant, Base {
    EscrowHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new EscrowHandler(escrow, registry, token, treasury, memberKeys, providers);
        targetContract(address(handler));
        excludeSender(address(escrow));
        excludeSender(address(registry));
    }

    /// 1. The escrow's holdings of each token equal what is still locked (open and settled jobs, bonds,
    /// storage deals) plus every withdrawable balance.
    function invariant_HoldingsEqualLockedPlusWithdrawable() public view {
        uint256 ethOwed = handler.held(address(0));
        uint256 tokOwed = handler.held(address(token));
        for (uint256 i; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            ethOwed += escrow.balanceOf(a, address(0));
            tokOwed += escrow.balanceOf(a, address(token));
        }
        assertEq(address(escrow).balance, ethOwed, "ETH");
        assertEq(token.balanceOf(address(escrow)), tokOwed, "token");
    }

    /// 2. Every account's withdrawable balance is exactly what the model credited it, so nobody can
    /// withdraw more than it was credited (withdraw takes the balance, and the handler checks it).
    function invariant_BalancesMatchModel() public view {
        for (uint256 i; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            assertEq(escrow.balanceOf(a, address(0)), handler.expected(a, address(0)), "ETH balance");
            assertEq(escrow.balanceOf(a, address(token)), handler.expected(a, address(token)), "token balance");
        }
    }

    /// 3. A job is settled at most once, finalized at most once, reclaimed at most once; and every job's
    /// status is the model's, which only moves forward.
    function invariant_NoDoubleSettlementAndStatusesForward() public view {
        assertEq(handler.violations(), 0, "a forbidden transition succeeded or a status diverged");
        for (uint256 i; i < handler.jobCount(); ++i) {
            (uint256 id, IJobEscrow.ComputeJobStatus status) = handler.jobAt(i);
            assertEq(uint8(escrow.computeJobStatus(id)), uint8(status), "job status");
        }
        for (uint256 i; i < handler.dealCount(); ++i) {
            (uint256 id, IJobEscrow.StorageDealStatus status) = handler.dealAt(i);
            assertEq(uint8(escrow.getStorageDeal(id).status), uint8(status), "deal status");
        }
    }

    /// 4. The registry holds exactly the stake it records: a slash never takes more than a provider has.
    /// @notice Locked stake covers every open obligation: each provider's hold lasts at least until the
    /// last challenge window plus resolution period of a batch that named it, and counts every storage
    /// deal it took that is not settled to its last period.
    function invariant_LockedStakeCoversEveryOpenObligation() public view {
        address[] memory ps = handler.providerList();
        for (uint256 i; i < ps.length; ++i) {
            (uint64 until, uint32 open) = registry.stakeLock(ps[i]);
            assertGe(until, handler.holdUntil(ps[i]), "hold ends before a batch's challenge could be resolved");
            assertEq(open, handler.openDeals(ps[i]), "open storage deals");
        }
    }

    /// @notice No provider withdraws locked stake: every withdrawal the handler tried while the model
    /// held the stake was refused with `ProviderRegistry_StakeLocked` naming the hold.
    function invariant_NoProviderWithdrawsLockedStake() public view {
        assertEq(handler.lockedWithdrawals(), 0, "held stake was withdrawn, or refused for another reason");
    }

    function invariant_RegistryHoldsRecordedStake() public view {
        address[] memory ps = handler.providerList();
        uint256 recorded;
        for (uint256 i; i < ps.length; ++i) {
            IProviderRegistry.Provider memory p = registry.getProvider(ps[i]);
            recorded += p.stake + p.unbonding;
        }
        assertEq(address(registry).balance, recorded);
    }
}

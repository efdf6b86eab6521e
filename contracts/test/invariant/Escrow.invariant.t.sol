// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {StdInvariant} from "forge-std/StdInvariant.sol";

import {Base} from "../utils/Base.t.sol";
import {EscrowHandler} from "./handlers/EscrowHandler.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "../../src/interfaces/IStorageMarket.sol";

/// @notice Invariants of the escrow, the storage market and the registry, listed in words in `README.md` beside this file.
contract Escrow_Invariant is StdInvariant, Base {
    EscrowHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new EscrowHandler(escrow, market, registry, token, treasury, memberKeys, providers);
        targetContract(address(handler));
        excludeSender(address(escrow));
        excludeSender(address(registry));
        excludeSender(address(market));
    }

    /// 1. The escrow's holdings of each token equal what is still locked (open and settled jobs, bonds)
    /// plus every withdrawable balance; the market's ETH equals what deals still lock plus its balances.
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
        uint256 marketOwed = handler.marketHeld();
        for (uint256 i; i < handler.actorCount(); ++i) {
            marketOwed += market.balanceOf(handler.actors(i));
        }
        assertEq(address(market).balance, marketOwed, "market ETH");
    }

    /// 2. Every account's withdrawable balance is exactly what the model credited it, so nobody can
    /// withdraw more than it was credited (withdraw takes the balance, and the handler checks it).
    function invariant_BalancesMatchModel() public view {
        for (uint256 i; i < handler.actorCount(); ++i) {
            address a = handler.actors(i);
            assertEq(escrow.balanceOf(a, address(0)), handler.expected(a, address(0)), "ETH balance");
            assertEq(escrow.balanceOf(a, address(token)), handler.expected(a, address(token)), "token balance");
            assertEq(market.balanceOf(a), handler.marketExpected(a), "market balance");
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
            (uint256 id, IStorageMarket.StorageDealStatus status) = handler.dealAt(i);
            assertEq(uint8(market.getStorageDeal(id).status), uint8(status), "deal status");
        }
    }

    /// 4. The registry holds exactly the stake it records: a slash never takes more than a provider has.
    /// @notice Locked stake covers every open obligation: each provider's hold lasts at least until the
    /// last challenge window plus resolution period of a batch that named it, and counts every storage
    /// deal it took that is not settled to its last period, with every unsettled period's collateral
    /// reserved.
    function invariant_LockedStakeCoversEveryOpenObligation() public view {
        address[] memory ps = handler.providerList();
        for (uint256 i; i < ps.length; ++i) {
            (uint64 until, uint32 open, uint256 collateral) = registry.stakeLock(ps[i]);
            assertGe(until, handler.holdUntil(ps[i]), "hold ends before a batch's challenge could be resolved");
            assertEq(open, handler.openDeals(ps[i]), "open storage deals");
            assertEq(collateral, handler.reserved(ps[i]), "collateral of unsettled periods");
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

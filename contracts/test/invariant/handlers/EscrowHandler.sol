// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {Vm} from "forge-std/Vm.sol";

import {JobEscrow} from "../../../src/JobEscrow.sol";
import {ProviderRegistry} from "../../../src/ProviderRegistry.sol";
import {StorageMarket} from "../../../src/StorageMarket.sol";
import {IJobEscrow} from "../../../src/interfaces/IJobEscrow.sol";
import {IStorageMarket} from "../../../src/interfaces/IStorageMarket.sol";
import {IProviderRegistry} from "../../../src/interfaces/IProviderRegistry.sol";
import {MockERC20} from "../../utils/Mocks.sol";
import {TestMerkle} from "../../utils/TestMerkle.sol";

/// @notice Drives the escrow and the storage market through every state change with valid inputs only (the suite runs with
/// `fail_on_revert`), and keeps a model of what every account should be credited and what the escrow
/// should still hold. The invariants compare the contracts with the model.
contract EscrowHandler is CommonBase, StdCheats, StdUtils {
    uint256 internal constant BPS = 10_000;
    uint256 internal constant CHUNKS = 3;

    JobEscrow public immutable escrow;
    StorageMarket public immutable market;
    ProviderRegistry public immutable registry;
    MockERC20 public immutable token;
    address public immutable treasury;
    address public immutable challenger;
    uint256[] internal memberKeys;
    address[] internal providers;
    address[] internal buyers;
    address[] public actors;

    struct GJob {
        IJobEscrow.ComputeJob job;
        uint256 id;
        IJobEscrow.ComputeJobStatus status;
        uint256 batch; // index into batches
        uint256 price;
        uint256 winners;
        uint256 losers;
        bool challenged;
        uint64 resolveBy;
    }

    struct GBatch {
        uint256 id;
        uint64 windowEnd;
        bool finalized;
        bytes outcome; // abi.encode(BatchOutcome)
        bytes settlements; // abi.encode(Settlement[])
        uint256[] jobs; // indexes into jobs
    }

    struct GDeal {
        uint256 id;
        address buyer;
        address provider;
        uint16 periods;
        uint32 len;
        uint96 price;
        uint48 start;
        uint256 passed; // model bitmap
        uint16 settled;
        uint16 missedInARow;
        address dropped; // the provider the buyer last dropped: it cannot take the deal back
        IStorageMarket.StorageDealStatus status;
    }

    GJob[] internal jobs;
    GBatch[] internal batches;
    GDeal[] internal deals;
    bytes[] internal chunks;
    bytes32 internal root;

    /// @notice What the model says `account` may withdraw of `token`.
    mapping(address account => mapping(address token => uint256)) public expected;
    /// @notice What the model says the escrow holds of `token` for jobs and bonds not yet paid out.
    mapping(address token => uint256) public held;
    /// @notice What the model says `account` may withdraw from the storage market.
    mapping(address account => uint256) public marketExpected;
    /// @notice What the model says the market holds for deal periods not yet paid out.
    uint256 public marketHeld;
    /// @notice The collateral the model says each provider has reserved for its storage deals.
    mapping(address provider => uint256) public reserved;
    /// @notice Forbidden things that succeeded: a second settlement, finalization or reclaim.
    uint256 public violations;
    /// @notice Counts per action, for the run summary.
    mapping(bytes32 action => uint256) public calls;
    /// @notice The model's hold on each provider's stake: the latest end of a settled batch's challenge
    /// window plus resolution period it was named in, and its storage deals not settled to the end.
    mapping(address provider => uint64) public holdUntil;
    mapping(address provider => uint32) public openDeals;
    /// @notice Withdrawals of held stake, each refused as the model expects.
    uint256 public refusedWithdrawals;
    /// @notice Withdrawals of held stake that succeeded (or failed for another reason): must stay 0.
    uint256 public lockedWithdrawals;

    constructor(
        JobEscrow escrow_,
        StorageMarket market_,
        ProviderRegistry registry_,
        MockERC20 token_,
        address treasury_,
        uint256[] memory memberKeys_,
        address[] memory providers_
    ) {
        escrow = escrow_;
        market = market_;
        registry = registry_;
        token = token_;
        treasury = treasury_;
        memberKeys = memberKeys_;
        providers = providers_;
        challenger = makeAddr("inv-challenger");
        buyers.push(makeAddr("inv-buyer-1"));
        buyers.push(makeAddr("inv-buyer-2"));
        for (uint256 i; i < buyers.length; ++i) {
            actors.push(buyers[i]);
            vm.prank(buyers[i]);
            token.approve(address(escrow), type(uint256).max);
        }
        for (uint256 i; i < providers.length; ++i) {
            actors.push(providers[i]);
        }
        actors.push(treasury);
        actors.push(challenger);

        bytes[] memory c = TestMerkle.chunksOf(TestMerkle.fileOf(CHUNKS * 1024 - 10, 11));
        for (uint256 i; i < c.length; ++i) {
            chunks.push(c[i]);
        }
        (root,) = TestMerkle.merkle(TestMerkle.leavesOf(c), 0);
    }

    /*//////////////////////////////////////////////////////////////
                                COMPUTE
    //////////////////////////////////////////////////////////////*/

    function createJob(uint256 seed, uint256 budget, bool useToken, uint8 redundancy) external {
        calls["createJob"]++;
        address b = buyers[seed % buyers.length];
        budget = bound(budget, 1, 5 ether);
        address tok = useToken ? address(token) : address(0);
        IJobEscrow.ComputeJob memory job = IJobEscrow.ComputeJob({
            specHash: keccak256(abi.encode(seed)),
            buyer: b,
            token: tok,
            budget: budget,
            deadline: uint64(block.timestamp + bound(seed >> 8, 1 hours, 3 days)),
            redundancy: uint8(bound(redundancy, 1, 3)),
            preferredProvider: address(0)
        });
        if (useToken) token.mint(b, budget);
        else vm.deal(b, b.balance + budget);
        vm.prank(b);
        uint256 id = escrow.createComputeJob{value: useToken ? 0 : budget}(
            job.specHash, job.redundancy, tok, budget, job.deadline, address(0)
        );
        GJob storage g = jobs.push();
        g.job = job;
        g.id = id;
        g.status = IJobEscrow.ComputeJobStatus.Open;
        held[tok] += budget;
        _checkStatuses();
    }

    function settleBatch(uint256 seed, uint256 count) external {
        address tok = seed & 1 == 1 ? address(token) : address(0);
        count = bound(count, 1, 8);
        uint256[] memory picked = new uint256[](count);
        uint256 n;
        for (uint256 k; k < jobs.length && n < count; ++k) {
            GJob storage g = jobs[_at(seed, k, jobs.length)];
            if (g.status == IJobEscrow.ComputeJobStatus.Open && g.job.token == tok && g.job.deadline >= block.timestamp) {
                picked[n++] = _at(seed, k, jobs.length);
            }
        }
        if (n == 0) return;
        calls["settleBatch"]++;
        IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](n);
        IJobEscrow.ComputeJob[] memory records = new IJobEscrow.ComputeJob[](n);
        for (uint256 i; i < n; ++i) {
            GJob storage g = jobs[picked[i]];
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            uint256 mode = r % 3;
            IJobEscrow.Settlement memory s;
            s.jobId = g.id;
            if (mode == 0) {
                s.winners = 7;
            } else if (mode == 1) {
                s.losers = 1 << ((r >> 8) % 3); // one of three disagrees
                s.winners = 7 & ~s.losers;
            }
            if (mode != 2) {
                s.resultDigest = keccak256(abi.encode("digest", g.id));
                s.price = bound(r >> 16, 0, g.job.budget);
            }
            list[i] = s;
            records[i] = g.job;
        }
        IJobEscrow.SettlementBatch memory b =
            IJobEscrow.SettlementBatch({token: tok, providers: providers, settlements: list, validUntil: uint64(block.timestamp + 1 hours)});
        bytes[] memory sigs = _sign(escrow.hashSettlementBatch(b), 2);
        vm.recordLogs();
        uint256 batchId = escrow.settleComputeJobs(b, records, sigs);
        (uint64 windowEnd, IJobEscrow.BatchOutcome memory outcome) = _settledEvent(vm.getRecordedLogs());
        uint64 hold = windowEnd + escrow.params().challengeResolutionPeriod;
        for (uint256 i; i < providers.length; ++i) {
            if (hold > holdUntil[providers[i]]) holdUntil[providers[i]] = hold;
        }

        GBatch storage gb = batches.push();
        gb.id = batchId;
        gb.windowEnd = windowEnd;
        gb.outcome = abi.encode(outcome);
        gb.settlements = abi.encode(list);
        for (uint256 i; i < n; ++i) {
            GJob storage g = jobs[picked[i]];
            g.status = IJobEscrow.ComputeJobStatus.Settled;
            g.batch = batches.length - 1;
            g.price = list[i].price;
            g.winners = list[i].winners;
            g.losers = list[i].losers;
            gb.jobs.push(picked[i]);
        }
        _checkStatuses();
    }

    function finalize(uint256 seed) external {
        (bool found, uint256 bi) = _readyBatch(seed);
        if (!found) return;
        calls["finalize"]++;
        GBatch storage gb = batches[bi];
        IJobEscrow.BatchOutcome memory outcome = abi.decode(gb.outcome, (IJobEscrow.BatchOutcome));
        address tok = outcome.token;

        // Model: refunds for every job; price, shares and slashes for the unchallenged ones.
        uint256[] memory failed = new uint256[](providers.length);
        for (uint256 k; k < gb.jobs.length; ++k) {
            GJob storage g = jobs[gb.jobs[k]];
            _credit(g.job.buyer, tok, g.job.budget - g.price);
            if (g.challenged) continue;
            _payShares(g, tok);
            for (uint256 i; i < providers.length; ++i) {
                if ((g.losers >> i) & 1 == 1) failed[i]++;
            }
            g.status = IJobEscrow.ComputeJobStatus.Finalized;
        }
        uint256[] memory slashable = _slashable();
        for (uint256 i; i < providers.length; ++i) {
            uint256 s = _min(failed[i] * outcome.slashPerFailure, slashable[i]);
            expected[treasury][address(0)] += s;
        }

        escrow.finalize(gb.id, outcome);
        gb.finalized = true;
        _checkStatuses();
    }

    function challenge(uint256 seed) external {
        for (uint256 k; k < jobs.length; ++k) {
            uint256 ji = _at(seed, k, jobs.length);
            GJob storage g = jobs[ji];
            if (g.status != IJobEscrow.ComputeJobStatus.Settled || g.winners == 0) continue;
            GBatch storage gb = batches[g.batch];
            if (block.timestamp >= gb.windowEnd) continue;
            calls["challenge"]++;
            IJobEscrow.ChallengeProof memory proof = _proof(g, gb);
            uint256 bond = escrow.params().challengeBond;
            vm.deal(challenger, challenger.balance + bond);
            vm.prank(challenger);
            escrow.challenge{value: bond}(g.id, proof);
            g.status = IJobEscrow.ComputeJobStatus.Challenged;
            g.challenged = true;
            g.resolveBy = uint64(block.timestamp) + escrow.params().challengeResolutionPeriod;
            held[address(0)] += bond;
            _checkStatuses();
            return;
        }
    }

    function resolve(uint256 seed, bool upheld) external {
        (bool found, uint256 ji) = _pendingChallenge(seed);
        if (!found) return;
        GJob storage g = jobs[ji];
        // Past `resolveBy` a resolution is refused (the challenge can only expire): check that, once.
        if (block.timestamp > g.resolveBy) {
            bytes[] memory late = _sign(escrow.hashChallengeResolution(g.id, upheld), 2);
            try escrow.resolveChallenge(g.id, upheld, late) {
                violations++;
            } catch {}
            return;
        }
        calls[upheld ? bytes32("resolveUpheld") : bytes32("resolveRejected")]++;
        uint256 bond = escrow.getChallenge(g.id).bond;
        if (upheld) {
            _credit(g.job.buyer, g.job.token, g.price);
            _credit(challenger, address(0), bond);
            uint256[] memory slashable = _slashable();
            uint256 perWinner = escrow.getChallenge(g.id).slashPerFailure;
            for (uint256 i; i < providers.length; ++i) {
                if ((g.winners >> i) & 1 == 1) {
                    // 20% of each slash to the challenger, the rest to the buyer.
                    uint256 slashed = _min(perWinner, slashable[i]);
                    uint256 share = slashed * 2_000 / BPS;
                    expected[challenger][address(0)] += share;
                    expected[g.job.buyer][address(0)] += slashed - share;
                }
            }
            g.status = IJobEscrow.ComputeJobStatus.Refunded;
        } else {
            _closeModel(g, bond, true);
        }
        bytes[] memory sigs = _sign(escrow.hashChallengeResolution(g.id, upheld), 2);
        escrow.resolveChallenge(g.id, upheld, sigs);
        _checkStatuses();
    }

    /// @notice Lets the committee's time run out on a pending challenge, then expires it.
    function expire(uint256 seed) external {
        (bool found, uint256 ji) = _pendingChallenge(seed);
        if (!found) return;
        if (block.timestamp <= jobs[ji].resolveBy) vm.warp(jobs[ji].resolveBy + 1);
        calls["expire"]++;
        GJob storage g = jobs[ji];
        _closeModel(g, escrow.getChallenge(g.id).bond, false);
        escrow.expireChallenge(g.id);
        _checkStatuses();
    }

    function reclaim(uint256 seed) external {
        for (uint256 k; k < jobs.length; ++k) {
            GJob storage g = jobs[_at(seed, k, jobs.length)];
            if (g.status != IJobEscrow.ComputeJobStatus.Open || block.timestamp <= g.job.deadline) continue;
            calls["reclaim"]++;
            escrow.reclaim(g.id, g.job);
            _credit(g.job.buyer, g.job.token, g.job.budget);
            g.status = IJobEscrow.ComputeJobStatus.Reclaimed;
            _checkStatuses();
            return;
        }
    }

    /// @notice Tries what must never work; counts it if it does.
    function attemptDoubleSpend(uint256 seed) external {
        if (jobs.length == 0) return;
        calls["attemptDoubleSpend"]++;
        GJob storage g = jobs[seed % jobs.length];
        if (g.status != IJobEscrow.ComputeJobStatus.Open) {
            IJobEscrow.Settlement[] memory list = new IJobEscrow.Settlement[](1);
            list[0] = IJobEscrow.Settlement(g.id, keccak256("again"), 0, 7, 0);
            IJobEscrow.ComputeJob[] memory records = new IJobEscrow.ComputeJob[](1);
            records[0] = g.job;
            IJobEscrow.SettlementBatch memory b =
                IJobEscrow.SettlementBatch({token: g.job.token, providers: providers, settlements: list, validUntil: uint64(block.timestamp + 1 hours)});
            bytes[] memory sigs = _sign(escrow.hashSettlementBatch(b), 2);
            try escrow.settleComputeJobs(b, records, sigs) {
                violations++;
            } catch {}
            try escrow.reclaim(g.id, g.job) {
                violations++;
            } catch {}
        }
        for (uint256 i; i < batches.length; ++i) {
            if (!batches[i].finalized) continue;
            try escrow.finalize(batches[i].id, abi.decode(batches[i].outcome, (IJobEscrow.BatchOutcome))) {
                violations++;
            } catch {}
            break;
        }
    }

    function withdraw(uint256 seed, bool useToken) external {
        address a = actors[seed % actors.length];
        address tok = useToken ? address(token) : address(0);
        uint256 amount = escrow.balanceOf(a, tok);
        if (amount == 0) return;
        calls["withdraw"]++;
        uint256 before = useToken ? token.balanceOf(a) : a.balance;
        vm.prank(a);
        escrow.withdraw(tok);
        uint256 received = (useToken ? token.balanceOf(a) : a.balance) - before;
        if (received != amount || amount != expected[a][tok]) violations++;
        expected[a][tok] = 0;
    }

    function warp(uint256 secs) external {
        calls["warp"]++;
        secs = bound(secs, 1, 2 days);
        vm.warp(block.timestamp + secs);
        vm.roll(block.number + bound(secs / 12, 1, 40));
    }

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    function createDeal(uint256 seed, uint16 periods, uint32 len, uint96 price) external {
        calls["createDeal"]++;
        address b = buyers[seed % buyers.length];
        periods = uint16(bound(periods, 1, 6));
        len = uint32(bound(len, 2, 20));
        price = uint96(bound(price, 0.01 ether, 0.5 ether));
        uint256 total = uint256(periods) * price;
        vm.deal(b, b.balance + total);
        vm.prank(b);
        uint256 id = market.createStorageDeal{value: total}(root, uint64(CHUNKS * 1024 - 10), periods, len, price, 3, address(0));
        GDeal storage d = deals.push();
        d.id = id;
        d.buyer = b;
        d.periods = periods;
        d.len = len;
        d.price = price;
        d.status = IStorageMarket.StorageDealStatus.Open;
        marketHeld += total;
    }

    /// @notice An active provider whose free stake covers the collateral takes an open (or re-opened) deal.
    function acceptDeal(uint256 seed) external {
        address p = providers[seed % providers.length];
        if (!registry.isActive(p)) return;
        uint256 stake = registry.getProvider(p).stake;
        uint256 free = stake > reserved[p] ? stake - reserved[p] : 0;
        uint256 slash = market.params().slashPerPeriod;
        for (uint256 k; k < deals.length; ++k) {
            GDeal storage d = deals[_at(seed, k, deals.length)];
            if (d.status != IStorageMarket.StorageDealStatus.Open || d.dropped == p) continue;
            uint256 collateral = uint256(d.periods - d.settled) * slash;
            if (collateral > free) continue;
            calls["acceptDeal"]++;
            vm.prank(p);
            market.acceptStorageDeal(d.id);
            d.provider = p;
            d.start = uint48(block.number + 1 - uint256(d.settled) * d.len);
            d.status = IStorageMarket.StorageDealStatus.Active;
            d.missedInARow = 0;
            openDeals[p]++;
            reserved[p] += collateral;
            return;
        }
    }

    /// @notice The buyer cancels an open deal, or an active one whose provider it may drop.
    function cancelDeal(uint256 seed) external {
        for (uint256 k; k < deals.length; ++k) {
            GDeal storage d = deals[_at(seed, k, deals.length)];
            if (d.status == IStorageMarket.StorageDealStatus.Active && _droppable(d)) {
                calls["cancelActiveDeal"]++;
                _dropModel(d);
                vm.prank(d.buyer);
                market.cancelStorageDeal(d.id);
                _creditMarket(d.buyer, uint256(d.periods - d.settled) * d.price);
                d.status = IStorageMarket.StorageDealStatus.Cancelled;
                return;
            }
            if (d.status != IStorageMarket.StorageDealStatus.Open) continue;
            calls["cancelDeal"]++;
            vm.prank(d.buyer);
            market.cancelStorageDeal(d.id);
            _creditMarket(d.buyer, uint256(d.periods - d.settled) * d.price);
            d.status = IStorageMarket.StorageDealStatus.Cancelled;
            return;
        }
    }

    /// @notice The buyer re-opens an active deal whose provider missed three periods in a row or left.
    function reopenDeal(uint256 seed) external {
        for (uint256 k; k < deals.length; ++k) {
            GDeal storage d = deals[_at(seed, k, deals.length)];
            if (d.status != IStorageMarket.StorageDealStatus.Active || !_droppable(d)) continue;
            calls["reopenDeal"]++;
            _dropModel(d);
            vm.prank(d.buyer);
            market.reopenStorageDeal(d.id);
            d.status = IStorageMarket.StorageDealStatus.Open;
            d.dropped = d.provider;
            d.provider = address(0);
            d.passed = 0;
            return;
        }
    }

    /// @notice Proves the current period on chain when its window is open, else has the committee attest
    /// the newest started period that is not settled.
    function proveOrAttest(uint256 seed) external {
        for (uint256 k; k < deals.length; ++k) {
            GDeal storage d = deals[_at(seed, k, deals.length)];
            if (d.status != IStorageMarket.StorageDealStatus.Active || block.number <= d.start) continue;
            uint256 p = (block.number - 1 - d.start) / d.len;
            if (p >= d.periods) p = d.periods - 1;
            if (p < d.settled || (d.passed >> p) & 1 == 1) continue;
            uint256 seedBlock = d.start + p * d.len;
            if (block.number <= seedBlock + _min(d.len - 1, 256)) {
                calls["proveStorage"]++;
                uint256[] memory indexes = market.storageChallengeIndexes(d.id, p);
                bytes[] memory answer = new bytes[](indexes.length);
                bytes32[][] memory paths = new bytes32[][](indexes.length);
                for (uint256 j; j < indexes.length; ++j) {
                    answer[j] = chunks[indexes[j]];
                    (, paths[j]) = TestMerkle.merkle(TestMerkle.leavesOf(chunks), indexes[j]);
                }
                market.proveStorage(d.id, p, answer, paths);
            } else {
                calls["attestStorage"]++;
                IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](1);
                a[0] = IStorageMarket.StorageAttestation(d.id, d.provider, 1 << p);
                uint64 validUntil = uint64(block.timestamp + 1 hours);
                market.attestStorage(a, validUntil, _sign(market.hashStorageAttestations(a, validUntil), 2));
            }
            d.passed |= 1 << p;
            return;
        }
    }

    function settleDeal(uint256 seed) external {
        for (uint256 k; k < deals.length; ++k) {
            GDeal storage d = deals[_at(seed, k, deals.length)];
            if (d.status != IStorageMarket.StorageDealStatus.Active || _ended(d) <= d.settled) continue;
            calls["settleDeal"]++;
            _settleModel(d);
            market.settleStorageDeal(d.id);
            return;
        }
    }

    function withdrawFromMarket(uint256 seed) external {
        address a = actors[seed % actors.length];
        uint256 amount = market.balanceOf(a);
        if (amount == 0) return;
        calls["withdrawFromMarket"]++;
        uint256 before = a.balance;
        vm.prank(a);
        market.withdraw();
        if (a.balance - before != amount || amount != marketExpected[a]) violations++;
        marketExpected[a] = 0;
    }

    /*//////////////////////////////////////////////////////////////
                                 STAKE
    //////////////////////////////////////////////////////////////*/

    function addStake(uint256 seed, uint256 amount) external {
        calls["addStake"]++;
        address p = providers[seed % providers.length];
        amount = bound(amount, 0.1 ether, 2 ether);
        vm.deal(p, p.balance + amount);
        vm.prank(p);
        registry.addStake{value: amount}();
    }

    function requestStakeWithdrawal(uint256 seed, uint256 amount) external {
        address p = providers[seed % providers.length];
        uint256 stake = registry.getProvider(p).stake;
        if (stake == 0) return;
        calls["requestStakeWithdrawal"]++;
        amount = bound(amount, 1, stake);
        if (stake - amount != 0 && stake - amount < registry.minStake()) amount = stake;
        vm.prank(p);
        registry.requestStakeWithdrawal(amount);
    }

    function withdrawStake(uint256 seed) external {
        address p = providers[seed % providers.length];
        IProviderRegistry.Provider memory info = registry.getProvider(p);
        if (info.unbonding == 0) return;
        if (block.timestamp < info.unbondingEndsAt) vm.warp(info.unbondingEndsAt); // wait out the delay
        calls["withdrawStake"]++;
        // Stake held for open obligations stays, whatever the unbonding delay says.
        if (block.timestamp < holdUntil[p] || openDeals[p] != 0) return _withdrawHeld(p);
        vm.prank(p);
        registry.withdrawStake();
    }

    /// @dev A provider whose stake the model holds asks for some of it back and, once the unbonding
    /// delay is over but the hold is not, tries to withdraw: the refusal is counted, a success too.
    function withdrawHeldStake(uint256 seed) external {
        address p = providers[seed % providers.length];
        IProviderRegistry.Provider memory info = registry.getProvider(p);
        if (info.unbonding == 0) {
            uint256 spare = info.stake > registry.minStake() ? info.stake - registry.minStake() : 0;
            if (spare == 0) return;
            vm.prank(p);
            registry.requestStakeWithdrawal(spare);
            info = registry.getProvider(p);
        }
        uint256 due = block.timestamp > info.unbondingEndsAt ? block.timestamp : info.unbondingEndsAt;
        if (openDeals[p] == 0 && due >= holdUntil[p]) return; // nothing would hold it then
        if (block.timestamp < info.unbondingEndsAt) vm.warp(info.unbondingEndsAt);
        calls["withdrawHeldStake"]++;
        _withdrawHeld(p);
    }

    /// @dev Tries to withdraw stake the model holds: counts the refusal that names the hold, and
    /// anything else (a success, another error) as a locked withdrawal.
    function _withdrawHeld(address p) internal {
        (uint64 until, uint32 open,) = registry.stakeLock(p);
        bytes memory want = abi.encodeWithSelector(IProviderRegistry.ProviderRegistry_StakeLocked.selector, until, open);
        vm.prank(p);
        try registry.withdrawStake() {
            lockedWithdrawals++;
        } catch (bytes memory why) {
            if (keccak256(why) == keccak256(want)) refusedWithdrawals++;
            else lockedWithdrawals++;
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    function jobCount() external view returns (uint256) {
        return jobs.length;
    }

    function jobAt(uint256 i) external view returns (uint256 id, IJobEscrow.ComputeJobStatus status) {
        return (jobs[i].id, jobs[i].status);
    }

    function dealCount() external view returns (uint256) {
        return deals.length;
    }

    function dealAt(uint256 i) external view returns (uint256 id, IStorageMarket.StorageDealStatus status) {
        return (deals[i].id, deals[i].status);
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function providerList() external view returns (address[] memory) {
        return providers;
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev The model's status of every job must be the contract's; as the model only moves statuses
    /// forward, so does the contract.
    function _checkStatuses() internal {
        for (uint256 i; i < jobs.length; ++i) {
            if (escrow.computeJobStatus(jobs[i].id) != jobs[i].status) violations++;
        }
    }

    function _ended(GDeal storage d) internal view returns (uint256 ended) {
        if (block.number < d.start) return 0;
        ended = (block.number - d.start) / d.len;
        if (ended > d.periods) ended = d.periods;
    }

    /// @dev Model of `settleStorageDeal` (also run inside cancel and re-open): passed periods pay the
    /// provider less the fee (rounded up), missed ones refund the buyer with their collateral, and every
    /// settled period's collateral stops being reserved.
    function _settleModel(GDeal storage d) internal {
        uint256 ended = _ended(d);
        if (ended <= d.settled) return;
        uint256 passed;
        uint256 streak = d.missedInARow;
        for (uint256 p = d.settled; p < ended; ++p) {
            if ((d.passed >> p) & 1 == 1) {
                passed++;
                streak = 0;
            } else {
                streak++;
            }
        }
        uint256 missed = ended - d.settled - passed;
        uint256 gross = passed * d.price;
        uint256 fee = (gross * market.params().feeBps + BPS - 1) / BPS;
        _creditMarket(d.provider, gross - fee);
        _creditMarket(treasury, fee);
        _creditMarket(d.buyer, missed * d.price);
        uint256 slash = market.params().slashPerPeriod;
        uint256 available = registry.getProvider(d.provider).stake + registry.getProvider(d.provider).unbonding;
        marketExpected[d.buyer] += _min(missed * slash, available);
        uint256 release = (ended - d.settled) * slash;
        reserved[d.provider] = reserved[d.provider] > release ? reserved[d.provider] - release : 0;
        d.settled = uint16(ended);
        d.missedInARow = uint16(streak);
        if (ended == d.periods) {
            d.status = IStorageMarket.StorageDealStatus.Completed;
            openDeals[d.provider]--;
        }
    }

    /// @dev Settles what has ended (model and contract), then says whether the buyer may drop the provider.
    function _droppable(GDeal storage d) internal returns (bool) {
        if (_ended(d) > d.settled) {
            _settleModel(d);
            market.settleStorageDeal(d.id);
        }
        if (d.status != IStorageMarket.StorageDealStatus.Active) return false;
        return d.missedInARow >= 3 || !registry.isActive(d.provider);
    }

    /// @dev Model of dropping the provider: its hold ends and its collateral for the periods left is released.
    function _dropModel(GDeal storage d) internal {
        uint256 left = uint256(d.periods - d.settled) * market.params().slashPerPeriod;
        reserved[d.provider] = reserved[d.provider] > left ? reserved[d.provider] - left : 0;
        openDeals[d.provider]--;
    }

    function _creditMarket(address account, uint256 amount) internal {
        marketExpected[account] += amount;
        marketHeld -= amount;
    }

    function _credit(address account, address tok, uint256 amount) internal {
        expected[account][tok] += amount;
        held[tok] -= amount;
    }

    function _payShares(GJob storage g, address tok) internal {
        uint256 w;
        for (uint256 i; i < providers.length; ++i) {
            if ((g.winners >> i) & 1 == 1) w++;
        }
        if (w == 0) {
            return;
        }
        uint256 share = g.price * (BPS - _feeBpsOf(g)) / BPS / w;
        for (uint256 i; i < providers.length; ++i) {
            if ((g.winners >> i) & 1 == 1) _credit(providers[i], tok, share);
        }
        _credit(treasury, tok, g.price - share * w);
    }

    function _feeBpsOf(GJob storage g) internal view returns (uint256) {
        return abi.decode(batches[g.batch].outcome, (IJobEscrow.BatchOutcome)).feeBps;
    }

    /// @dev Model of a challenge that did not succeed: the job is paid; the bond goes to the winners
    /// (rejected) or back to the challenger (expired); losers are slashed to the treasury.
    function _closeModel(GJob storage g, uint256 bond, bool rejected) internal {
        _payShares(g, g.job.token);
        uint256 w;
        for (uint256 i; i < providers.length; ++i) {
            if ((g.winners >> i) & 1 == 1) w++;
        }
        if (rejected) {
            for (uint256 i; i < providers.length; ++i) {
                if ((g.winners >> i) & 1 == 1) _credit(providers[i], address(0), bond / w);
            }
            _credit(treasury, address(0), bond - (bond / w) * w);
        } else {
            _credit(challenger, address(0), bond);
        }
        uint256[] memory slashable = _slashable();
        uint256 perLoser = escrow.getChallenge(g.id).slashPerFailure;
        for (uint256 i; i < providers.length; ++i) {
            if ((g.losers >> i) & 1 == 1) expected[treasury][address(0)] += _min(perLoser, slashable[i]);
        }
        g.status = IJobEscrow.ComputeJobStatus.Finalized;
    }

    function _slashable() internal view returns (uint256[] memory out) {
        out = new uint256[](providers.length);
        for (uint256 i; i < providers.length; ++i) {
            IProviderRegistry.Provider memory info = registry.getProvider(providers[i]);
            out[i] = info.stake + info.unbonding;
        }
    }

    function _readyBatch(uint256 seed) internal view returns (bool, uint256) {
        for (uint256 k; k < batches.length; ++k) {
            uint256 bi = _at(seed, k, batches.length);
            if (!batches[bi].finalized && block.timestamp >= batches[bi].windowEnd) return (true, bi);
        }
        return (false, 0);
    }

    function _pendingChallenge(uint256 seed) internal view returns (bool, uint256) {
        for (uint256 k; k < jobs.length; ++k) {
            uint256 ji = _at(seed, k, jobs.length);
            if (jobs[ji].status == IJobEscrow.ComputeJobStatus.Challenged) return (true, ji);
        }
        return (false, 0);
    }

    function _proof(GJob storage g, GBatch storage gb) internal view returns (IJobEscrow.ChallengeProof memory p) {
        IJobEscrow.Settlement[] memory list = abi.decode(gb.settlements, (IJobEscrow.Settlement[]));
        p.batchId = gb.id;
        p.job = g.job;
        p.outcome = abi.decode(gb.outcome, (IJobEscrow.BatchOutcome));
        p.settlementHashes = new bytes32[](list.length);
        for (uint256 i; i < list.length; ++i) {
            p.settlementHashes[i] = escrow.hashSettlement(list[i]);
            if (list[i].jobId == g.id) {
                p.index = i;
                p.settlement = list[i];
            }
        }
    }

    function _settledEvent(Vm.Log[] memory logs) internal pure returns (uint64, IJobEscrow.BatchOutcome memory) {
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IJobEscrow.ComputeBatchSettled.selector) {
                (uint64 windowEnd, IJobEscrow.BatchOutcome memory outcome,) =
                    abi.decode(logs[i].data, (uint64, IJobEscrow.BatchOutcome, bytes32[]));
                return (windowEnd, outcome);
            }
        }
        revert("no ComputeBatchSettled");
    }

    function _sign(bytes32 digest, uint256 count) internal view returns (bytes[] memory sigs) {
        sigs = new bytes[](count);
        for (uint256 i; i < count; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(memberKeys[i], digest);
            sigs[i] = abi.encodePacked(r, s, v);
        }
    }

    /// @dev The k-th index after a random start, without overflowing on any seed.
    function _at(uint256 seed, uint256 k, uint256 length) internal pure returns (uint256) {
        return (seed % length + k) % length;
    }

    function _min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }
}

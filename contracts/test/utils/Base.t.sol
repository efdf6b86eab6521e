// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test, Vm} from "forge-std/Test.sol";

import {JobEscrow} from "../../src/JobEscrow.sol";
import {ProviderRegistry} from "../../src/ProviderRegistry.sol";
import {StorageMarket} from "../../src/StorageMarket.sol";
import {VerifierCommittee} from "../../src/VerifierCommittee.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";
import {IStorageMarket} from "../../src/interfaces/IStorageMarket.sol";
import {IVerifierCommittee} from "../../src/interfaces/IVerifierCommittee.sol";
import {MockERC20} from "./Mocks.sol";
import {TestMerkle} from "./TestMerkle.sol";

/// @notice Deploys the four contracts as `script/Deploy.s.sol` does, with a 2-of-3 committee and three
/// staked providers, and offers the helpers every test layer shares: jobs, signed batches, the batch
/// outcome read back from the event, storage trees.
abstract contract Base is Test {
    uint256 internal constant MIN_STAKE = 1 ether;
    uint64 internal constant UNBONDING = 7 days;
    uint16 internal constant FEE_BPS = 1_000;
    uint32 internal constant WINDOW = 1 days;
    uint32 internal constant RESOLUTION = 3 days;
    uint96 internal constant BOND = 0.1 ether;
    uint96 internal constant MINORITY_SLASH = 0.5 ether;
    uint96 internal constant STORAGE_SLASH = 0.2 ether;
    uint96 internal constant MIN_STORAGE_PRICE = 1_000;
    uint256 internal constant CHUNK = 1024;

    ProviderRegistry internal registry;
    VerifierCommittee internal committee;
    JobEscrow internal escrow;
    StorageMarket internal market;
    MockERC20 internal token;

    address internal owner = makeAddr("owner");
    address internal treasury = makeAddr("treasury");
    address internal buyer = makeAddr("buyer");
    address internal stranger = makeAddr("stranger");

    /// @dev Committee member keys, sorted by address.
    uint256[] internal memberKeys;
    /// @dev Provider addresses, sorted ascending (as a batch lists them).
    address[] internal providers;

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        vm.roll(100);

        memberKeys.push(0xA11CE);
        memberKeys.push(0xB0B);
        memberKeys.push(0xC4A7);
        _sortKeys(memberKeys);
        address[] memory members = new address[](3);
        for (uint256 i; i < 3; ++i) {
            members[i] = vm.addr(memberKeys[i]);
        }

        registry = new ProviderRegistry(owner, MIN_STAKE, UNBONDING);
        committee = new VerifierCommittee(owner, members, 2);
        escrow = new JobEscrow(owner, registry, committee, defaultParams());
        market = new StorageMarket(owner, registry, committee, defaultStorageParams());
        vm.startPrank(owner);
        registry.setEscrow(address(escrow));
        registry.setStorageMarket(address(market));
        token = new MockERC20();
        escrow.setTokenAllowed(address(token), true);
        vm.stopPrank();

        providers.push(makeAddr("provider-a"));
        providers.push(makeAddr("provider-b"));
        providers.push(makeAddr("provider-c"));
        _sortAddresses(providers);
        for (uint256 i; i < providers.length; ++i) {
            registerProvider(providers[i], 2 ether);
        }

        vm.deal(buyer, 1_000 ether);
        token.mint(buyer, 1_000_000 ether);
        vm.prank(buyer);
        token.approve(address(escrow), type(uint256).max);

        vm.label(address(escrow), "JobEscrow");
        vm.label(address(market), "StorageMarket");
        vm.label(address(registry), "ProviderRegistry");
        vm.label(address(committee), "VerifierCommittee");
    }

    function defaultParams() internal view returns (IJobEscrow.EscrowParams memory) {
        return IJobEscrow.EscrowParams({
            treasury: treasury,
            feeBps: FEE_BPS,
            challengeWindow: WINDOW,
            challengeResolutionPeriod: RESOLUTION,
            challengeBond: BOND,
            minoritySlash: MINORITY_SLASH
        });
    }

    function defaultStorageParams() internal view returns (IStorageMarket.StorageParams memory) {
        return IStorageMarket.StorageParams({
            treasury: treasury,
            feeBps: FEE_BPS,
            slashPerPeriod: STORAGE_SLASH,
            minPricePerPeriod: MIN_STORAGE_PRICE,
            minPeriodLength: 2
        });
    }

    function metadata() internal pure returns (IProviderRegistry.ProviderMetadata memory) {
        return IProviderRegistry.ProviderMetadata({pricePerFuel: 1 gwei, capacity: 4, region: "eu-west"});
    }

    function registerProvider(address provider, uint256 stake) internal {
        vm.deal(provider, provider.balance + stake);
        vm.prank(provider);
        registry.register{value: stake}(metadata());
    }

    /*//////////////////////////////////////////////////////////////
                                 JOBS
    //////////////////////////////////////////////////////////////*/

    function jobRecord(address who, address tok, uint256 budget, uint8 redundancy)
        internal
        view
        returns (IJobEscrow.ComputeJob memory)
    {
        return IJobEscrow.ComputeJob({
            specHash: keccak256(abi.encode("spec", budget)),
            buyer: who,
            token: tok,
            budget: budget,
            deadline: uint64(block.timestamp + 1 days),
            redundancy: redundancy,
            preferredProvider: address(0)
        });
    }

    function createJob(IJobEscrow.ComputeJob memory job) internal returns (uint256 jobId) {
        uint256 value = job.token == address(0) ? job.budget : 0;
        vm.prank(job.buyer);
        jobId = escrow.createComputeJob{value: value}(
            job.specHash, job.redundancy, job.token, job.budget, job.deadline, job.preferredProvider
        );
    }

    function createEthJob(uint256 budget) internal returns (uint256 jobId, IJobEscrow.ComputeJob memory job) {
        job = jobRecord(buyer, address(0), budget, 3);
        jobId = createJob(job);
    }

    /// @dev A settlement where the first `winnerCount` providers won and the rest of the first
    /// `replicas` lost.
    function verdict(uint256 jobId, uint256 price, uint256 winnerCount, uint256 replicas)
        internal
        pure
        returns (IJobEscrow.Settlement memory s)
    {
        s.jobId = jobId;
        s.price = price;
        if (winnerCount != 0) s.resultDigest = keccak256(abi.encode("digest", jobId));
        s.winners = (1 << winnerCount) - 1;
        s.losers = ((1 << replicas) - 1) & ~s.winners;
    }

    function batchOf(address tok, IJobEscrow.Settlement[] memory settlements)
        internal
        view
        returns (IJobEscrow.SettlementBatch memory b)
    {
        b.token = tok;
        b.providers = providers;
        b.settlements = settlements;
        b.validUntil = uint64(block.timestamp + 1 hours);
    }

    function one(IJobEscrow.Settlement memory s) internal pure returns (IJobEscrow.Settlement[] memory list) {
        list = new IJobEscrow.Settlement[](1);
        list[0] = s;
    }

    function one(IJobEscrow.ComputeJob memory j) internal pure returns (IJobEscrow.ComputeJob[] memory list) {
        list = new IJobEscrow.ComputeJob[](1);
        list[0] = j;
    }

    /// @dev Signatures by the first `count` committee members, in ascending signer order.
    function committeeSign(bytes32 digest, uint256 count) internal view returns (bytes[] memory sigs) {
        sigs = new bytes[](count);
        for (uint256 i; i < count; ++i) {
            sigs[i] = signWith(memberKeys[i], digest);
        }
    }

    /// @dev The EIP-712 domain separator of `escrow_` (or the market), rebuilt from its ERC-5267
    /// `eip712Domain()`.
    function domainSeparatorOf(address escrow_) internal view returns (bytes32) {
        (, string memory name, string memory version, uint256 chainId, address verifying,,) =
            JobEscrow(payable(escrow_)).eip712Domain();
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes(name)),
                keccak256(bytes(version)),
                chainId,
                verifying
            )
        );
    }

    function signWith(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    struct Settled {
        uint256 batchId;
        uint64 windowEnd;
        IJobEscrow.BatchOutcome outcome;
        bytes32[] digests;
    }

    /// @dev Settles with two committee signatures and reads the outcome back from the event, as the
    /// coordinator does.
    function settle(IJobEscrow.SettlementBatch memory b, IJobEscrow.ComputeJob[] memory jobs)
        internal
        returns (Settled memory out)
    {
        bytes[] memory sigs = committeeSign(escrow.hashSettlementBatch(b), 2);
        vm.recordLogs();
        out.batchId = escrow.settleComputeJobs(b, jobs, sigs);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IJobEscrow.ComputeBatchSettled.selector) {
                assertEq(uint256(logs[i].topics[1]), out.batchId, "event batch id");
                (out.windowEnd, out.outcome, out.digests) =
                    abi.decode(logs[i].data, (uint64, IJobEscrow.BatchOutcome, bytes32[]));
                return out;
            }
        }
        revert("no ComputeBatchSettled event");
    }

    function settleOne(IJobEscrow.ComputeJob memory job, IJobEscrow.Settlement memory s)
        internal
        returns (Settled memory)
    {
        return settle(batchOf(job.token, one(s)), one(job));
    }

    function settlementHashes(IJobEscrow.Settlement[] memory settlements) internal view returns (bytes32[] memory h) {
        h = new bytes32[](settlements.length);
        for (uint256 i; i < settlements.length; ++i) {
            h[i] = escrow.hashSettlement(settlements[i]);
        }
    }

    function challengeProof(
        Settled memory st,
        IJobEscrow.ComputeJob memory job,
        IJobEscrow.Settlement[] memory settlements,
        uint256 index
    ) internal view returns (IJobEscrow.ChallengeProof memory p) {
        p.batchId = st.batchId;
        p.job = job;
        p.outcome = st.outcome;
        p.settlementHashes = settlementHashes(settlements);
        p.index = index;
        p.settlement = settlements[index];
    }

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    function chunksOf(bytes memory data) internal pure returns (bytes[] memory) {
        return TestMerkle.chunksOf(data);
    }

    function leafOf(bytes memory chunk) internal pure returns (bytes32) {
        return TestMerkle.leafOf(chunk);
    }

    function nodeOf(bytes32 l, bytes32 r) internal pure returns (bytes32) {
        return TestMerkle.nodeOf(l, r);
    }

    function leavesOf(bytes[] memory chunks) internal pure returns (bytes32[] memory) {
        return TestMerkle.leavesOf(chunks);
    }

    function merkle(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32, bytes32[] memory) {
        return TestMerkle.merkle(leaves, index);
    }

    function fileOf(uint256 size, uint256 seed) internal pure returns (bytes memory) {
        return TestMerkle.fileOf(size, seed);
    }

    /*//////////////////////////////////////////////////////////////
                                 SORTING
    //////////////////////////////////////////////////////////////*/

    function _sortKeys(uint256[] storage keys) private {
        for (uint256 i = 1; i < keys.length; ++i) {
            for (uint256 j = i; j > 0 && vm.addr(keys[j - 1]) > vm.addr(keys[j]); --j) {
                (keys[j - 1], keys[j]) = (keys[j], keys[j - 1]);
            }
        }
    }

    function _sortAddresses(address[] storage list) private {
        for (uint256 i = 1; i < list.length; ++i) {
            for (uint256 j = i; j > 0 && list[j - 1] > list[j]; --j) {
                (list[j - 1], list[j]) = (list[j], list[j - 1]);
            }
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IJobEscrow} from "./interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";
import {IVerifierCommittee} from "./interfaces/IVerifierCommittee.sol";
import {Bits} from "./libraries/Bits.sol";

/// @title JobEscrow
/// @notice Escrow of QOR compute jobs. See {IJobEscrow}.
contract JobEscrow is IJobEscrow, EIP712, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Basis points in one.
    uint256 internal constant BPS = 10_000;
    /// @notice The highest protocol fee the owner may set (20%).
    uint16 internal constant MAX_FEE_BPS = 2_000;
    /// @notice The most replicas a job may ask for.
    uint8 public constant MAX_REDUNDANCY = 32;
    /// @notice The longest challenge window or resolution period the owner may set.
    uint32 internal constant MAX_WINDOW = 30 days;
    /// @notice The highest slash per lost job the owner may set.
    uint96 public constant MAX_MINORITY_SLASH = 1 ether;
    /// @notice The part of an upheld challenge's slashes paid to the challenger (the rest to the buyer).
    uint256 public constant CHALLENGER_SHARE_BPS = 2_000;
    /// @notice The most jobs one batch may settle, so that finalizing it always fits in a block.
    uint256 public constant MAX_BATCH_JOBS = 512;

    bytes32 internal constant SETTLEMENT_TYPEHASH =
        keccak256("Settlement(uint256 jobId,bytes32 resultDigest,uint256 price,uint256 winners,uint256 losers)");
    bytes32 internal constant SETTLEMENT_BATCH_TYPEHASH = keccak256(
        "SettlementBatch(address token,address[] providers,Settlement[] settlements,uint64 validUntil)"
        "Settlement(uint256 jobId,bytes32 resultDigest,uint256 price,uint256 winners,uint256 losers)"
    );
    bytes32 internal constant CHALLENGE_RESOLUTION_TYPEHASH = keccak256("ChallengeResolution(uint256 jobId,bool upheld)");
    // Two status bits per compute job, 128 jobs per word. A settled job whose challenge is pending stays
    // SETTLED; the challenge record tells the rest.
    uint256 internal constant PHASE_OPEN = 0;
    uint256 internal constant PHASE_SETTLED = 1;
    uint256 internal constant PHASE_FINALIZED = 2;
    uint256 internal constant PHASE_RECLAIMED = 3;
    uint256 internal constant NO_WORD = type(uint256).max;

    /// @dev Per-provider sums while a batch is checked; copied into its outcome at the end.
    struct Tally {
        uint256[] payouts;
        uint256[] completed;
        uint256[] failed;
        uint256 fee;
        uint256 refundCount;
    }

    /// @dev One status word being edited in memory.
    struct PhaseCursor {
        uint256 wordIndex;
        uint256 word;
    }

    /*//////////////////////////////////////////////////////////////
                                 STATE
    //////////////////////////////////////////////////////////////*/

    /// @notice Where providers stake and are slashed.
    IProviderRegistry public immutable registry;
    /// @notice Whose signatures settle and resolve.
    IVerifierCommittee public immutable committee;
    /// @inheritdoc IJobEscrow
    uint32 public immutable minChallengeWindow;
    /// @inheritdoc IJobEscrow
    uint96 public immutable minChallengeBond;

    EscrowParams internal _params;

    /// @inheritdoc IJobEscrow
    uint256 public nextJobId;
    /// @inheritdoc IJobEscrow
    uint256 public nextBatchId;

    /// @inheritdoc IJobEscrow
    mapping(address account => mapping(address token => uint256)) public balanceOf;

    mapping(uint256 jobId => bytes32) internal _jobCommitments;
    mapping(uint256 wordIndex => uint256) internal _jobPhases;
    mapping(uint256 batchId => ComputeBatch) internal _batches;
    mapping(uint256 batchId => uint256[]) internal _batchChallengedJobs;
    mapping(uint256 jobId => Challenge) internal _challenges;
    mapping(uint256 jobId => ChallengeParties) internal _challengeParties;
    mapping(address token => bool) internal _allowedTokens;

    constructor(
        address initialOwner,
        IProviderRegistry registry_,
        IVerifierCommittee committee_,
        EscrowParams memory params_
    ) EIP712("QOR JobEscrow", "1") Ownable(initialOwner) {
        if (address(registry_) == address(0)) revert JobEscrow_ZeroAddress("registry");
        if (address(committee_) == address(0)) revert JobEscrow_ZeroAddress("committee");
        registry = registry_;
        committee = committee_;
        // The owner may raise the window and the bond, never lower them below what clients saw deployed.
        minChallengeWindow = params_.challengeWindow;
        minChallengeBond = params_.challengeBond;
        _setParams(params_);
        // Ids start at 1 so that 0 means "none", and the counters' slots are never written from zero
        // again: the first job costs what every later one does.
        nextJobId = 1;
        nextBatchId = 1;
    }

    /// @dev Slashed stake arrives from the registry during `_slash`; nobody else sends ETH unasked.
    receive() external payable {
        if (msg.sender != address(registry)) revert JobEscrow_UnexpectedEther(msg.sender);
    }

    /*//////////////////////////////////////////////////////////////
                                COMPUTE
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IJobEscrow
    function createComputeJob(
        bytes32 specHash,
        uint8 redundancy,
        address token,
        uint256 budget,
        uint64 deadline,
        address preferredProvider
    ) external payable nonReentrant returns (uint256 jobId) {
        // Checks
        if (budget == 0) revert JobEscrow_ZeroBudget();
        if (redundancy == 0 || redundancy > MAX_REDUNDANCY) {
            revert JobEscrow_InvalidRedundancy(redundancy, MAX_REDUNDANCY);
        }
        if (deadline <= block.timestamp) revert JobEscrow_DeadlineInPast(deadline, uint64(block.timestamp));
        if (token != address(0) && !_allowedTokens[token]) revert JobEscrow_TokenNotAllowed(token);
        uint256 expectedValue = token == address(0) ? budget : 0;
        if (msg.value != expectedValue) revert JobEscrow_WrongValue(msg.value, expectedValue);

        // Effects
        jobId = nextJobId;
        unchecked {
            nextJobId = jobId + 1;
        }
        ComputeJob memory job = ComputeJob({
            specHash: specHash,
            buyer: msg.sender,
            token: token,
            budget: budget,
            deadline: deadline,
            redundancy: redundancy,
            preferredProvider: preferredProvider
        });
        _jobCommitments[jobId] = keccak256(abi.encode(job));
        emit ComputeJobCreated(jobId, msg.sender, specHash, job);

        // Interactions
        if (token != address(0)) _pullExactly(IERC20(token), budget);
    }

    /// @inheritdoc IJobEscrow
    function settleComputeJobs(SettlementBatch calldata batch, ComputeJob[] calldata jobs, bytes[] calldata signatures)
        external
        nonReentrant
        returns (uint256 batchId)
    {
        // Checks: shape, committee, providers.
        uint256 n = jobs.length;
        if (n == 0 || n > MAX_BATCH_JOBS || n != batch.settlements.length) {
            revert JobEscrow_InvalidBatchLength(n, batch.settlements.length);
        }
        if (block.timestamp > batch.validUntil) {
            revert JobEscrow_SignaturesExpired(batch.validUntil, uint64(block.timestamp));
        }
        (bytes32 digest, bytes32 settlementsHash) = _hashSettlementBatch(batch);
        committee.checkSignatures(digest, signatures);

        (BatchOutcome memory outcome, bytes32[] memory digests) = _buildOutcome(batch, jobs, settlementsHash);

        // Effects: the batch.
        batchId = nextBatchId;
        unchecked {
            nextBatchId = batchId + 1;
        }
        uint64 windowEnd = uint64(block.timestamp) + _params.challengeWindow;
        // One encoding serves the event and the stored hash: the event data is
        // (windowEnd, outcome, digests), and `abi.encode(outcome)` is the word 0x20 followed by the outcome's
        // tuple, which the data holds right after its three head words.
        bytes memory data = abi.encode(windowEnd, outcome, digests);
        bytes32 outcomeHash;
        bytes32 topic = ComputeBatchSettled.selector;
        assembly ("memory-safe") {
            let head := add(data, 0x20)
            let digestsOffset := mload(add(head, 0x40))
            mstore(add(head, 0x40), 0x20)
            outcomeHash := keccak256(add(head, 0x40), sub(digestsOffset, 0x40))
            mstore(add(head, 0x40), digestsOffset)
            log2(head, mload(data), topic, batchId)
        }
        _batches[batchId] = ComputeBatch({outcomeHash: outcomeHash, windowEnd: windowEnd, challenges: 0, finalized: false});
    }

    /// @inheritdoc IJobEscrow
    function finalize(uint256 batchId, BatchOutcome calldata outcome) external nonReentrant {
        // Checks
        ComputeBatch storage b = _batches[batchId];
        bytes32 outcomeHash = b.outcomeHash;
        if (outcomeHash == 0) revert JobEscrow_UnknownBatch(batchId);
        if (b.finalized) revert JobEscrow_BatchFinalized(batchId);
        if (_calldataOutcomeHash(outcome) != outcomeHash) revert JobEscrow_OutcomeMismatch(batchId);
        if (block.timestamp < b.windowEnd) {
            revert JobEscrow_ChallengeWindowOpen(batchId, b.windowEnd, uint64(block.timestamp));
        }

        // Effects
        b.finalized = true;
        ProviderOutcome[] memory providers = outcome.providers;
        uint256 fee = outcome.fee;
        bool anyChallenged = b.challenges != 0;
        if (anyChallenged) fee = _withholdChallenged(batchId, providers, fee);
        _markFinalized(outcome.jobIds, anyChallenged);

        address token = outcome.token;
        for (uint256 i; i < providers.length; ++i) {
            if (providers[i].payout != 0) balanceOf[providers[i].provider][token] += providers[i].payout;
        }
        address treasury = outcome.treasury;
        if (fee != 0) balanceOf[treasury][token] += fee;
        for (uint256 i; i < outcome.refunds.length; ++i) {
            balanceOf[outcome.refunds[i].buyer][token] += outcome.refunds[i].amount;
        }
        emit ComputeBatchFinalized(batchId);

        // Interactions (the registry only)
        for (uint256 i; i < providers.length; ++i) {
            ProviderOutcome memory po = providers[i];
            if (po.completed == 0 && po.failed == 0) continue;
            registry.recordOutcomes(po.provider, po.completed, po.failed);
            if (po.failed != 0) _slash(po.provider, uint256(po.failed) * outcome.slashPerFailure, treasury);
        }
    }

    /// @inheritdoc IJobEscrow
    function challenge(uint256 jobId, ChallengeProof calldata proof) external payable nonReentrant {
        // Checks: the job, its batch, the settlement's place in it, the bond.
        _checkJobRecord(jobId, proof.job);
        uint256 phase = _phaseOf(jobId);
        Challenge storage c = _challenges[jobId];
        if (phase != PHASE_SETTLED || c.status != ChallengeStatus.None) {
            revert JobEscrow_InvalidJobStatus(jobId, _statusOf(jobId, phase));
        }
        uint256 batchId = proof.batchId;
        ComputeBatch storage b = _batches[batchId];
        if (b.outcomeHash == 0) revert JobEscrow_UnknownBatch(batchId);
        if (keccak256(abi.encode(proof.outcome)) != b.outcomeHash) revert JobEscrow_OutcomeMismatch(batchId);
        if (b.finalized) revert JobEscrow_BatchFinalized(batchId);
        if (block.timestamp >= b.windowEnd) {
            revert JobEscrow_ChallengeWindowClosed(batchId, b.windowEnd, uint64(block.timestamp));
        }
        Settlement calldata s = proof.settlement;
        if (
            s.jobId != jobId || proof.index >= proof.settlementHashes.length
                || proof.settlementHashes[proof.index] != hashSettlement(s)
                || keccak256(abi.encodePacked(proof.settlementHashes)) != proof.outcome.settlementsHash
        ) revert JobEscrow_SettlementNotInBatch(batchId, proof.index);
        if (s.winners == 0) revert JobEscrow_NothingToChallenge(jobId);
        uint256 bond = _params.challengeBond;
        if (msg.value != bond) revert JobEscrow_WrongValue(msg.value, bond);

        // Effects
        c.challenger = msg.sender;
        c.bond = uint96(bond);
        c.batchId = uint64(batchId);
        c.resolveBy = uint64(block.timestamp) + _params.challengeResolutionPeriod;
        c.status = ChallengeStatus.Pending;
        c.feeBps = proof.outcome.feeBps;
        c.slashPerFailure = proof.outcome.slashPerFailure;
        c.buyer = proof.job.buyer;
        c.token = proof.job.token;
        c.price = s.price;
        c.winnersMask = s.winners;
        c.losersMask = s.losers;
        c.treasury = proof.outcome.treasury;
        ChallengeParties storage parties = _challengeParties[jobId];
        ProviderOutcome[] calldata providers = proof.outcome.providers;
        for (uint256 i; i < providers.length; ++i) {
            if ((s.winners >> i) & 1 == 1) parties.winners.push(providers[i].provider);
            else if ((s.losers >> i) & 1 == 1) parties.losers.push(providers[i].provider);
        }
        b.challenges += 1;
        _batchChallengedJobs[batchId].push(jobId);
        emit ComputeJobChallenged(jobId, batchId, msg.sender, bond);

        // Interactions (the registry only): the parties' stake stays until the challenge can be resolved,
        // even if the resolution period was raised after the batch settled.
        uint64 resolveBy = c.resolveBy;
        for (uint256 i; i < providers.length; ++i) {
            if (((s.winners | s.losers) >> i) & 1 == 1) registry.lockStake(providers[i].provider, resolveBy);
        }
    }

    /// @inheritdoc IJobEscrow
    function resolveChallenge(uint256 jobId, bool upheld, bytes[] calldata signatures) external nonReentrant {
        // Checks: only until `resolveBy`; after it the challenge can only expire (no race between the two).
        Challenge storage c = _pendingChallenge(jobId);
        if (block.timestamp > c.resolveBy) revert JobEscrow_ChallengeExpired(jobId, c.resolveBy, uint64(block.timestamp));
        committee.checkSignatures(hashChallengeResolution(jobId, upheld), signatures);

        if (!upheld) {
            _closeChallenge(jobId, c, ChallengeStatus.Rejected);
            return;
        }
        // Effects: the buyer gets the price back (the rest of the budget comes with the batch).
        c.status = ChallengeStatus.Upheld;
        _setPhase(jobId, PHASE_FINALIZED);
        balanceOf[c.buyer][c.token] += c.price;
        balanceOf[c.challenger][address(0)] += c.bond;
        emit ChallengeResolved(jobId, ChallengeStatus.Upheld);

        // Interactions (the registry only): the winners were wrong. The buyer is the harmed party; the
        // challenger, who paid to show it, gets a share of each slash.
        address[] memory winners = _challengeParties[jobId].winners;
        for (uint256 i; i < winners.length; ++i) {
            registry.recordOutcomes(winners[i], 0, 1);
            uint256 slashed = c.slashPerFailure == 0 ? 0 : registry.slash(winners[i], c.slashPerFailure, c.buyer);
            if (slashed == 0) continue;
            uint256 share = slashed * CHALLENGER_SHARE_BPS / BPS;
            balanceOf[c.challenger][address(0)] += share;
            balanceOf[c.buyer][address(0)] += slashed - share;
        }
    }

    /// @inheritdoc IJobEscrow
    function expireChallenge(uint256 jobId) external nonReentrant {
        Challenge storage c = _pendingChallenge(jobId);
        if (block.timestamp <= c.resolveBy) {
            revert JobEscrow_ChallengeNotExpired(jobId, c.resolveBy, uint64(block.timestamp));
        }
        _closeChallenge(jobId, c, ChallengeStatus.Expired);
    }

    /// @inheritdoc IJobEscrow
    function reclaim(uint256 jobId, ComputeJob calldata job) external nonReentrant {
        // Checks
        _checkJobRecord(jobId, job);
        uint256 phase = _phaseOf(jobId);
        if (phase != PHASE_OPEN) revert JobEscrow_InvalidJobStatus(jobId, _statusOf(jobId, phase));
        if (block.timestamp <= job.deadline) {
            revert JobEscrow_DeadlineNotReached(jobId, job.deadline, uint64(block.timestamp));
        }

        // Effects
        _setPhase(jobId, PHASE_RECLAIMED);
        balanceOf[job.buyer][job.token] += job.budget;
        emit ComputeJobReclaimed(jobId, job.buyer, job.budget);
    }

    /*//////////////////////////////////////////////////////////////
                                PAYOUTS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IJobEscrow
    function withdraw(address token) external nonReentrant {
        // Checks
        uint256 amount = balanceOf[msg.sender][token];
        if (amount == 0) revert JobEscrow_NothingToWithdraw(token);

        // Effects
        balanceOf[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, amount);

        // Interactions
        if (token == address(0)) {
            (bool ok,) = msg.sender.call{value: amount}("");
            if (!ok) revert JobEscrow_TransferFailed(msg.sender, amount);
        } else {
            IERC20(token).safeTransfer(msg.sender, amount);
        }
    }

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IJobEscrow
    function setParams(EscrowParams calldata params_) external onlyOwner {
        _setParams(params_);
    }

    /// @inheritdoc IJobEscrow
    function setTokenAllowed(address token, bool allowed) external onlyOwner {
        if (token == address(0)) revert JobEscrow_ZeroAddress("token");
        _allowedTokens[token] = allowed;
        emit TokenAllowed(token, allowed);
    }

    /// @notice Disabled: the escrow always has an owner (its timelock) to change parameters through.
    function renounceOwnership() public view override onlyOwner {
        revert JobEscrow_OwnerRequired();
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IJobEscrow
    function computeJobStatus(uint256 jobId) external view returns (ComputeJobStatus) {
        if (_jobCommitments[jobId] == 0) return ComputeJobStatus.None;
        return _statusOf(jobId, _phaseOf(jobId));
    }

    /// @inheritdoc IJobEscrow
    function computeJobCommitment(uint256 jobId) external view returns (bytes32) {
        return _jobCommitments[jobId];
    }

    /// @inheritdoc IJobEscrow
    function getBatch(uint256 batchId) external view returns (ComputeBatch memory) {
        return _batches[batchId];
    }

    /// @inheritdoc IJobEscrow
    function getChallenge(uint256 jobId) external view returns (Challenge memory) {
        return _challenges[jobId];
    }

    /// @inheritdoc IJobEscrow
    function getChallengeParties(uint256 jobId) external view returns (ChallengeParties memory) {
        return _challengeParties[jobId];
    }

    /// @inheritdoc IJobEscrow
    function params() external view returns (EscrowParams memory) {
        return _params;
    }

    /// @inheritdoc IJobEscrow
    function isTokenAllowed(address token) external view returns (bool) {
        return token == address(0) || _allowedTokens[token];
    }

    /// @inheritdoc IJobEscrow
    function hashSettlementBatch(SettlementBatch calldata batch) external view returns (bytes32 digest) {
        (digest,) = _hashSettlementBatch(batch);
    }

    /// @inheritdoc IJobEscrow
    function hashChallengeResolution(uint256 jobId, bool upheld) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(CHALLENGE_RESOLUTION_TYPEHASH, jobId, upheld)));
    }

    /// @inheritdoc IJobEscrow
    function hashSettlement(Settlement calldata s) public pure returns (bytes32 h) {
        bytes32 typehash = SETTLEMENT_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            calldatacopy(add(ptr, 0x20), s, 0xa0)
            h := keccak256(ptr, 0xc0)
        }
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    /// @dev Returns the EIP-712 digest of `batch` and the hash of its settlements' struct hashes.
    function _hashSettlementBatch(SettlementBatch calldata batch)
        internal
        view
        returns (bytes32 digest, bytes32 settlementsHash)
    {
        Settlement[] calldata settlements = batch.settlements;
        uint256 n = settlements.length;
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            hashes[i] = hashSettlement(settlements[i]);
        }
        settlementsHash = keccak256(abi.encodePacked(hashes));
        digest = _hashTypedDataV4(
            keccak256(
                abi.encode(
                    SETTLEMENT_BATCH_TYPEHASH,
                    batch.token,
                    keccak256(abi.encodePacked(batch.providers)),
                    settlementsHash,
                    batch.validUntil
                )
            )
        );
    }

    /// @dev Checks the batch's providers (1..=256, ascending so none repeats, all registered), holds each
    /// one's stake until the batch's challenge window and resolution period are over (a slash an upheld
    /// challenge orders must still find it), and returns their zeroed outcomes.
    function _batchProviders(address[] calldata providers) internal returns (ProviderOutcome[] memory out) {
        uint256 count = providers.length;
        if (count == 0 || count > 256) revert JobEscrow_InvalidProviders(count);
        out = new ProviderOutcome[](count);
        address previous;
        uint64 holdUntil = uint64(block.timestamp) + _params.challengeWindow + _params.challengeResolutionPeriod;
        for (uint256 i; i < count; ++i) {
            address provider = providers[i];
            if (provider <= previous) revert JobEscrow_InvalidProviders(count);
            registry.lockStake(provider, holdUntil);
            out[i].provider = provider;
            previous = provider;
        }
    }

    /// @dev Checks every job of a batch, marks each settled, and adds up what finalization will pay.
    function _buildOutcome(SettlementBatch calldata batch, ComputeJob[] calldata jobs, bytes32 settlementsHash)
        internal
        returns (BatchOutcome memory outcome, bytes32[] memory digests)
    {
        uint256 n = jobs.length;
        outcome.token = batch.token;
        outcome.settlementsHash = settlementsHash;
        outcome.feeBps = _params.feeBps;
        outcome.slashPerFailure = _params.minoritySlash;
        outcome.treasury = _params.treasury;
        outcome.providers = _batchProviders(batch.providers);
        outcome.refunds = new Refund[](n);
        outcome.jobIds = new uint256[](n);
        digests = new bytes32[](n);
        uint256 providerCount = outcome.providers.length;
        Tally memory t = Tally({
            payouts: new uint256[](providerCount),
            completed: new uint256[](providerCount),
            failed: new uint256[](providerCount),
            fee: 0,
            refundCount: 0
        });

        // Checks and effects, per job.
        uint256 settled = _settleAll(batch.settlements, jobs, outcome, t, digests);
        if (settled == 0) revert JobEscrow_InvalidBatchLength(0, n);
        if (settled != n) {
            uint256[] memory ids = outcome.jobIds;
            assembly ("memory-safe") {
                mstore(ids, settled)
                mstore(digests, settled)
            }
        }

        for (uint256 k; k < providerCount; ++k) {
            ProviderOutcome memory po = outcome.providers[k];
            po.payout = t.payouts[k];
            po.completed = uint64(t.completed[k]);
            po.failed = uint64(t.failed[k]);
        }
        outcome.fee = t.fee;
        Refund[] memory refunds = outcome.refunds;
        uint256 refundCount = t.refundCount;
        assembly ("memory-safe") {
            mstore(refunds, refundCount)
        }
    }

    /// @dev Settles every job it can, in order, writing the settled ones' ids and digests to the front of
    /// `outcome.jobIds` and `digests`; returns how many.
    function _settleAll(
        Settlement[] calldata settlements,
        ComputeJob[] calldata jobs,
        BatchOutcome memory outcome,
        Tally memory t,
        bytes32[] memory digests
    ) internal returns (uint256 settled) {
        PhaseCursor memory cursor = PhaseCursor({wordIndex: NO_WORD, word: 0});
        uint256[] memory ids = outcome.jobIds;
        for (uint256 i; i < jobs.length; ++i) {
            Settlement calldata s = settlements[i];
            if (!_settleOne(outcome, t, s, jobs[i], cursor)) continue;
            // `settled` < the arrays' length: no bounds check needed (this loop is the hot path).
            assembly ("memory-safe") {
                let offset := shl(5, add(settled, 1))
                mstore(add(ids, offset), calldataload(s))
                mstore(add(digests, offset), calldataload(add(s, 0x20)))
                settled := add(settled, 1)
            }
        }
        _flush(cursor);
    }

    /// @dev Checks one job of a batch, marks it settled and adds its payouts and refund to the tally;
    /// returns false (with `ComputeJobSkipped`, nothing changed) for a job no longer open or past its
    /// deadline. Once the record has matched its commitment its words are the clean canonical encoding, so
    /// fields are read straight from calldata (this loop is the settlement's hot path).
    function _settleOne(
        BatchOutcome memory outcome,
        Tally memory t,
        Settlement calldata s,
        ComputeJob calldata job,
        PhaseCursor memory cursor
    ) internal returns (bool) {
        uint256 jobId;
        assembly ("memory-safe") {
            jobId := calldataload(s)
        }
        _checkJobRecord(jobId, job);
        address token;
        uint256 budget;
        uint256 deadline;
        assembly ("memory-safe") {
            token := calldataload(add(job, 0x40))
            budget := calldataload(add(job, 0x60))
            deadline := calldataload(add(job, 0x80))
        }
        uint256 phase = _movePhase(cursor, jobId, PHASE_SETTLED);
        if (phase != PHASE_OPEN) {
            // Its deadline passed and the buyer reclaimed it while the batch was in flight: skip it. A job
            // settled already (by another batch, or earlier in this one) still reverts the batch: a second
            // verdict on it must never count.
            if (phase != PHASE_RECLAIMED) revert JobEscrow_InvalidJobStatus(jobId, _statusOf(jobId, phase));
            _movePhase(cursor, jobId, phase);
            emit ComputeJobSkipped(jobId, ComputeJobStatus.Reclaimed);
            return false;
        }
        if (block.timestamp > deadline) {
            _movePhase(cursor, jobId, phase);
            emit ComputeJobSkipped(jobId, ComputeJobStatus.Open);
            return false;
        }
        if (token != outcome.token) revert JobEscrow_TokenMismatch(jobId, token, outcome.token);
        uint256 price = _tallyVerdict(t, s, job, outcome.feeBps);
        if (price > budget) revert JobEscrow_PriceAboveBudget(jobId, price, budget);
        if (budget == price) return true;

        address buyer;
        assembly ("memory-safe") {
            buyer := calldataload(add(job, 0x20))
        }
        Refund[] memory refunds = outcome.refunds;
        uint256 count = t.refundCount;
        if (count != 0 && refunds[count - 1].buyer == buyer) {
            refunds[count - 1].amount += budget - price;
        } else {
            refunds[count] = Refund(buyer, budget - price);
            t.refundCount = count + 1;
        }
        return true;
    }

    /// @dev Sets `jobId`'s phase through `cursor`, which keeps one status word (128 jobs) in memory while
    /// consecutive jobs share it. Returns the previous phase. Call `_flush` at the end.
    function _movePhase(PhaseCursor memory cursor, uint256 jobId, uint256 phase) internal returns (uint256 previous) {
        uint256 wordIndex = jobId >> 7;
        if (wordIndex != cursor.wordIndex) {
            _flush(cursor);
            cursor.wordIndex = wordIndex;
            cursor.word = _jobPhases[wordIndex];
        }
        uint256 shift = (jobId & 127) << 1;
        previous = (cursor.word >> shift) & 3;
        cursor.word = (cursor.word & ~(3 << shift)) | (phase << shift);
    }

    function _flush(PhaseCursor memory cursor) internal {
        if (cursor.wordIndex != NO_WORD) _jobPhases[cursor.wordIndex] = cursor.word;
    }

    /// @dev Checks one settlement's verdict, adds its payouts and counts to the tally, returns its price.
    function _tallyVerdict(Tally memory t, Settlement calldata s, ComputeJob calldata job, uint16 feeBps)
        internal
        pure
        returns (uint256 price)
    {
        uint256 winners;
        uint256 losers;
        assembly ("memory-safe") {
            price := calldataload(add(s, 0x40))
            winners := calldataload(add(s, 0x60))
            losers := calldataload(add(s, 0x80))
        }
        uint256 w;
        {
            uint256 l;
            unchecked {
                for (uint256 m = winners; m != 0; m &= m - 1) ++w;
                for (uint256 m = losers; m != 0; m &= m - 1) ++l;
            }
            bytes32 digest;
            uint256 redundancy;
            assembly ("memory-safe") {
                digest := calldataload(add(s, 0x20))
                redundancy := calldataload(add(job, 0xa0))
            }
            uint256 providerCount = t.payouts.length;
            bool valid = winners & losers == 0 && (providerCount == 256 || (winners | losers) >> providerCount == 0);
            if (w == 0) {
                // No majority: a refund, and nobody is shown wrong.
                valid = valid && l == 0 && price == 0 && digest == 0;
            } else {
                valid = valid && 2 * w > w + l && w + l >= redundancy && digest != 0;
            }
            if (!valid) revert JobEscrow_InvalidVerdict(s.jobId, winners, losers, uint8(redundancy));
        }
        if (w == 0) return 0;

        (uint256 share, uint256 jobFee) = _split(price, feeBps, w);
        t.fee += jobFee;
        // Every set bit is below the provider count (checked above), so the slots are in bounds; sums
        // stay below the batch's total budget, all of which the escrow holds.
        assembly ("memory-safe") {
            let payouts := mload(t)
            let completed := mload(add(t, 0x20))
            let failed := mload(add(t, 0x40))
            for { let k := 0 } winners { k := add(k, 1) } {
                if and(winners, 1) {
                    let p := add(add(payouts, 0x20), shl(5, k))
                    mstore(p, add(mload(p), share))
                    let c := add(add(completed, 0x20), shl(5, k))
                    mstore(c, add(mload(c), 1))
                }
                winners := shr(1, winners)
            }
            for { let k := 0 } losers { k := add(k, 1) } {
                if and(losers, 1) {
                    let f := add(add(failed, 0x20), shl(5, k))
                    mstore(f, add(mload(f), 1))
                }
                losers := shr(1, losers)
            }
        }
    }

    /// @dev Splits `price` among `winnerCount` winners: each gets an equal part of the price less the fee;
    /// the fee and the rounding dust go to the treasury, so the parts always add up to `price`.
    function _split(uint256 price, uint256 feeBps, uint256 winnerCount)
        internal
        pure
        returns (uint256 share, uint256 fee)
    {
        share = price * (BPS - feeBps) / BPS / winnerCount;
        fee = price - share * winnerCount;
    }

    /// @dev Takes the challenged jobs' parts out of a batch being finalized: their challenge pays them.
    function _withholdChallenged(uint256 batchId, ProviderOutcome[] memory providers, uint256 fee)
        internal
        view
        returns (uint256)
    {
        uint256[] storage challenged = _batchChallengedJobs[batchId];
        for (uint256 j; j < challenged.length; ++j) {
            Challenge storage c = _challenges[challenged[j]];
            uint256 winners = c.winnersMask;
            uint256 losers = c.losersMask;
            (uint256 share, uint256 jobFee) = _split(c.price, c.feeBps, Bits.popcount(winners));
            fee -= jobFee;
            for (uint256 k; winners != 0; ++k) {
                if (winners & 1 == 1) {
                    providers[k].payout -= share;
                    providers[k].completed -= 1;
                }
                winners >>= 1;
            }
            for (uint256 k; losers != 0; ++k) {
                if (losers & 1 == 1) providers[k].failed -= 1;
                losers >>= 1;
            }
        }
        return fee;
    }

    /// @dev Marks the jobs of a finalized batch, except those whose challenge decides them.
    function _markFinalized(uint256[] calldata jobIds, bool anyChallenged) internal {
        PhaseCursor memory cursor = PhaseCursor({wordIndex: NO_WORD, word: 0});
        for (uint256 i; i < jobIds.length; ++i) {
            uint256 jobId = jobIds[i];
            if (anyChallenged && _challenges[jobId].status != ChallengeStatus.None) continue;
            _movePhase(cursor, jobId, PHASE_FINALIZED);
        }
        _flush(cursor);
    }

    /// @dev Ends a challenge that did not succeed: the job is paid as settled. The bond goes to the
    /// winners when the committee rejected the challenge, back to the challenger when it expired.
    function _closeChallenge(uint256 jobId, Challenge storage c, ChallengeStatus status) internal {
        // Effects
        c.status = status;
        _setPhase(jobId, PHASE_FINALIZED);
        address[] memory winners = _challengeParties[jobId].winners;
        address[] memory losers = _challengeParties[jobId].losers;
        address token = c.token;
        address treasury = c.treasury;
        (uint256 share, uint256 fee) = _split(c.price, c.feeBps, winners.length);
        for (uint256 i; i < winners.length; ++i) {
            balanceOf[winners[i]][token] += share;
        }
        if (fee != 0) balanceOf[treasury][token] += fee;
        uint256 bond = c.bond;
        if (status == ChallengeStatus.Rejected) {
            uint256 bondShare = bond / winners.length;
            for (uint256 i; i < winners.length; ++i) {
                balanceOf[winners[i]][address(0)] += bondShare;
            }
            uint256 dust = bond - bondShare * winners.length;
            if (dust != 0) balanceOf[treasury][address(0)] += dust;
        } else {
            balanceOf[c.challenger][address(0)] += bond;
        }
        emit ChallengeResolved(jobId, status);

        // Interactions (the registry only)
        for (uint256 i; i < winners.length; ++i) {
            registry.recordOutcomes(winners[i], 1, 0);
        }
        for (uint256 i; i < losers.length; ++i) {
            registry.recordOutcomes(losers[i], 0, 1);
            _slash(losers[i], c.slashPerFailure, treasury);
        }
    }

    /// @dev Slashes `provider` through the registry, which sends the ETH here, and credits `beneficiary`.
    function _slash(address provider, uint256 amount, address beneficiary) internal {
        if (amount == 0) return;
        uint256 slashed = registry.slash(provider, amount, beneficiary);
        if (slashed != 0) balanceOf[beneficiary][address(0)] += slashed;
    }

    /// @dev Pulls exactly `amount` of `token` from the caller; fee-on-transfer tokens revert.
    function _pullExactly(IERC20 token, uint256 amount) internal {
        if (address(token).code.length == 0) revert JobEscrow_NotAToken(address(token));
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert JobEscrow_TransferAmountMismatch(amount, received);
    }

    /// @dev `keccak256(abi.encode(outcome))` of `finalize`'s last argument without decoding it: its
    /// canonical encoding is the calldata from the tuple on, for as many words as the arrays' lengths make
    /// (9 head words, then each array's length word and elements: 4 words per provider, 2 per refund, 1 per
    /// job id). Bytes after it (a forwarder's appended sender, say) are not hashed. Any other encoding
    /// hashes differently and is refused: the hashed words include the head's offsets, so what matches
    /// decodes to exactly the committed outcome.
    function _calldataOutcomeHash(BatchOutcome calldata outcome) internal pure returns (bytes32 h) {
        uint256 len = 0x20 * (12 + 4 * outcome.providers.length + 2 * outcome.refunds.length + outcome.jobIds.length);
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, 0x20)
            calldatacopy(add(ptr, 0x20), outcome, len)
            h := keccak256(ptr, add(len, 0x20))
        }
    }

    /// @dev The record must hash to the stored commitment. `ComputeJob` is static, so its ABI encoding is
    /// the 7 words in calldata; hashing them in place saves a copy, and only the canonical encoding
    /// (the one `createComputeJob` committed to) can match.
    function _checkJobRecord(uint256 jobId, ComputeJob calldata job) internal view {
        bytes32 stored = _jobCommitments[jobId];
        if (stored == 0) revert JobEscrow_UnknownJob(jobId);
        bytes32 h;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, job, 0xe0)
            h := keccak256(ptr, 0xe0)
        }
        if (h != stored) revert JobEscrow_JobRecordMismatch(jobId);
    }

    function _pendingChallenge(uint256 jobId) internal view returns (Challenge storage c) {
        c = _challenges[jobId];
        if (c.status != ChallengeStatus.Pending) revert JobEscrow_InvalidChallengeStatus(jobId, c.status);
    }

    function _phaseOf(uint256 jobId) internal view returns (uint256) {
        return (_jobPhases[jobId >> 7] >> ((jobId & 127) << 1)) & 3;
    }

    function _setPhase(uint256 jobId, uint256 phase) internal {
        uint256 shift = (jobId & 127) << 1;
        uint256 word = _jobPhases[jobId >> 7];
        _jobPhases[jobId >> 7] = (word & ~(3 << shift)) | (phase << shift);
    }

    function _statusOf(uint256 jobId, uint256 phase) internal view returns (ComputeJobStatus) {
        if (phase == PHASE_OPEN) return ComputeJobStatus.Open;
        if (phase == PHASE_RECLAIMED) return ComputeJobStatus.Reclaimed;
        ChallengeStatus cs = _challenges[jobId].status;
        if (phase == PHASE_SETTLED) return cs == ChallengeStatus.Pending ? ComputeJobStatus.Challenged : ComputeJobStatus.Settled;
        return cs == ChallengeStatus.Upheld ? ComputeJobStatus.Refunded : ComputeJobStatus.Finalized;
    }

    function _setParams(EscrowParams memory p) internal {
        if (p.treasury == address(0)) revert JobEscrow_ZeroAddress("treasury");
        if (p.feeBps > MAX_FEE_BPS) revert JobEscrow_InvalidParams("feeBps");
        if (p.challengeWindow > MAX_WINDOW || p.challengeWindow < minChallengeWindow) {
            revert JobEscrow_InvalidParams("challengeWindow");
        }
        if (p.challengeBond < minChallengeBond) revert JobEscrow_InvalidParams("challengeBond");
        if (p.minoritySlash > MAX_MINORITY_SLASH) revert JobEscrow_InvalidParams("minoritySlash");
        if (p.challengeResolutionPeriod == 0 || p.challengeResolutionPeriod > MAX_WINDOW) {
            revert JobEscrow_InvalidParams("challengeResolutionPeriod");
        }
        // Stake asked back when a job is settled must stay slashable until any challenge is resolved.
        if (uint256(p.challengeWindow) + p.challengeResolutionPeriod >= registry.unbondingDelay()) {
            revert JobEscrow_InvalidParams("challengeWindow");
        }
        _params = p;
        emit ParamsSet(p);
    }
}

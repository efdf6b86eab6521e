// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IJobEscrow} from "./interfaces/IJobEscrow.sol";
import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";

/// @title ProviderRegistry
/// @notice Stake and reputation of QOR providers. See {IProviderRegistry}.
contract ProviderRegistry is IProviderRegistry, Ownable2Step, ReentrancyGuardTransient {
    /// @notice The longest unbonding delay the owner may set.
    uint64 public constant MAX_UNBONDING_DELAY = 90 days;
    /// @notice The longest region tag.
    uint256 public constant MAX_REGION_LENGTH = 64;

    /// @inheritdoc IProviderRegistry
    uint256 public minStake;
    /// @inheritdoc IProviderRegistry
    uint64 public unbondingDelay;
    /// @inheritdoc IProviderRegistry
    address public escrow;
    /// @inheritdoc IProviderRegistry
    address public storageMarket;

    mapping(address provider => Provider) internal _providers;

    /// @dev What holds a provider's stake for open obligations (one slot each).
    struct StakeHold {
        uint64 until;
        uint32 openDeals;
        uint128 collateral;
    }

    mapping(address provider => StakeHold) internal _holds;

    constructor(address initialOwner, uint256 minStake_, uint64 unbondingDelay_) Ownable(initialOwner) {
        _setMinStake(minStake_);
        _setUnbondingDelay(unbondingDelay_);
    }

    modifier onlyEscrow() {
        if (msg.sender != escrow) revert ProviderRegistry_OnlyEscrow(msg.sender);
        _;
    }

    modifier onlyStorageMarket() {
        if (msg.sender != storageMarket) revert ProviderRegistry_OnlyEscrow(msg.sender);
        _;
    }

    /// @dev The escrow or the storage market: the two contracts whose obligations stake backs.
    modifier onlyMarket() {
        if (msg.sender != escrow && msg.sender != storageMarket) revert ProviderRegistry_OnlyEscrow(msg.sender);
        _;
    }

    /*//////////////////////////////////////////////////////////////
                            PROVIDER FUNCTIONS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function register(ProviderMetadata calldata metadata) external payable {
        // Checks
        Provider storage p = _providers[msg.sender];
        if (p.registered) revert ProviderRegistry_AlreadyRegistered(msg.sender);
        if (msg.value < minStake) revert ProviderRegistry_StakeBelowMinimum(msg.value, minStake);
        _checkMetadata(metadata);

        // Effects
        p.registered = true;
        p.stake = msg.value;
        p.metadata = metadata;
        emit ProviderRegistered(msg.sender, msg.value, metadata);
    }

    /// @inheritdoc IProviderRegistry
    function updateMetadata(ProviderMetadata calldata metadata) external {
        Provider storage p = _registered(msg.sender);
        _checkMetadata(metadata);
        p.metadata = metadata;
        emit ProviderMetadataUpdated(msg.sender, metadata);
    }

    /// @inheritdoc IProviderRegistry
    function addStake() external payable {
        Provider storage p = _registered(msg.sender);
        if (msg.value == 0) revert ProviderRegistry_ZeroAmount();
        p.stake += msg.value;
        emit StakeAdded(msg.sender, msg.value, p.stake);
    }

    /// @inheritdoc IProviderRegistry
    function requestStakeWithdrawal(uint256 amount) external {
        // Checks
        Provider storage p = _registered(msg.sender);
        if (amount == 0) revert ProviderRegistry_ZeroAmount();
        uint256 stake = p.stake;
        if (amount > stake) revert ProviderRegistry_InsufficientStake(amount, stake);
        uint256 remaining = stake - amount;
        // Either leave for good or stay above the minimum: a provider below it is inactive but would
        // still look staked to a buyer reading `stake`.
        if (remaining != 0 && remaining < minStake) revert ProviderRegistry_StakeBelowMinimum(remaining, minStake);

        // Effects
        uint64 endsAt = uint64(block.timestamp) + unbondingDelay;
        p.stake = remaining;
        p.unbonding += amount;
        p.unbondingEndsAt = endsAt;
        emit StakeWithdrawalRequested(msg.sender, amount, endsAt);
    }

    /// @inheritdoc IProviderRegistry
    function withdrawStake() external nonReentrant {
        // Checks
        Provider storage p = _registered(msg.sender);
        uint256 amount = p.unbonding;
        if (amount == 0) revert ProviderRegistry_ZeroAmount();
        if (block.timestamp < p.unbondingEndsAt) {
            revert ProviderRegistry_StillUnbonding(p.unbondingEndsAt, uint64(block.timestamp));
        }
        StakeHold memory hold = _holds[msg.sender];
        if (block.timestamp < hold.until || hold.openDeals != 0) {
            revert ProviderRegistry_StakeLocked(hold.until, hold.openDeals);
        }

        // Effects
        p.unbonding = 0;
        emit StakeWithdrawn(msg.sender, amount);

        // Interactions
        _sendEther(msg.sender, amount);
    }

    /*//////////////////////////////////////////////////////////////
                             ESCROW FUNCTIONS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function slash(address provider, uint256 amount, address beneficiary)
        external
        onlyMarket
        nonReentrant
        returns (uint256 slashed)
    {
        // Checks
        Provider storage p = _providers[provider];
        if (amount == 0) return 0;

        // Effects: stake first, then what is unbonding (still answerable for past work).
        uint256 stake = p.stake;
        uint256 fromStake = amount < stake ? amount : stake;
        uint256 rest = amount - fromStake;
        uint256 unbonding = p.unbonding;
        uint256 fromUnbonding = rest < unbonding ? rest : unbonding;
        slashed = fromStake + fromUnbonding;
        if (slashed == 0) return 0;
        p.stake = stake - fromStake;
        p.unbonding = unbonding - fromUnbonding;
        unchecked {
            p.timesSlashed += 1;
        }
        emit ProviderSlashed(provider, beneficiary, slashed);

        // Interactions: the escrow credits the beneficiary.
        _sendEther(msg.sender, slashed);
    }

    /// @inheritdoc IProviderRegistry
    function recordOutcomes(address provider, uint64 completed, uint64 failed) external onlyMarket {
        Provider storage p = _providers[provider];
        p.jobsCompleted += completed;
        p.jobsFailed += failed;
        emit OutcomesRecorded(provider, completed, failed);
    }

    /// @inheritdoc IProviderRegistry
    function lockStake(address provider, uint64 until) external onlyEscrow {
        _registered(provider);
        StakeHold storage hold = _holds[provider];
        if (until <= hold.until) return;
        hold.until = until;
        emit StakeLocked(provider, until, hold.openDeals);
    }

    /// @inheritdoc IProviderRegistry
    function openDeal(address provider, uint256 collateral) external onlyStorageMarket {
        uint256 stake = _registered(provider).stake;
        StakeHold storage hold = _holds[provider];
        uint256 reserved = hold.collateral;
        // Slashes for other work can take stake that deals reserved: what is free is what is left.
        uint256 free = stake > reserved ? stake - reserved : 0;
        if (collateral > free) revert ProviderRegistry_InsufficientCollateral(provider, free, collateral);
        uint32 open = hold.openDeals + 1;
        hold.openDeals = open;
        hold.collateral = uint128(reserved + collateral);
        emit StakeLocked(provider, hold.until, open);
        emit CollateralReserved(provider, reserved + collateral);
    }

    /// @inheritdoc IProviderRegistry
    function releaseCollateral(address provider, uint256 amount) external onlyStorageMarket {
        _release(_holds[provider], provider, amount);
    }

    /// @inheritdoc IProviderRegistry
    function closeDeal(address provider, uint256 collateral) external onlyStorageMarket {
        StakeHold storage hold = _holds[provider];
        uint32 open = hold.openDeals - 1;
        hold.openDeals = open;
        emit StakeLocked(provider, hold.until, open);
        _release(hold, provider, collateral);
    }

    /*//////////////////////////////////////////////////////////////
                                 ADMIN
    //////////////////////////////////////////////////////////////*/

    /// @notice Binds the registry to its escrow, once. Only the owner.
    function setEscrow(address escrow_) external onlyOwner {
        if (escrow != address(0)) revert ProviderRegistry_EscrowAlreadySet(escrow);
        if (escrow_ == address(0)) revert ProviderRegistry_ZeroAddress("escrow");
        escrow = escrow_;
        _checkUnbondingDelay(unbondingDelay);
        emit EscrowSet(escrow_);
    }

    /// @notice Binds the registry to its storage market, once. Only the owner.
    function setStorageMarket(address storageMarket_) external onlyOwner {
        if (storageMarket != address(0)) revert ProviderRegistry_StorageMarketAlreadySet(storageMarket);
        if (storageMarket_ == address(0)) revert ProviderRegistry_ZeroAddress("storageMarket");
        storageMarket = storageMarket_;
        emit StorageMarketSet(storageMarket_);
    }

    /// @notice Disabled: parameters change only through the owner (the timelock), which never goes away.
    function renounceOwnership() public view override onlyOwner {
        revert ProviderRegistry_OwnerRequired();
    }

    /// @notice Sets the minimum stake; providers below it become inactive. Only the owner.
    function setMinStake(uint256 minStake_) external onlyOwner {
        _setMinStake(minStake_);
    }

    /// @notice Sets the unbonding delay for requests made afterwards. Only the owner.
    function setUnbondingDelay(uint64 unbondingDelay_) external onlyOwner {
        _setUnbondingDelay(unbondingDelay_);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function getProvider(address provider) external view returns (Provider memory) {
        return _providers[provider];
    }

    /// @inheritdoc IProviderRegistry
    function stakeLock(address provider) external view returns (uint64 until, uint32 openDeals, uint256 collateral) {
        StakeHold memory hold = _holds[provider];
        return (hold.until, hold.openDeals, hold.collateral);
    }

    /// @inheritdoc IProviderRegistry
    function isActive(address provider) external view returns (bool) {
        Provider storage p = _providers[provider];
        return p.registered && p.stake >= minStake && p.stake != 0;
    }

    /// @inheritdoc IProviderRegistry
    function isRegistered(address provider) external view returns (bool) {
        return _providers[provider].registered;
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    function _registered(address provider) internal view returns (Provider storage p) {
        p = _providers[provider];
        if (!p.registered) revert ProviderRegistry_NotRegistered(provider);
    }

    function _release(StakeHold storage hold, address provider, uint256 amount) internal {
        if (amount == 0) return;
        uint256 reserved = hold.collateral;
        uint256 left = amount < reserved ? reserved - amount : 0;
        hold.collateral = uint128(left);
        emit CollateralReserved(provider, left);
    }

    function _checkMetadata(ProviderMetadata calldata metadata) internal pure {
        if (metadata.capacity == 0) revert ProviderRegistry_InvalidMetadata("capacity");
        if (bytes(metadata.region).length > MAX_REGION_LENGTH) revert ProviderRegistry_InvalidMetadata("region");
    }

    function _setMinStake(uint256 minStake_) internal {
        if (minStake_ == 0) revert ProviderRegistry_ZeroAmount();
        minStake = minStake_;
        emit MinStakeSet(minStake_);
    }

    function _setUnbondingDelay(uint64 delay) internal {
        if (delay > MAX_UNBONDING_DELAY) revert ProviderRegistry_UnbondingDelayTooLong(delay, MAX_UNBONDING_DELAY);
        _checkUnbondingDelay(delay);
        unbondingDelay = delay;
        emit UnbondingDelaySet(delay);
    }

    /// @dev Once bound to an escrow, the unbonding delay outlasts its challenge window plus resolution
    /// period (the escrow checks the same when its parameters change).
    function _checkUnbondingDelay(uint64 delay) internal view {
        if (escrow == address(0)) return;
        IJobEscrow.EscrowParams memory p = IJobEscrow(escrow).params();
        uint64 minDelay = uint64(p.challengeWindow) + p.challengeResolutionPeriod + 1;
        if (delay < minDelay) revert ProviderRegistry_UnbondingDelayTooShort(delay, minDelay);
    }

    function _sendEther(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert ProviderRegistry_TransferFailed(to, amount);
    }
}

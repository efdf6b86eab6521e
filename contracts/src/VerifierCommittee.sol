// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IVerifierCommittee} from "./interfaces/IVerifierCommittee.sol";

/// @title VerifierCommittee
/// @notice The owner-managed M-of-N verifier committee. See {IVerifierCommittee}.
contract VerifierCommittee is IVerifierCommittee, Ownable2Step {
    using EnumerableSet for EnumerableSet.AddressSet;

    EnumerableSet.AddressSet internal _members;
    /// @inheritdoc IVerifierCommittee
    uint256 public threshold;

    constructor(address initialOwner, address[] memory initialMembers, uint256 threshold_) Ownable(initialOwner) {
        for (uint256 i; i < initialMembers.length; ++i) {
            _addMember(initialMembers[i]);
        }
        _setThreshold(threshold_);
    }

    /// @inheritdoc IVerifierCommittee
    function addMember(address member) external onlyOwner {
        _addMember(member);
    }

    /// @inheritdoc IVerifierCommittee
    function removeMember(address member) external onlyOwner {
        if (!_members.remove(member)) revert VerifierCommittee_NotMember(member);
        if (threshold > _members.length()) revert VerifierCommittee_InvalidThreshold(threshold, _members.length());
        emit MemberRemoved(member);
    }

    /// @inheritdoc IVerifierCommittee
    function setThreshold(uint256 threshold_) external onlyOwner {
        _setThreshold(threshold_);
    }

    /// @notice Disabled: membership changes only through the owner (the timelock), which never goes away.
    function renounceOwnership() public view override onlyOwner {
        revert VerifierCommittee_OwnerRequired();
    }

    /// @inheritdoc IVerifierCommittee
    function checkSignatures(bytes32 digest, bytes[] calldata signatures) external view {
        uint256 required = threshold;
        if (signatures.length < required) revert VerifierCommittee_NotEnoughSignatures(signatures.length, required);
        address previous;
        for (uint256 i; i < signatures.length; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert VerifierCommittee_InvalidSignature(i);
            if (signer <= previous) revert VerifierCommittee_SignersNotAscending(i, signer, previous);
            if (!_members.contains(signer)) revert VerifierCommittee_SignerNotMember(i, signer);
            previous = signer;
        }
    }

    /// @inheritdoc IVerifierCommittee
    function isMember(address account) external view returns (bool) {
        return _members.contains(account);
    }

    /// @inheritdoc IVerifierCommittee
    function members() external view returns (address[] memory) {
        return _members.values();
    }

    function _addMember(address member) internal {
        if (member == address(0)) revert VerifierCommittee_ZeroAddress();
        if (!_members.add(member)) revert VerifierCommittee_AlreadyMember(member);
        emit MemberAdded(member);
    }

    function _setThreshold(uint256 threshold_) internal {
        uint256 count = _members.length();
        if (threshold_ == 0 || threshold_ > count) revert VerifierCommittee_InvalidThreshold(threshold_, count);
        threshold = threshold_;
        emit ThresholdSet(threshold_);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IVerifierCommittee
/// @notice The M-of-N committee of verifiers whose signatures settle compute jobs, attest storage periods
/// and resolve challenges. The escrow computes an EIP-712 digest under its own domain (chain id and
/// escrow address) and asks the committee whether enough distinct members signed it.
/// @dev Self-contained (no imports) so the Rust side can bind to it with alloy's `sol!`.
interface IVerifierCommittee {
    /// @notice `member` joined the committee.
    event MemberAdded(address indexed member);
    /// @notice `member` left the committee.
    event MemberRemoved(address indexed member);
    /// @notice The number of signatures required is now `threshold`.
    event ThresholdSet(uint256 threshold);

    /// @notice `account` is already a member.
    error VerifierCommittee_AlreadyMember(address account);
    /// @notice `account` is not a member.
    error VerifierCommittee_NotMember(address account);
    /// @notice `threshold` is not within 1..=`members`.
    error VerifierCommittee_InvalidThreshold(uint256 threshold, uint256 members);
    /// @notice `got` valid signatures were given, `required` are needed.
    error VerifierCommittee_NotEnoughSignatures(uint256 got, uint256 required);
    /// @notice Signature `index` does not recover to a member (it recovered `signer`).
    error VerifierCommittee_SignerNotMember(uint256 index, address signer);
    /// @notice Signature `index` is malformed.
    error VerifierCommittee_InvalidSignature(uint256 index);
    /// @notice Signers must be strictly ascending; signature `index` recovered `signer` after `previous`.
    error VerifierCommittee_SignersNotAscending(uint256 index, address signer, address previous);
    /// @notice A zero address was given.
    error VerifierCommittee_ZeroAddress();
    /// @notice The committee always has an owner (its timelock): it cannot be renounced.
    error VerifierCommittee_OwnerRequired();

    /// @notice Adds `member`. Only the owner. Requirements: not a member, not zero.
    function addMember(address member) external;

    /// @notice Removes `member`. Only the owner. Requirements: a member; the threshold still fits.
    function removeMember(address member) external;

    /// @notice Sets the number of signatures required. Only the owner. Requirements: 1..=members.
    function setThreshold(uint256 threshold) external;

    /// @notice Reverts unless at least `threshold()` of `signatures` are by distinct members over `digest`.
    /// @dev Each signature is 65 bytes `r ‖ s ‖ v` (low-s). Signers must be in strictly ascending
    /// address order, which rules out counting one member twice.
    function checkSignatures(bytes32 digest, bytes[] calldata signatures) external view;

    /// @notice True when `account` is a member.
    function isMember(address account) external view returns (bool);

    /// @notice Members, in no particular order.
    function members() external view returns (address[] memory);

    /// @notice Signatures required.
    function threshold() external view returns (uint256);
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title StorageProof
/// @notice The keccak Merkle tree QOR stores files under, and the proof that one chunk is in it.
/// @dev Files are split into `CHUNK_SIZE`-byte chunks, the last one zero padded. Leaves are
/// `keccak256(0x00 ‖ chunk)` and nodes `keccak256(0x01 ‖ left ‖ right)`, so a leaf can never pass for a
/// node. Pairs are index-ordered (left is the even position), which is what makes a proof bind the leaf
/// index: with OpenZeppelin-style sorted pairs a provider could answer a different chunk than the one
/// asked. A level with an odd number of nodes promotes its last node unchanged (as rs_merkle does), so a
/// proof has no sibling at that level. The Rust `qor-protocol` crate builds the same tree; both sides
/// check the vectors in `test/data/merkle.json`.
library StorageProof {
    /// @notice Size of a chunk in bytes.
    uint256 internal constant CHUNK_SIZE = 1024;

    /// @notice Number of chunks of a file of `size` bytes.
    function chunkCount(uint256 size) internal pure returns (uint256) {
        return (size + CHUNK_SIZE - 1) / CHUNK_SIZE;
    }

    /// @notice `keccak256(0x00 ‖ chunk)`.
    function leafHash(bytes calldata chunk) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0x00)
            calldatacopy(add(ptr, 1), chunk.offset, chunk.length)
            h := keccak256(ptr, add(chunk.length, 1))
        }
    }

    /// @notice `keccak256(0x01 ‖ left ‖ right)`.
    function nodeHash(bytes32 left, bytes32 right) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0x01)
            mstore(add(ptr, 1), left)
            mstore(add(ptr, 33), right)
            h := keccak256(ptr, 65)
        }
    }

    /// @notice True when `path` (siblings leaf to root, promoted levels skipped) proves that `leaf` is at
    /// `index` of a tree of `leafCount` leaves with root `root`.
    function verify(bytes32 root, uint256 leafCount, uint256 index, bytes32 leaf, bytes32[] calldata path)
        internal
        pure
        returns (bool ok)
    {
        if (index >= leafCount) return false;
        // The walk runs once per tree level (20 for a 1 GiB file) on every on-chain proof.
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0x01)
            let h := leaf
            let p := path.offset
            let end := add(p, shl(5, path.length))
            let width := leafCount
            ok := 1
            for {} gt(width, 1) {} {
                switch and(index, 1)
                case 1 {
                    if eq(p, end) {
                        ok := 0
                        break
                    }
                    mstore(add(ptr, 1), calldataload(p))
                    mstore(add(ptr, 33), h)
                    h := keccak256(ptr, 65)
                    p := add(p, 0x20)
                }
                default {
                    // The last node of an odd level has no sibling and is promoted unchanged.
                    if lt(add(index, 1), width) {
                        if eq(p, end) {
                            ok := 0
                            break
                        }
                        mstore(add(ptr, 1), h)
                        mstore(add(ptr, 33), calldataload(p))
                        h := keccak256(ptr, 65)
                        p := add(p, 0x20)
                    }
                }
                index := shr(1, index)
                width := shr(1, add(width, 1))
            }
            ok := and(ok, and(eq(p, end), eq(h, root)))
        }
    }
}

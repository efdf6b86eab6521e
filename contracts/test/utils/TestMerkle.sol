// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Test-side storage Merkle tree, written independently of `StorageProof`: zero-padded 1 KiB
/// chunks, leaves `keccak256(0x00 ‖ chunk)`, nodes `keccak256(0x01 ‖ left ‖ right)`, the last node of an
/// odd level promoted unchanged.
library TestMerkle {
    uint256 internal constant CHUNK = 1024;

    function chunksOf(bytes memory data) internal pure returns (bytes[] memory chunks) {
        uint256 n = (data.length + CHUNK - 1) / CHUNK;
        chunks = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            bytes memory c = new bytes(CHUNK);
            for (uint256 j; j < CHUNK && i * CHUNK + j < data.length; ++j) {
                c[j] = data[i * CHUNK + j];
            }
            chunks[i] = c;
        }
    }

    function leafOf(bytes memory chunk) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x00), chunk));
    }

    function nodeOf(bytes32 l, bytes32 r) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(bytes1(0x01), l, r));
    }

    function leavesOf(bytes[] memory chunks) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](chunks.length);
        for (uint256 i; i < chunks.length; ++i) {
            leaves[i] = leafOf(chunks[i]);
        }
    }

    /// @dev Root and the sibling path of `index` (promoted levels skipped).
    function merkle(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32 root, bytes32[] memory path) {
        bytes32[] memory level = leaves;
        bytes32[] memory tmp = new bytes32[](64);
        uint256 used;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) tmp[used++] = level[sibling];
            bytes32[] memory next = new bytes32[]((level.length + 1) / 2);
            for (uint256 i; i < next.length; ++i) {
                next[i] = 2 * i + 1 < level.length ? nodeOf(level[2 * i], level[2 * i + 1]) : level[2 * i];
            }
            level = next;
            index >>= 1;
        }
        root = level[0];
        path = new bytes32[](used);
        for (uint256 i; i < used; ++i) {
            path[i] = tmp[i];
        }
    }

    /// @dev A pseudo-random file of `size` bytes.
    function fileOf(uint256 size, uint256 seed) internal pure returns (bytes memory data) {
        data = new bytes(size);
        for (uint256 i; i < size; i += 32) {
            bytes32 word = keccak256(abi.encode(seed, i));
            for (uint256 j; j < 32 && i + j < size; ++j) {
                data[i + j] = word[j];
            }
        }
    }
}

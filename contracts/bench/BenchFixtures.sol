// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Inputs shared by the gas benchmarks (forge snapshots and the anvil script).
library BenchFixtures {
    /// @notice A 1 GiB file of 2^20 identical 1 KiB chunks: its root, and the one path that proves every
    /// chunk, whichever the chain challenges. Gas does not depend on the chunk's contents beyond calldata,
    /// and non-zero bytes make the calldata realistic.
    function identicalGiB(uint256 k) internal pure returns (bytes[] memory chunks, bytes32[][] memory paths, bytes32 root) {
        (bytes memory chunk, bytes32[] memory path, bytes32 r) = identicalGiB();
        chunks = new bytes[](k);
        paths = new bytes32[][](k);
        for (uint256 j; j < k; ++j) {
            (chunks[j], paths[j]) = (chunk, path);
        }
        root = r;
    }

    function identicalGiB() internal pure returns (bytes memory chunk, bytes32[] memory path, bytes32 root) {
        chunk = new bytes(1024);
        for (uint256 i; i < 1024; ++i) {
            chunk[i] = 0xab;
        }
        root = keccak256(abi.encodePacked(bytes1(0x00), chunk));
        path = new bytes32[](20);
        for (uint256 level; level < 20; ++level) {
            path[level] = root;
            root = keccak256(abi.encodePacked(bytes1(0x01), root, root));
        }
    }
}

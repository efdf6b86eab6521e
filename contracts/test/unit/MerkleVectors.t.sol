// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {StorageProofHarness} from "../utils/StorageProofHarness.sol";
import {TestMerkle} from "../utils/TestMerkle.sol";

/// @notice The vectors in `test/data/merkle.json` are written by the Rust `qor-protocol` crate (rs_merkle).
/// The contract's `StorageProof` must accept every Rust proof, and the Solidity test tree must produce
/// every Rust root, byte for byte.
contract MerkleVectors_Unit is Test {
    StorageProofHarness internal harness;
    string internal json;

    function setUp() public {
        harness = new StorageProofHarness();
        json = vm.readFile(string.concat(vm.projectRoot(), "/test/data/merkle.json"));
    }

    function _file(uint256 i) internal pure returns (string memory) {
        return string.concat(".files[", vm.toString(i), "]");
    }

    function test_NodeHashMatchesRust() public view {
        bytes32 left = vm.parseJsonBytes32(json, ".node.left");
        bytes32 right = vm.parseJsonBytes32(json, ".node.right");
        assertEq(TestMerkle.nodeOf(left, right), vm.parseJsonBytes32(json, ".node.hash"));
    }

    function test_RootsMatchRust() public view {
        uint256 files = vm.parseJsonUint(json, ".fileCount");
        assertEq(files, 10);
        for (uint256 i; i < files; ++i) {
            string memory f = _file(i);
            bytes memory data = vm.parseJsonBytes(json, string.concat(f, ".data"));
            assertEq(data.length, vm.parseJsonUint(json, string.concat(f, ".size")), "size");
            assertEq(data, TestMerkle.fileOf(data.length, vm.parseJsonUint(json, string.concat(f, ".seed"))), "data");
            bytes[] memory chunks = TestMerkle.chunksOf(data);
            assertEq(chunks.length, vm.parseJsonUint(json, string.concat(f, ".chunkCount")), "chunk count");
            (bytes32 root,) = TestMerkle.merkle(TestMerkle.leavesOf(chunks), 0);
            assertEq(root, vm.parseJsonBytes32(json, string.concat(f, ".root")), "root");
        }
    }

    function test_ContractAcceptsEveryRustProof() public view {
        uint256 files = vm.parseJsonUint(json, ".fileCount");
        uint256 checked;
        for (uint256 i; i < files; ++i) {
            string memory f = _file(i);
            bytes[] memory chunks = TestMerkle.chunksOf(vm.parseJsonBytes(json, string.concat(f, ".data")));
            bytes32 root = vm.parseJsonBytes32(json, string.concat(f, ".root"));
            uint256 proofs = vm.parseJsonUint(json, string.concat(f, ".proofCount"));
            for (uint256 j; j < proofs; ++j) {
                string memory p = string.concat(f, ".proofs[", vm.toString(j), "]");
                uint256 index = vm.parseJsonUint(json, string.concat(p, ".index"));
                bytes32[] memory path = vm.parseJsonBytes32Array(json, string.concat(p, ".path"));
                assertEq(TestMerkle.leafOf(chunks[index]), vm.parseJsonBytes32(json, string.concat(p, ".leaf")));
                assertTrue(harness.verify(root, chunks.length, index, chunks[index], path), "Rust proof rejected");
                if (chunks.length > 1) {
                    uint256 other = (index + 1) % chunks.length;
                    assertFalse(harness.verify(root, chunks.length, other, chunks[index], path), "moved proof accepted");
                }
                ++checked;
            }
        }
        assertGt(checked, 30);
    }
}

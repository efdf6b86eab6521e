// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Base} from "../utils/Base.t.sol";
import {StorageProofHarness} from "../utils/StorageProofHarness.sol";
import {TestMerkle} from "../utils/TestMerkle.sol";
import {IStorageMarket} from "../../src/interfaces/IStorageMarket.sol";
import {IProviderRegistry} from "../../src/interfaces/IProviderRegistry.sol";

contract StorageProof_Fuzz is Base {
    StorageProofHarness internal harness;

    function setUp() public override {
        super.setUp();
        harness = new StorageProofHarness();
    }

    function _tree(uint256 leafCount, uint256 seed) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](leafCount);
        for (uint256 i; i < leafCount; ++i) {
            leaves[i] = keccak256(abi.encode(seed, i));
        }
    }

    /// Every leaf of every tree shape proves, at its own index only.
    function testFuzz_EveryLeafProvesAtItsIndexOnly(uint256 leafCount, uint256 index, uint256 other, uint256 seed)
        public
        view
    {
        leafCount = bound(leafCount, 1, 300);
        index = bound(index, 0, leafCount - 1);
        other = bound(other, 0, leafCount - 1);
        bytes32[] memory leaves = _tree(leafCount, seed);
        (bytes32 root, bytes32[] memory path) = TestMerkle.merkle(leaves, index);
        assertTrue(harness.verifyLeaf(root, leafCount, index, leaves[index], path));
        if (other != index) assertFalse(harness.verifyLeaf(root, leafCount, other, leaves[index], path));
        assertFalse(harness.verifyLeaf(root, leafCount, leafCount, leaves[index], path), "index out of range");
    }

    function testFuzz_AnyAlteredSiblingFails(uint256 leafCount, uint256 index, uint256 which, bytes32 noise)
        public
        view
    {
        leafCount = bound(leafCount, 2, 300);
        index = bound(index, 0, leafCount - 1);
        vm.assume(noise != 0);
        bytes32[] memory leaves = _tree(leafCount, 1);
        (bytes32 root, bytes32[] memory path) = TestMerkle.merkle(leaves, index);
        which = bound(which, 0, path.length - 1);
        path[which] ^= noise;
        assertFalse(harness.verifyLeaf(root, leafCount, index, leaves[index], path));
    }

    /// A leaf hash cannot pass for a node: the two-child preimage of a node is not a valid chunk proof.
    function testFuzz_NodeIsNotALeaf(uint256 seed) public view {
        bytes32[] memory leaves = _tree(4, seed);
        (bytes32 root,) = TestMerkle.merkle(leaves, 0);
        bytes memory fake = abi.encodePacked(leaves[0], leaves[1]);
        bytes32[] memory path = new bytes32[](1);
        path[0] = TestMerkle.nodeOf(leaves[2], leaves[3]);
        assertFalse(harness.verify(root, 2, 0, fake, path));
    }

    function testFuzz_ChunkProofs(uint256 size, uint256 index, uint256 seed) public view {
        size = bound(size, 1, 20 * CHUNK);
        bytes[] memory chunks = chunksOf(fileOf(size, seed));
        index = bound(index, 0, chunks.length - 1);
        (bytes32 root, bytes32[] memory path) = merkle(leavesOf(chunks), index);
        assertTrue(harness.verify(root, chunks.length, index, chunks[index], path));
        bytes memory tampered = chunks[index];
        tampered[seed % CHUNK] = bytes1(uint8(tampered[seed % CHUNK]) ^ 0x80);
        assertFalse(harness.verify(root, chunks.length, index, tampered, path));
    }
}

contract StorageDeal_Fuzz is Base {
    /// Whatever the provider proves, every wei of the deal ends credited to the provider, the treasury or
    /// the buyer, and the provider loses exactly the slash for each missed period: the collateral it
    /// reserved covers every one (10 periods × 0.2 ether is all of a 2 ether stake).
    function testFuzz_SettlementConserves(uint256 passMask, uint16 periods, uint96 price) public {
        periods = uint16(bound(periods, 1, 10));
        price = uint96(bound(price, MIN_STORAGE_PRICE, 1 ether));
        passMask &= (1 << periods) - 1;
        bytes memory file = fileOf(3 * CHUNK, 3);
        (bytes32 root,) = merkle(leavesOf(chunksOf(file)), 0);
        vm.prank(buyer);
        uint256 id = market.createStorageDeal{value: uint256(periods) * price}(
            root, uint64(file.length), periods, 5, price, 4, address(0)
        );
        vm.prank(providers[0]);
        market.acceptStorageDeal(id);
        IStorageMarket.StorageDeal memory d = market.getStorageDeal(id);

        IStorageMarket.StorageAttestation[] memory a = new IStorageMarket.StorageAttestation[](1);
        a[0] = IStorageMarket.StorageAttestation(id, providers[0], passMask);
        vm.roll(uint256(d.startBlock) + uint256(periods - 1) * 5 + 1);
        uint64 validUntil = uint64(block.timestamp);
        if (passMask != 0) {
            market.attestStorage(a, validUntil, committeeSign(market.hashStorageAttestations(a, validUntil), 2));
        }
        vm.roll(uint256(d.startBlock) + uint256(periods) * 5);
        uint256 stakeBefore = registry.getProvider(providers[0]).stake;
        market.settleStorageDeal(id);

        uint256 passed;
        for (uint256 p; p < periods; ++p) {
            if ((passMask >> p) & 1 == 1) ++passed;
        }
        uint256 missed = periods - passed;
        uint256 slashed = stakeBefore - registry.getProvider(providers[0]).stake;
        assertEq(slashed, missed * STORAGE_SLASH);
        assertEq(
            market.balanceOf(providers[0]) + market.balanceOf(treasury)
                + market.balanceOf(buyer),
            uint256(periods) * price + slashed
        );
        assertEq(market.balanceOf(buyer), missed * price + slashed);
        IProviderRegistry.Provider memory p0 = registry.getProvider(providers[0]);
        assertEq(p0.jobsCompleted, passed);
        assertEq(p0.jobsFailed, missed);
    }
}

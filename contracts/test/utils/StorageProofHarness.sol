// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {StorageProof} from "../../src/libraries/StorageProof.sol";

/// @notice Exposes the internal library with calldata arguments, as the escrow uses it.
contract StorageProofHarness {
    function verify(bytes32 root, uint256 leafCount, uint256 index, bytes calldata chunk, bytes32[] calldata path)
        external
        pure
        returns (bool)
    {
        return StorageProof.verify(root, leafCount, index, StorageProof.leafHash(chunk), path);
    }

    function verifyLeaf(bytes32 root, uint256 leafCount, uint256 index, bytes32 leaf, bytes32[] calldata path)
        external
        pure
        returns (bool)
    {
        return StorageProof.verify(root, leafCount, index, leaf, path);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Bits
/// @notice Bitmap helpers for the escrow's replica sets and storage periods.
library Bits {
    /// @notice The lowest `count` bits set (any count ≥ 256 sets all).
    function lowBits(uint256 count) internal pure returns (uint256) {
        return count >= 256 ? type(uint256).max : (1 << count) - 1;
    }

    /// @notice Number of set bits.
    function popcount(uint256 x) internal pure returns (uint256 count) {
        while (x != 0) {
            x &= x - 1;
            ++count;
        }
    }
}

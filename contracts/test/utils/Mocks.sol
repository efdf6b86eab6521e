// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IJobEscrow} from "../../src/interfaces/IJobEscrow.sol";

/// @notice A plain ERC-20 anyone can mint, for tests.
contract MockERC20 is ERC20 {
    constructor() ERC20("Mock", "MOCK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice Keeps 1% of every transfer: the escrow must refuse it rather than lock less than it records.
contract FeeOnTransferERC20 is ERC20 {
    constructor() ERC20("Fee", "FEE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value / 100;
        super._update(from, address(0xdead), fee);
        super._update(from, to, value - fee);
    }
}

/// @notice Calls back into the escrow from inside `transfer`/`transferFrom`, trying to withdraw again.
contract ReentrantERC20 is ERC20 {
    IJobEscrow public escrow;
    bool public attack;
    bool public reentered;
    bytes public lastRevert;

    constructor() ERC20("Reenter", "RE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(IJobEscrow escrow_) external {
        escrow = escrow_;
        attack = true;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (attack && from != address(0) && to != address(0)) {
            attack = false;
            reentered = true;
            try escrow.withdraw(address(this)) {}
            catch (bytes memory reason) {
                lastRevert = reason;
            }
        }
    }
}

/// @notice A payee that rejects ETH: it can block only its own withdrawal.
contract RevertingReceiver {
    function create(IJobEscrow escrow, bytes32 specHash, uint64 deadline) external payable returns (uint256) {
        return escrow.createComputeJob{value: msg.value}(specHash, 1, address(0), msg.value, deadline, address(0));
    }

    function withdraw(IJobEscrow escrow) external {
        escrow.withdraw(address(0));
    }

    receive() external payable {
        revert("no ETH");
    }
}

/// @notice A payee that re-enters `withdraw` when paid ETH.
contract ReentrantReceiver {
    IJobEscrow public escrow;
    uint256 public calls;
    bytes public lastRevert;

    constructor(IJobEscrow escrow_) {
        escrow = escrow_;
    }

    function create(bytes32 specHash, uint64 deadline) external payable returns (uint256) {
        return escrow.createComputeJob{value: msg.value}(specHash, 1, address(0), msg.value, deadline, address(0));
    }

    function withdraw() external {
        escrow.withdraw(address(0));
    }

    receive() external payable {
        calls++;
        try escrow.withdraw(address(0)) {}
        catch (bytes memory reason) {
            lastRevert = reason;
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title MisbehavingToken
/// @notice Test-only ERC-20-like token that can misbehave in the ways the vault must survive: return false,
///         return nothing (USDT-style), revert without data, keep a transfer fee, or call back into a target
///         during a transfer (re-entrancy). No allowances: anyone may move anyone's tokens.
contract MisbehavingToken {
    enum Mode {
        Normal,
        ReturnFalse,
        ReturnNothing,
        RevertEmpty
    }

    Mode public mode;
    /// @notice Part of every transfer burnt on the way, in ppm (1e6 = everything).
    uint256 public feePpm;
    /// @notice Called with `callbackData` at the start of every transfer, if nonzero.
    address public callbackTarget;
    bytes public callbackData;
    mapping(address account => uint256) public balanceOf;

    function setMode(Mode mode_) external {
        mode = mode_;
    }

    function setFee(uint256 feePpm_) external {
        feePpm = feePpm_;
    }

    function setCallback(address target, bytes calldata data) external {
        callbackTarget = target;
        callbackData = data;
    }

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        return _move(msg.sender, to, amount);
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        return _move(from, to, amount);
    }

    function _move(address from, address to, uint256 amount) private returns (bool) {
        if (callbackTarget != address(0)) {
            (bool ok, bytes memory ret) = callbackTarget.call(callbackData);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(ret, 0x20), mload(ret))
                }
            }
        }
        if (mode == Mode.ReturnFalse) return false;
        if (mode == Mode.RevertEmpty) revert();
        balanceOf[from] -= amount;
        balanceOf[to] += amount - amount * feePpm / 1e6;
        if (mode == Mode.ReturnNothing) {
            assembly ("memory-safe") {
                return(0, 0)
            }
        }
        return true;
    }
}

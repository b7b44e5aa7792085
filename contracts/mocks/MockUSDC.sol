// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "../interfaces/IERC20.sol";

/// @title MockUSDC
/// @notice Devnet collateral token: a minimal ERC-20 with 6 decimals and a free `mint` (faucet).
/// @dev Never deploy outside a devnet: anyone can mint. An allowance of `type(uint256).max` is infinite
///      (not decreased by `transferFrom`), as in most production tokens.
contract MockUSDC is IERC20 {
    /// @notice `from` holds `balance` tokens but `needed` were to be moved.
    error MockUSDC_InsufficientBalance(address from, uint256 balance, uint256 needed);
    /// @notice `spender` may move `allowance` of `owner`'s tokens but `needed` were to be moved.
    error MockUSDC_InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);
    /// @notice Tokens cannot be sent or minted to the zero address.
    error MockUSDC_InvalidReceiver(address receiver);
    /// @notice Allowances cannot be given to the zero address.
    error MockUSDC_InvalidSpender(address spender);

    /// @notice Token name.
    string public constant name = "Mock USDC";
    /// @notice Token symbol.
    string public constant symbol = "USDC";
    /// @notice Token decimals (micro-USDC units, docs/PROTOCOL.md section 1).
    uint8 public constant decimals = 6;

    /// @inheritdoc IERC20
    uint256 public totalSupply;
    /// @inheritdoc IERC20
    mapping(address account => uint256) public balanceOf;
    /// @inheritdoc IERC20
    mapping(address owner => mapping(address spender => uint256)) public allowance;

    /// @notice Creates `amount` tokens for `to`. Anyone may call (devnet faucet).
    /// @param to Receiver of the new tokens.
    /// @param amount Token amount (6 decimals).
    function mint(address to, uint256 amount) external {
        if (to == address(0)) revert MockUSDC_InvalidReceiver(to);
        // Checked: the total supply is the bound that makes the unchecked balance updates safe.
        totalSupply += amount;
        unchecked {
            // balanceOf[to] <= totalSupply, which was just checked not to overflow.
            balanceOf[to] += amount;
        }
        emit Transfer(address(0), to, amount);
    }

    /// @inheritdoc IERC20
    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @inheritdoc IERC20
    function approve(address spender, uint256 value) external returns (bool) {
        if (spender == address(0)) revert MockUSDC_InvalidSpender(spender);
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// @inheritdoc IERC20
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert MockUSDC_InsufficientAllowance(from, msg.sender, allowed, value);
            unchecked {
                // allowed >= value was checked on the line above.
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    /// @dev Moves `value` from `from` to `to` after the balance and receiver checks.
    function _transfer(address from, address to, uint256 value) private {
        if (to == address(0)) revert MockUSDC_InvalidReceiver(to);
        uint256 balance = balanceOf[from];
        if (balance < value) revert MockUSDC_InsufficientBalance(from, balance, value);
        unchecked {
            // balance >= value was checked above; the sum of all balances is totalSupply, so
            // balanceOf[to] + value <= totalSupply cannot overflow.
            balanceOf[from] = balance - value;
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IERC20
/// @notice The ERC-20 surface the exchange uses (EIP-20).
interface IERC20 {
    /// @notice `value` tokens moved from `from` to `to` (`from == address(0)` for a mint).
    event Transfer(address indexed from, address indexed to, uint256 value);
    /// @notice `owner` allowed `spender` to move `value` of its tokens.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Moves `value` tokens from the caller to `to`.
    function transfer(address to, uint256 value) external returns (bool);
    /// @notice Sets the caller's allowance for `spender` to `value`.
    function approve(address spender, uint256 value) external returns (bool);
    /// @notice Moves `value` tokens from `from` to `to`, spending the caller's allowance.
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    /// @notice Total tokens in existence.
    function totalSupply() external view returns (uint256);
    /// @notice Tokens held by `account`.
    function balanceOf(address account) external view returns (uint256);
    /// @notice Tokens `spender` may still move on behalf of `owner`.
    function allowance(address owner, address spender) external view returns (uint256);
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title ICollateralVault
/// @notice Holds every unit of collateral of the exchange and keeps the on-chain deposit queue.
/// @dev Money enters only through `deposit` and leaves only through `payOut`, which only the Settlement
///      contract (the vault's creator; finalized withdrawals) and its escape hatch (after a freeze: escapes,
///      refunds of deposits the escape checkpoint never included, the swept residual) may call.
///      The deposit queue is a prefix-hash chain (docs/PROTOCOL.md, section 4): h_0 = 0,
///      h_{i+1} = keccak256(abi.encode(h_i, uint64 index, address owner, uint128 amount, uint64 timestamp)).
interface ICollateralVault {
    /// @notice A deposit entered the queue.
    /// @param index Position of the deposit in the queue (0-based).
    /// @param owner The exchange account owner credited by the deposit.
    /// @param depositor Who paid the tokens.
    /// @param amount Amount credited, in token units (what the vault actually received).
    /// @param timestamp Block timestamp of the deposit.
    /// @param prefixHash The queue's prefix hash after this deposit (h_{index+1}).
    event Deposited(
        uint64 indexed index,
        address indexed owner,
        address indexed depositor,
        uint128 amount,
        uint64 timestamp,
        bytes32 prefixHash
    );

    /// @notice Collateral left the vault.
    /// @param to Recipient of the tokens.
    /// @param amount Amount transferred, in token units.
    event PaidOut(address indexed to, uint256 amount);

    /// @notice The deposit amount is zero.
    error Vault_ZeroAmount();
    /// @notice The deposit amount (as received) does not fit the protocol's uint128 amounts, or would take
    ///         the total ever deposited beyond 2^128 - 1.
    /// @param amount The amount received.
    error Vault_AmountTooLarge(uint256 amount);
    /// @notice The owner address is zero.
    error Vault_ZeroOwner();
    /// @notice Only the Settlement contract and its escape hatch may move collateral out.
    /// @param caller The rejected caller.
    error Vault_NotPayer(address caller);
    /// @notice The queue index is beyond the end of the deposit queue.
    /// @param cursor The requested cursor.
    /// @param count The number of deposits in the queue.
    error Vault_CursorOutOfRange(uint64 cursor, uint64 count);
    /// @notice The collateral token's transfer or transferFrom returned false, or failed without a reason.
    /// @param token The collateral token.
    error Vault_TokenTransferFailed(address token);
    /// @notice A deposit or payout was entered again while one was running (e.g. from a token callback).
    error Vault_Reentered();

    /// @notice Deposits `amount` collateral tokens (pulled from the caller) for exchange account `owner`.
    /// @dev The caller must have approved the vault. The credited amount is what the vault received.
    /// @param owner The exchange account owner to credit.
    /// @param amount Token amount to pull.
    /// @return index The deposit's queue index.
    function deposit(address owner, uint256 amount) external returns (uint64 index);

    /// @notice Transfers `amount` collateral to `to`. Only callable by the Settlement contract and its escape
    ///         hatch.
    /// @param to Recipient.
    /// @param amount Token amount.
    function payOut(address to, uint256 amount) external;

    /// @notice The collateral token.
    function token() external view returns (address);

    /// @notice The Settlement contract, a caller of `payOut`.
    function settlement() external view returns (address);

    /// @notice The escape hatch, the other caller of `payOut`.
    function escapeHatch() external view returns (address);

    /// @notice Whether a deposit or a payout is running right now (the transient re-entrancy lock): the vault's
    ///         balance is in flux, so the escape hatch refuses to fix the escape pool (freeze) meanwhile.
    function locked() external view returns (bool);

    /// @notice Number of deposits ever queued.
    function depositCount() external view returns (uint64);

    /// @notice The queue's prefix hash after the first `cursor` deposits (h_cursor; h_0 = 0).
    /// @param cursor Number of deposits covered, at most `depositCount()`.
    function depositPrefixHash(uint64 cursor) external view returns (bytes32);

    /// @notice The total amount of the first `cursor` deposits (0 for cursor 0).
    /// @dev The escape hatch refunds deposits [frozen depositCursor, depositCount) in full and needs their
    ///      total: `depositTotal() - depositedBefore(depositCursor)`.
    /// @param cursor Number of deposits covered, at most `depositCount()`.
    function depositedBefore(uint64 cursor) external view returns (uint128);

    /// @notice The total amount ever deposited (`depositedBefore(depositCount())`).
    function depositTotal() external view returns (uint128);
}

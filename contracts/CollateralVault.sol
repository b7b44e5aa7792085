// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IERC20} from "./interfaces/IERC20.sol";

/// @title CollateralVault
/// @notice Holds the exchange's collateral and the on-chain deposit queue (docs/PROTOCOL.md, section 4).
/// @dev Created by the Settlement contract in its constructor; `settlement` (the creator) and `escapeHatch`
///      are the only callers of `payOut`. The queue stores one prefix hash per deposit (`_prefixHashes[i] = h_{i+1}`, h_0 = 0) and
///      the cumulative deposited amount after each deposit, two uint128 per storage word, so that the escape
///      hatch can total the deposits a frozen checkpoint never included (`depositedBefore`).
contract CollateralVault is ICollateralVault {
    /// @inheritdoc ICollateralVault
    address public immutable token;
    /// @inheritdoc ICollateralVault
    address public immutable settlement;
    /// @inheritdoc ICollateralVault
    address public immutable escapeHatch;

    /// @dev Queue length and the total ever deposited, in one word (the deposit path reads and writes both).
    struct Queue {
        uint64 count;
        uint128 total;
    }

    Queue private _queue;

    /// @dev `_prefixHashes[i]` is the queue's prefix hash after deposit i, h_{i+1}.
    mapping(uint256 index => bytes32 prefixHash) private _prefixHashes;

    /// @dev Cumulative amounts: the low 128 bits of word `i >> 1` hold the total of deposits [0, i] for even
    ///      `i`, the high 128 bits for odd `i`. Two per word: every other deposit writes a fresh slot, the
    ///      others update the slot their predecessor created (measured in tests/contracts/gas_snapshot.json).
    mapping(uint256 word => uint256 pair) private _cumulative;

    /// @dev Reentrancy lock shared by `deposit` and `payOut` (transient: cleared at the end of the transaction).
    bool private transient _locked;

    /// @dev One lock for both entry points: a token callback can neither re-enter `deposit` (which would let
    ///      the outer deposit count the inner one's tokens in its balance delta) nor trigger a payout while a
    ///      deposit's balance is being measured.
    modifier nonReentrant() {
        if (_locked) revert Vault_Reentered();
        _locked = true;
        _;
        _locked = false;
    }

    /// @param token_ The collateral token; the Settlement contract checked that it is a contract.
    /// @param escapeHatch_ The escape hatch the Settlement creates next (its precomputed address).
    constructor(address token_, address escapeHatch_) {
        token = token_;
        settlement = msg.sender;
        escapeHatch = escapeHatch_;
    }

    /// @inheritdoc ICollateralVault
    function deposit(address owner, uint256 amount) external nonReentrant returns (uint64 index) {
        if (owner == address(0)) revert Vault_ZeroOwner();
        if (amount == 0) revert Vault_ZeroAmount();

        // The credited amount is the balance delta, so fee-on-transfer tokens cannot credit more than arrived.
        // This is the one place where an external call precedes the state change: the queue entry needs the
        // amount received, which is only known after the transfer. It is safe because `nonReentrant` blocks
        // every re-entry into the vault during the call, and nothing before the call was written.
        uint256 balanceBefore = IERC20(token).balanceOf(address(this));
        _callToken(abi.encodeCall(IERC20.transferFrom, (msg.sender, address(this), amount)));
        uint256 received = IERC20(token).balanceOf(address(this)) - balanceBefore;
        if (received == 0) revert Vault_ZeroAmount();

        Queue memory queue = _queue;
        // The running total stays a uint128 (so does every single amount): deposits beyond 2^128 - 1 in
        // total are refused, which no real collateral token comes near.
        if (received > type(uint128).max - queue.total) revert Vault_AmountTooLarge(received);
        index = queue.count;
        uint128 total;
        unchecked {
            // received <= type(uint128).max - queue.total (checked above), so the sum fits.
            total = queue.total + uint128(received);
        }
        uint64 timestamp = uint64(block.timestamp);
        bytes32 prefixHash = keccak256(
            abi.encode(index == 0 ? bytes32(0) : _prefixHashes[index - 1], index, owner, uint128(received), timestamp)
        );
        _prefixHashes[index] = prefixHash;
        if (index & 1 == 0) {
            // A fresh word: the high half (the next deposit's total) is still empty.
            _cumulative[index >> 1] = total;
        } else {
            _cumulative[index >> 1] |= uint256(total) << 128;
        }
        _queue = Queue({count: index + 1, total: total});
        emit Deposited(index, owner, msg.sender, uint128(received), timestamp, prefixHash);
    }

    /// @inheritdoc ICollateralVault
    function payOut(address to, uint256 amount) external nonReentrant {
        if (msg.sender != settlement && msg.sender != escapeHatch) revert Vault_NotPayer(msg.sender);
        // The vault itself keeps no per-payout state: the caller marks the claim as spent before calling here.
        _callToken(abi.encodeCall(IERC20.transfer, (to, amount)));
        emit PaidOut(to, amount);
    }

    /// @inheritdoc ICollateralVault
    function locked() external view returns (bool) {
        return _locked;
    }

    /// @inheritdoc ICollateralVault
    function depositCount() external view returns (uint64) {
        return _queue.count;
    }

    /// @inheritdoc ICollateralVault
    function depositPrefixHash(uint64 cursor) external view returns (bytes32) {
        uint64 count = _queue.count;
        if (cursor > count) revert Vault_CursorOutOfRange(cursor, count);
        return cursor == 0 ? bytes32(0) : _prefixHashes[cursor - 1];
    }

    /// @inheritdoc ICollateralVault
    function depositedBefore(uint64 cursor) external view returns (uint128) {
        uint64 count = _queue.count;
        if (cursor > count) revert Vault_CursorOutOfRange(cursor, count);
        if (cursor == 0) return 0;
        uint64 last = cursor - 1;
        uint256 pair = _cumulative[last >> 1];
        return uint128(last & 1 == 0 ? pair : pair >> 128);
    }

    /// @inheritdoc ICollateralVault
    function depositTotal() external view returns (uint128) {
        return _queue.total;
    }

    /// @dev Calls the token with `data` (transfer / transferFrom). A revert is bubbled up with the token's
    ///      own reason (e.g. its insufficient-allowance error); a call that returns `false`, or reverts
    ///      without data, fails with Vault_TokenTransferFailed. Empty return data counts as success (tokens
    ///      like USDT return nothing); the token is known to have code (checked at deployment).
    function _callToken(bytes memory data) private {
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok) {
            if (ret.length != 0) {
                assembly ("memory-safe") {
                    revert(add(ret, 0x20), mload(ret))
                }
            }
            revert Vault_TokenTransferFailed(token);
        }
        if (ret.length != 0 && (ret.length < 32 || abi.decode(ret, (uint256)) != 1)) {
            revert Vault_TokenTransferFailed(token);
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IERC20} from "./interfaces/IERC20.sol";

/// @title CollateralVault
/// @notice Holds the exchange's collateral and the on-chain deposit queue (docs/PROTOCOL.md, section 4).
/// @dev Created by the Settlement contract in its constructor; `settlement` (the creator) is the only caller
///      of `payOut`. The queue stores one prefix hash per deposit: `_prefixHashes[i] = h_{i+1}`, h_0 = 0.
contract CollateralVault is ICollateralVault {
    /// @inheritdoc ICollateralVault
    address public immutable token;
    /// @inheritdoc ICollateralVault
    address public immutable settlement;

    /// @dev `_prefixHashes[i]` is the queue's prefix hash after deposit i, h_{i+1}.
    bytes32[] private _prefixHashes;

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
    constructor(address token_) {
        token = token_;
        settlement = msg.sender;
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
        if (received > type(uint128).max) revert Vault_AmountTooLarge(received);

        index = uint64(_prefixHashes.length);
        uint64 timestamp = uint64(block.timestamp);
        bytes32 prefixHash = keccak256(
            abi.encode(index == 0 ? bytes32(0) : _prefixHashes[index - 1], index, owner, uint128(received), timestamp)
        );
        _prefixHashes.push(prefixHash);
        emit Deposited(index, owner, msg.sender, uint128(received), timestamp, prefixHash);
    }

    /// @inheritdoc ICollateralVault
    function payOut(address to, uint256 amount) external nonReentrant {
        if (msg.sender != settlement) revert Vault_NotSettlement(msg.sender);
        // The vault itself keeps no per-payout state: the Settlement contract marks the claim as spent
        // before calling here.
        _callToken(abi.encodeCall(IERC20.transfer, (to, amount)));
        emit PaidOut(to, amount);
    }

    /// @inheritdoc ICollateralVault
    function depositCount() external view returns (uint64) {
        return uint64(_prefixHashes.length);
    }

    /// @inheritdoc ICollateralVault
    function depositPrefixHash(uint64 cursor) external view returns (bytes32) {
        uint64 count = uint64(_prefixHashes.length);
        if (cursor > count) revert Vault_CursorOutOfRange(cursor, count);
        return cursor == 0 ? bytes32(0) : _prefixHashes[cursor - 1];
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

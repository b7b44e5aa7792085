// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IEscapeHatch} from "../interfaces/IEscapeHatch.sol";
import {ISettlement} from "../interfaces/ISettlement.sol";
import {IERC20} from "../interfaces/IERC20.sol";

/// @title FreezeProbe
/// @notice Test-only: the callback of a MisbehavingToken transfer. In the middle of a vault payout it records
///         what a freeze would see at that moment (the vault's balance, the Settlement's claimed total) and then
///         tries to freeze, either swallowing the revert (`bubble == false`, the error is kept in `lastError`)
///         or letting it revert the whole payout.
contract FreezeProbe {
    IEscapeHatch public immutable hatch;
    ISettlement public immutable settlement;
    IERC20 public immutable token;
    address public immutable vault;

    /// @notice True: call freezeForDeposit(depositOwner, depositAmount, depositTimestamp); false: freeze().
    bool public forDeposit;
    /// @notice True: a failed freeze reverts the payout; false: its revert data is stored.
    bool public bubble;
    address public depositOwner;
    uint128 public depositAmount;
    uint64 public depositTimestamp;

    /// @notice What the last poke saw: the vault's balance and the Settlement's claimed total.
    uint256 public vaultBalanceSeen;
    uint256 public claimedSeen;
    /// @notice Revert data of the last freeze attempt (empty if it succeeded).
    bytes public lastError;
    /// @notice Number of pokes.
    uint256 public pokes;

    constructor(IEscapeHatch hatch_, ISettlement settlement_, IERC20 token_, address vault_) {
        hatch = hatch_;
        settlement = settlement_;
        token = token_;
        vault = vault_;
    }

    function configure(bool forDeposit_, bool bubble_, address owner, uint128 amount, uint64 timestamp) external {
        forDeposit = forDeposit_;
        bubble = bubble_;
        depositOwner = owner;
        depositAmount = amount;
        depositTimestamp = timestamp;
    }

    function poke() external {
        pokes += 1;
        vaultBalanceSeen = token.balanceOf(vault);
        claimedSeen = settlement.withdrawalsClaimed();
        (bool ok, bytes memory ret) = forDeposit
            ? address(hatch).call(
                abi.encodeCall(IEscapeHatch.freezeForDeposit, (depositOwner, depositAmount, depositTimestamp))
            )
            : address(hatch).call(abi.encodeCall(IEscapeHatch.freeze, ()));
        if (!ok && bubble) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        lastError = ret;
    }
}

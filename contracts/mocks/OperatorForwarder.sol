// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title OperatorForwarder
/// @notice Test-only: a contract operator that forwards calls and refuses plain ETH (no receive function),
///         to exercise Settlement_TransferFailed.
contract OperatorForwarder {
    function forward(address target, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
        return ret;
    }
}

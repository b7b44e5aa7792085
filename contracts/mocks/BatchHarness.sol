// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BatchLib} from "../libraries/BatchLib.sol";
import {CheckpointHeader, CheckpointLib} from "../libraries/CheckpointLib.sol";

/// @title BatchHarness
/// @notice Test-only: exposes BatchLib and CheckpointLib so Python can compare them with isoperp.protocol.
contract BatchHarness {
    function CHUNK_BYTES() external pure returns (uint256) {
        return BatchLib.CHUNK_BYTES;
    }

    function batchHash(bytes calldata data) external pure returns (bytes32) {
        return BatchLib.hash(data);
    }

    /// @notice BatchLib.hash must leave the free-memory pointer where it was.
    function batchHashKeepsFreeMemoryPointer(bytes calldata data) external pure returns (bool) {
        uint256 before;
        uint256 afterwards;
        assembly ("memory-safe") {
            before := mload(0x40)
        }
        BatchLib.hash(data);
        assembly ("memory-safe") {
            afterwards := mload(0x40)
        }
        return before == afterwards;
    }

    function traceLeaf(uint32 index, uint32 offset, bytes calldata record, bytes32 stateRootAfter)
        external
        pure
        returns (bytes32)
    {
        return BatchLib.traceLeaf(index, offset, record, stateRootAfter);
    }

    function headerHash(CheckpointHeader calldata header) external pure returns (bytes32) {
        return CheckpointLib.hash(header);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MerkleProofLib} from "./MerkleProofLib.sol";

/// @title BatchLib
/// @notice The commitments of a batch (docs/PROTOCOL.md, section 3). Data: the batch data cut into chunks of
///         CHUNK_BYTES bytes (the last one may be shorter), `keccak256(keccak256(chunk_0) ‖ keccak256(chunk_1)
///         ‖ …)`. A fraud proof opens one chunk with the list of chunk hashes (at most
///         MAX_BATCH_BYTES / CHUNK_BYTES = 32 of them) instead of resending the whole batch.
library BatchLib {
    /// @notice Bytes per chunk.
    uint256 internal constant CHUNK_BYTES = 4096;

    /// @notice Leaf `index` of the trace tree (depth MerkleProofLib.TRACE_TREE_DEPTH, state-tree hashing):
    ///         `keccak256(0x00 ‖ abi.encode(uint32 index, uint32 offset, bytes32 keccak256(record),
    ///         bytes32 stateRootAfter))`.
    /// @param index The record's position in the batch.
    /// @param offset The byte offset of the record's type byte in the batch data.
    /// @param record The record bytes (type byte and payload, without the state root that follows it).
    /// @param stateRootAfter The state root after applying the record.
    function traceLeaf(uint32 index, uint32 offset, bytes calldata record, bytes32 stateRootAfter)
        internal
        pure
        returns (bytes32)
    {
        return MerkleProofLib.hashLeaf(abi.encode(index, offset, keccak256(record), stateRootAfter));
    }

    /// @notice The chunk-hash commitment of `data` (calldata). Empty data hashes to keccak256("") (no chunks).
    /// @dev Each chunk is copied to scratch memory past the free-memory pointer and hashed there; the chunk
    ///      hashes are written after the chunk buffer and hashed together at the end. The free-memory pointer
    ///      is not moved: nothing here outlives the call (hence memory-safe).
    function hash(bytes calldata data) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            let buffer := mload(0x40)
            let hashes := add(buffer, CHUNK_BYTES)
            let length := data.length
            let count := 0
            for { let start := 0 } lt(start, length) { start := add(start, CHUNK_BYTES) } {
                let size := sub(length, start)
                if gt(size, CHUNK_BYTES) { size := CHUNK_BYTES }
                calldatacopy(buffer, add(data.offset, start), size)
                mstore(add(hashes, shl(5, count)), keccak256(buffer, size))
                count := add(count, 1)
            }
            result := keccak256(hashes, shl(5, count))
        }
    }
}

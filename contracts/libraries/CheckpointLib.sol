// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice A settlement checkpoint header, version 2 (docs/PROTOCOL.md, section 4).
/// @param seq Sequence number: the previous checkpoint's + 1.
/// @param prevHash The previous checkpoint's hash.
/// @param stateRoot State root after the batch.
/// @param depositCursor Deposits [0, depositCursor) are included in the state.
/// @param depositPrefixHash The vault's deposit prefix hash at depositCursor.
/// @param forcedCursor Forced requests [0, forcedCursor) are served.
/// @param forcedPrefixHash The forced queue's prefix hash at forcedCursor.
/// @param withdrawalsRoot Root of the withdrawals tree.
/// @param withdrawalCount Number of withdrawal leaves.
/// @param withdrawalTotal Sum of their amounts.
/// @param batchHash Chunk-hash commitment to the batch data (BatchLib.hash).
/// @param traceRoot Root of the trace tree: leaf i commits to record i, its offset and stateRootAfter_i.
/// @param recordCount Number of records in the batch data.
/// @param batchLength Length of the batch data in bytes (checked at post).
/// @param timestamp The batch's system time.
struct CheckpointHeader {
    uint64 seq;
    bytes32 prevHash;
    bytes32 stateRoot;
    uint64 depositCursor;
    bytes32 depositPrefixHash;
    uint64 forcedCursor;
    bytes32 forcedPrefixHash;
    bytes32 withdrawalsRoot;
    uint64 withdrawalCount;
    uint128 withdrawalTotal;
    bytes32 batchHash;
    bytes32 traceRoot;
    uint32 recordCount;
    uint32 batchLength;
    uint64 timestamp;
}

/// @title CheckpointLib
/// @notice Hashing of checkpoint headers.
library CheckpointLib {
    /// @notice keccak256(abi.encode(header)), the identity a checkpoint is chained by.
    function hash(CheckpointHeader memory header) internal pure returns (bytes32) {
        return keccak256(abi.encode(header));
    }
}

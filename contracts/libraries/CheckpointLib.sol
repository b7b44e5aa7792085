// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice A settlement checkpoint header (docs/PROTOCOL.md, section 4).
struct CheckpointHeader {
    uint64 seq;
    bytes32 prevHash;
    bytes32 stateRoot;
    uint64 depositCursor;
    bytes32 depositPrefixHash;
    uint64 forcedCursor;
    bytes32 forcedPrefixHash;
    bytes32 withdrawalsRoot;
    uint32 withdrawalCount;
    uint128 withdrawalTotal;
    uint128 claimsTotal;
    bytes32 batchHash;
    bytes32 traceRoot;
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

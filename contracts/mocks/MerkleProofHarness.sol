// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MerkleProofLib} from "../libraries/MerkleProofLib.sol";

/// @title MerkleProofHarness
/// @notice Test-only: exposes MerkleProofLib so Python can compare it with isoperp.tree.merkle.
contract MerkleProofHarness {
    function STATE_TREE_DEPTH() external pure returns (uint256) {
        return MerkleProofLib.STATE_TREE_DEPTH;
    }

    function WITHDRAWAL_TREE_DEPTH() external pure returns (uint256) {
        return MerkleProofLib.WITHDRAWAL_TREE_DEPTH;
    }

    function TRACE_TREE_DEPTH() external pure returns (uint256) {
        return MerkleProofLib.TRACE_TREE_DEPTH;
    }

    function hashLeaf(bytes memory data) external pure returns (bytes32) {
        return MerkleProofLib.hashLeaf(data);
    }

    function hashNode(bytes32 left, bytes32 right) external pure returns (bytes32) {
        return MerkleProofLib.hashNode(left, right);
    }

    function computeRoot(bytes32 leafHash, uint256 index, bytes32[] calldata proof, uint256 depth)
        external
        pure
        returns (bytes32)
    {
        return MerkleProofLib.computeRoot(leafHash, index, proof, depth);
    }

    function verify(bytes32 root, bytes32 leafHash, uint256 index, bytes32[] calldata proof, uint256 depth)
        external
        pure
        returns (bool)
    {
        return MerkleProofLib.verify(root, leafHash, index, proof, depth);
    }

    /// @notice hashLeaf's in-place salting must leave `data` (and its length word) as it was.
    function hashLeafKeepsData(bytes memory data) external pure returns (bytes32 h, bytes memory dataAfter) {
        h = MerkleProofLib.hashLeaf(data);
        dataAfter = data;
    }

    /// @notice hashNode borrows the free-memory-pointer slot; it must restore it.
    function hashNodeKeepsFreeMemoryPointer(bytes32 left, bytes32 right) external pure returns (bool) {
        uint256 before;
        uint256 afterwards;
        assembly ("memory-safe") {
            before := mload(0x40)
        }
        MerkleProofLib.hashNode(left, right);
        assembly ("memory-safe") {
            afterwards := mload(0x40)
        }
        return before == afterwards;
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title MerkleProofLib
/// @notice Fixed-depth sparse Merkle proofs (docs/PROTOCOL.md, section 2).
/// @dev leafHash = keccak256(0x00 ‖ leafBytes); node = keccak256(0x01 ‖ left ‖ right); an empty slot is
///      bytes32(0). The 0x00/0x01 salts keep leaves and internal nodes in separate domains, so an internal
///      node can never be passed off as a leaf (and no raw 64-byte preimage is ever hashed as a leaf).
///      A proof is exactly `depth` sibling hashes, bottom-up; bit i of the index is 1 when the node at
///      height i is a right child. The length and index bounds make the (leaf, index) pair unique: one
///      leaf cannot be proven at an aliased index (the Plasma double-index bug).
library MerkleProofLib {
    /// @notice Depth of the state tree (2^32 leaf slots).
    uint256 internal constant STATE_TREE_DEPTH = 32;
    /// @notice Depth of the global append-only withdrawals tree (2^32 leaf slots), whose root every checkpoint
    ///         copies from the exchange leaf.
    uint256 internal constant WITHDRAWAL_TREE_DEPTH = 32;
    /// @notice Depth of a checkpoint's trace tree (intermediate roots for fraud proofs).
    uint256 internal constant TRACE_TREE_DEPTH = 20;

    /// @notice The proof does not have exactly `depth` siblings.
    /// @param got Number of siblings supplied.
    /// @param depth Depth of the tree.
    error MerkleProof_WrongLength(uint256 got, uint256 depth);
    /// @notice The leaf index is not below 2^depth.
    /// @param index The index supplied.
    /// @param depth Depth of the tree.
    error MerkleProof_IndexOutOfRange(uint256 index, uint256 depth);

    /// @notice keccak256(0x00 ‖ data): the hash of a leaf's encoding.
    /// @dev Hashes in place instead of copying `data` behind a salt byte: the byte just before the data is
    ///      the lowest byte of the length word; it is set to 0x00 for the hash and the length word is
    ///      restored right after. Lengths of memory arrays are far below 2^248, so that byte's neighbours
    ///      in the length word are zero and unchanged. For an empty `data` that may alias the zero slot
    ///      (0x60) the byte written is already zero.
    /// @param data The leaf encoding.
    function hashLeaf(bytes memory data) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let len := mload(data)
            mstore8(add(data, 0x1f), 0x00)
            h := keccak256(add(data, 0x1f), add(len, 1))
            mstore(data, len)
        }
    }

    /// @notice keccak256(0x01 ‖ left ‖ right): the hash of an internal node.
    /// @param left The left child's hash.
    /// @param right The right child's hash.
    function hashNode(bytes32 left, bytes32 right) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            // The 65-byte preimage is laid out in the scratch space [0x00, 0x40) and spills one word into
            // the free-memory-pointer slot 0x40, which is saved first and restored before the block ends
            // (nothing in between allocates): 0x1f holds the 0x01 salt (low byte of the word stored at 0x00),
            // 0x20 holds `left`, 0x40 holds `right`.
            let fmp := mload(0x40)
            mstore(0x00, 0x01)
            mstore(0x20, left)
            mstore(0x40, right)
            h := keccak256(0x1f, 0x41)
            mstore(0x40, fmp)
        }
    }

    /// @notice The root that `proof` leads to from `leafHash` at `index` in a tree of `depth`.
    /// @dev Reverts with MerkleProof_WrongLength unless proof.length == depth, and with
    ///      MerkleProof_IndexOutOfRange unless index < 2^depth.
    /// @param leafHash The leaf's hash (hashLeaf of its encoding; bytes32(0) for an empty slot).
    /// @param index The leaf index; bit i = 1 means the node at height i is a right child.
    /// @param proof The `depth` sibling hashes, bottom-up.
    /// @param depth The tree depth.
    function computeRoot(bytes32 leafHash, uint256 index, bytes32[] calldata proof, uint256 depth)
        internal
        pure
        returns (bytes32 node)
    {
        if (proof.length != depth) revert MerkleProof_WrongLength(proof.length, depth);
        // `index >> depth` is 0 exactly when index < 2^depth; unlike `1 << depth` it also holds for depth >= 256.
        if (index >> depth != 0) revert MerkleProof_IndexOutOfRange(index, depth);
        node = leafHash;
        for (uint256 height; height < depth;) {
            bytes32 sibling = proof[height];
            node = (index >> height) & 1 == 0 ? hashNode(node, sibling) : hashNode(sibling, node);
            unchecked {
                // height < depth == proof.length, a calldata array length, far below 2^256 - 1.
                ++height;
            }
        }
    }

    /// @notice Whether `proof` proves `leafHash` at `index` under `root`.
    /// @dev A malformed proof (wrong length, index out of range) REVERTS with the computeRoot errors rather
    ///      than returning false: callers learn why, and a malformed proof can never pass. A well-formed proof
    ///      that leads to another root returns false.
    /// @param root The expected root.
    /// @param leafHash The leaf's hash.
    /// @param index The leaf index.
    /// @param proof The `depth` sibling hashes, bottom-up.
    /// @param depth The tree depth.
    function verify(bytes32 root, bytes32 leafHash, uint256 index, bytes32[] calldata proof, uint256 depth)
        internal
        pure
        returns (bool)
    {
        return computeRoot(leafHash, index, proof, depth) == root;
    }
}

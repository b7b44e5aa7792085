// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ExchangeLeaf} from "../libraries/LeafLib.sol";

/// @title IDisputeGame
/// @notice The dispute contract of the isoperp exchange: the one place that judges a posted checkpoint. The
///         Settlement never judges a root; it only lets this contract invalidate a pending checkpoint and every
///         later one (ISettlement.invalidateFrom), after which the operator's chain continues from the checkpoint
///         before it. Every proof here is permissionless and checks a claim against data the Settlement stores.
/// @dev Proofs implemented:
///      - header vs. state (`proveHeaderMismatch`): the header fields that copy the exchange leaf (depositCursor,
///        forcedCursor, withdrawalsRoot, withdrawalCount, withdrawalTotal) must equal that leaf in the
///        checkpoint's own state tree. It needs no per-record verifier.
///      Room for record proofs: a registry of per-record verifier contracts keyed by record type (the batch
///      record's type byte, docs/PROTOCOL.md section 3), fixed at construction and empty in this version; the
///      fraud-proof issue adds the verifiers, the proofs that use them (trace leaves, batch chunks), the
///      challenger bonds and the slashing of the operator's bond (one hook: the internal verdict that calls
///      invalidateFrom).
interface IDisputeGame {
    /// @notice A header field of checkpoint `seq` differs from the exchange leaf of its own state: the checkpoint
    ///         and every later one were invalidated.
    /// @param seq The invalidated checkpoint.
    /// @param field The first differing field, in the order the proof compares them: 1 depositCursor,
    ///        2 forcedCursor, 3 withdrawalsRoot, 4 withdrawalCount, 5 withdrawalTotal (the FIELD_* constants).
    /// @param challenger Who proved it (the fraud-proof issue rewards it from the slashed bond).
    event HeaderMismatchProven(uint64 indexed seq, uint8 indexed field, address indexed challenger);

    /// @notice The exchange leaf and proof do not lead to checkpoint `seq`'s state root at the exchange leaf's
    ///         index (LeafLib.EXCHANGE_INDEX). A proof of the wrong length reverts with MerkleProof_WrongLength.
    error DisputeGame_InvalidStateProof(uint64 seq, bytes32 stateRoot);
    /// @notice Every compared header field of checkpoint `seq` equals its state's exchange leaf: nothing to dispute.
    error DisputeGame_NoMismatch(uint64 seq);
    /// @notice The Settlement given to the constructor does not name this contract as its `disputes`.
    error DisputeGame_NotSettlementsDisputes(address settlement, address disputes);
    /// @notice The constructor's record-type and verifier lists differ in length.
    error DisputeGame_VerifierListMismatch(uint256 recordTypes, uint256 verifiers);
    /// @notice A verifier address holds no code.
    error DisputeGame_VerifierNotContract(uint8 recordType, address verifier);
    /// @notice A record type is listed twice.
    error DisputeGame_DuplicateVerifier(uint8 recordType);

    /// @notice Proves that a header field of pending checkpoint `seq` differs from the exchange leaf in the
    ///         checkpoint's state tree, and invalidates `seq` and every later checkpoint. Anyone may call.
    /// @dev Runs `checkHeaderMismatch`, then ISettlement.invalidateFrom(seq), then emits HeaderMismatchProven.
    ///      Reverts with the Settlement's errors when `seq` is unknown (Settlement_UnknownCheckpoint) or already
    ///      final (Settlement_CheckpointFinal).
    /// @param seq The disputed checkpoint.
    /// @param exchange The exchange leaf (LeafLib.ExchangeLeaf, v2) of checkpoint `seq`'s state.
    /// @param proof Exactly STATE_TREE_DEPTH sibling hashes, bottom-up, from the exchange leaf to the state root.
    function proveHeaderMismatch(uint64 seq, ExchangeLeaf calldata exchange, bytes32[] calldata proof) external;

    /// @notice Side-effect-free check of a header-vs-state dispute: returns the first differing field (FIELD_*)
    ///         if `proveHeaderMismatch` with the same arguments would find one, reverts with the reason otherwise.
    /// @dev Rules, in order: checkpoint `seq` exists (Settlement_UnknownCheckpoint); the leaf is in its state tree
    ///      at the exchange leaf's index (DisputeGame_InvalidStateProof); one of depositCursor, forcedCursor,
    ///      withdrawalsRoot, withdrawalCount, withdrawalTotal differs between the stored checkpoint and the leaf
    ///      (DisputeGame_NoMismatch). Finality is the Settlement's to check (invalidateFrom).
    function checkHeaderMismatch(uint64 seq, ExchangeLeaf calldata exchange, bytes32[] calldata proof)
        external
        view
        returns (uint8 field);

    /// @notice The Settlement whose checkpoints this contract judges.
    function settlement() external view returns (address);

    /// @notice The verifier contract registered for batch records of `recordType` (address(0): none). Fixed at
    ///         construction; no record proof uses it yet (fraud-proof issue).
    function verifierOf(uint8 recordType) external view returns (address);
}

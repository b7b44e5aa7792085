// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDisputeGame} from "./interfaces/IDisputeGame.sol";
import {ISettlement} from "./interfaces/ISettlement.sol";
import {ExchangeLeaf, LeafIndex, LeafLib} from "./libraries/LeafLib.sol";
import {MerkleProofLib} from "./libraries/MerkleProofLib.sol";

/// @title DisputeGame
/// @notice Judges posted checkpoints for the Settlement (IDisputeGame). Today: the header-vs-state proof.
/// @dev Deployed after the Settlement, whose immutable `disputes` already names this contract's address (the
///      deployer precomputes it from its nonce); the constructor checks that. The verifier registry is set once
///      here and never changes: no key can swap a verifier and thereby invalidate honest checkpoints. Adding
///      verifiers means a new deployment (a new Settlement naming a new DisputeGame).
contract DisputeGame is IDisputeGame {
    /// @notice Field code of the header's depositCursor in HeaderMismatchProven.
    uint8 public constant FIELD_DEPOSIT_CURSOR = 1;
    /// @notice Field code of the header's forcedCursor.
    uint8 public constant FIELD_FORCED_CURSOR = 2;
    /// @notice Field code of the header's withdrawalsRoot.
    uint8 public constant FIELD_WITHDRAWALS_ROOT = 3;
    /// @notice Field code of the header's withdrawalCount.
    uint8 public constant FIELD_WITHDRAWAL_COUNT = 4;
    /// @notice Field code of the header's withdrawalTotal.
    uint8 public constant FIELD_WITHDRAWAL_TOTAL = 5;

    /// @inheritdoc IDisputeGame
    address public immutable settlement;

    /// @dev Verifier per batch-record type; fixed at construction.
    mapping(uint8 recordType => address verifier) private _verifiers;

    /// @param settlement_ The Settlement, whose `disputes()` must be this contract's address.
    /// @param recordTypes Batch record types that get a verifier (may be empty; no duplicates).
    /// @param verifiers Their verifier contracts, one per record type (each must hold code).
    constructor(address settlement_, uint8[] memory recordTypes, address[] memory verifiers) {
        if (recordTypes.length != verifiers.length) {
            revert DisputeGame_VerifierListMismatch(recordTypes.length, verifiers.length);
        }
        for (uint256 i; i < recordTypes.length; ++i) {
            uint8 recordType = recordTypes[i];
            address verifier = verifiers[i];
            if (verifier.code.length == 0) revert DisputeGame_VerifierNotContract(recordType, verifier);
            if (_verifiers[recordType] != address(0)) revert DisputeGame_DuplicateVerifier(recordType);
            _verifiers[recordType] = verifier;
        }
        // A mismatch would leave the Settlement with a dispute address nobody can call from: refuse to exist.
        // (A settlement_ without code reverts in the call itself.) Checked last: it is the only check that
        // depends on this contract's address, which a replay of a reverted deployment does not reproduce.
        address named = ISettlement(settlement_).disputes();
        if (named != address(this)) revert DisputeGame_NotSettlementsDisputes(settlement_, named);
        settlement = settlement_;
    }

    // ------------------------------------------------------------------ header vs. state

    /// @inheritdoc IDisputeGame
    function proveHeaderMismatch(uint64 seq, ExchangeLeaf calldata exchange, bytes32[] calldata proof) external {
        uint8 field = checkHeaderMismatch(seq, exchange, proof);
        _invalidate(seq);
        emit HeaderMismatchProven(seq, field, msg.sender);
    }

    /// @inheritdoc IDisputeGame
    function checkHeaderMismatch(uint64 seq, ExchangeLeaf calldata exchange, bytes32[] calldata proof)
        public
        view
        returns (uint8 field)
    {
        // 1. The checkpoint exists (the Settlement reverts Settlement_UnknownCheckpoint otherwise). Its stored
        //    copy holds every header field compared below, so no header needs to be re-supplied.
        ISettlement.Checkpoint memory cp = ISettlement(settlement).getCheckpoint(seq);
        // 2. The exchange leaf is the one in the checkpoint's own state (a malformed proof reverts inside).
        bytes32 leafHash = LeafLib.hash(exchange);
        uint256 index = LeafIndex.unwrap(LeafLib.EXCHANGE_INDEX);
        if (!MerkleProofLib.verify(cp.stateRoot, leafHash, index, proof, MerkleProofLib.STATE_TREE_DEPTH)) {
            revert DisputeGame_InvalidStateProof(seq, cp.stateRoot);
        }
        // 3. The header's copies of the leaf's fields differ from it somewhere (the first difference is reported).
        if (cp.depositCursor != exchange.depositCursor) return FIELD_DEPOSIT_CURSOR;
        if (cp.forcedCursor != exchange.forcedCursor) return FIELD_FORCED_CURSOR;
        if (cp.withdrawalsRoot != exchange.withdrawalsRoot) return FIELD_WITHDRAWALS_ROOT;
        if (cp.withdrawalCount != exchange.withdrawalCount) return FIELD_WITHDRAWAL_COUNT;
        if (cp.withdrawalTotal != exchange.withdrawalTotal) return FIELD_WITHDRAWAL_TOTAL;
        revert DisputeGame_NoMismatch(seq);
    }

    // ------------------------------------------------------------------ verdict

    /// @dev The single place a proven dispute takes effect: the Settlement invalidates `seq` and every later
    ///      checkpoint (reverting if `seq` is already final). The fraud-proof issue hooks in here: slash the
    ///      operator's bond and reward the challenger. State of this contract must change before this call.
    function _invalidate(uint64 seq) private {
        ISettlement(settlement).invalidateFrom(seq);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IDisputeGame
    function verifierOf(uint8 recordType) external view returns (address) {
        return _verifiers[recordType];
    }
}

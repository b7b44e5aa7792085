// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {CheckpointHeader} from "../libraries/CheckpointLib.sol";

/// @title ISettlement
/// @notice Settlement checkpoints of the isoperp exchange: a bonded operator posts state roots with their
///         batch data; a checkpoint finalizes after the challenge window; every withdrawal is a leaf of one
///         global append-only withdrawals tree and is claimable once, with a Merkle proof against the
///         withdrawals root of any finalized checkpoint that holds it.
///         The escape hatch (forced requests, freeze, escapes) is a separate contract the Settlement creates
///         (`escapeHatch`, IEscapeHatch); the Settlement reads its forced queue for post rules 7-9 and its
///         freeze time: nothing is posted after the freeze and nothing finalizes after it.
///         The Settlement never judges a root: the dispute contract (`disputes`, IDisputeGame) does, and may
///         invalidate a pending checkpoint with every later one (`invalidateFrom`); the chain then continues from
///         the checkpoint before it. The operator's bond stays while any checkpoint is pending.
/// @dev Formats are specified in docs/PROTOCOL.md (section 4). Finality is evaluated lazily.
interface ISettlement {
    /// @notice What the contract stores per checkpoint.
    /// @param checkpointHash keccak256(abi.encode(header)).
    /// @param stateRoot Root of the state tree after the batch.
    /// @param withdrawalsRoot Root of the global withdrawals tree after the batch (the exchange leaf's).
    /// @param withdrawalCount Number of leaves in that tree, cumulative since genesis (the exchange leaf's).
    /// @param depositCursor Deposits [0, depositCursor) are included in the state.
    /// @param forcedCursor Forced requests served so far.
    /// @param timestamp The batch's system time.
    /// @param postedAt Block timestamp of the post (the challenge window starts here).
    /// @param withdrawalTotal Sum of the amounts of those leaves, cumulative since genesis (the exchange leaf's).
    struct Checkpoint {
        bytes32 checkpointHash;
        bytes32 stateRoot;
        bytes32 withdrawalsRoot;
        uint64 withdrawalCount;
        uint64 depositCursor;
        uint64 forcedCursor;
        uint64 timestamp;
        uint64 postedAt;
        uint128 withdrawalTotal;
    }

    /// @notice The protocol's periods, in seconds, as the constructor takes them (docs/PROTOCOL.md, section 5).
    /// @param challengeWindow Between a post and its finality.
    /// @param forcedDeadline For serving a forced request or consuming a deposit; below the challenge window.
    /// @param livenessTimeout Without a newly finalized checkpoint before anyone may freeze; above the window.
    /// @param claimWindow After a freeze, during which escapes register their claims.
    struct Periods {
        uint64 challengeWindow;
        uint64 forcedDeadline;
        uint64 livenessTimeout;
        uint64 claimWindow;
    }

    /// @notice The genesis state's market leaves, emitted once by the constructor so that anyone with an RPC
    ///         endpoint and this contract's address can rebuild the genesis state from L1 alone: these leaves, the
    ///         insurance account leaf and the exchange leaf of zeros (PROTOCOL §2 "Genesis"). The contract does not
    ///         check them; a reader rebuilds the state and compares its root with `stateRoot`.
    /// @param stateRoot The genesis state root (`getCheckpoint(0).stateRoot`).
    /// @param marketLeaves The abi-encoded market leaves (leaf type 3, 15 words each), as the deployer listed them.
    /// @param symbols Display symbols of those markets, one per leaf (not part of the state).
    event GenesisMarketsListed(bytes32 indexed stateRoot, bytes[] marketLeaves, string[] symbols);
    /// @notice The operator added to its bond.
    event BondPosted(address indexed operator, uint256 amount, uint256 bond);
    /// @notice The operator took bond above the minimum back.
    event BondWithdrawn(address indexed operator, uint256 amount, uint256 bond);
    /// @notice A checkpoint was accepted; its batch data is in this transaction's calldata.
    /// @param seq Sequence number.
    /// @param checkpointHash keccak256(abi.encode(header)).
    /// @param stateRoot The new state root.
    /// @param withdrawalsRoot Root of the batch's withdrawals.
    /// @param depositCursor Deposits included so far.
    /// @param finalizesAt Earliest block timestamp at which the checkpoint is final.
    event CheckpointPosted(
        uint64 indexed seq,
        bytes32 indexed checkpointHash,
        bytes32 stateRoot,
        bytes32 withdrawalsRoot,
        uint64 depositCursor,
        uint64 finalizesAt
    );
    /// @notice The dispute contract invalidated checkpoints [fromSeq, previousLatest]: the latest checkpoint is now
    ///         fromSeq - 1 and the next post has sequence number fromSeq again. Forced requests and deposits those
    ///         checkpoints served count as unserved again, with their original times.
    /// @param fromSeq The first invalidated checkpoint (pending, > 0).
    /// @param previousLatest The latest checkpoint before the invalidation (>= fromSeq).
    event CheckpointsInvalidated(uint64 indexed fromSeq, uint64 previousLatest);
    /// @notice A withdrawal of a finalized checkpoint was paid.
    event WithdrawalClaimed(
        uint64 indexed seq, uint32 indexed index, uint32 accountId, address indexed recipient, uint128 amount
    );

    /// @notice Only the operator may call this.
    error Settlement_NotOperator(address caller);
    /// @notice The operator's bond is below the minimum.
    error Settlement_BondTooLow(uint256 bond, uint256 minimum);
    /// @notice Zero-value bond post or withdrawal.
    error Settlement_ZeroAmount();
    /// @notice Withdrawing this much would leave the bond below the minimum.
    error Settlement_BondLocked(uint256 requested, uint256 withdrawable);
    /// @notice No bond leaves while a posted checkpoint is pending (a fraud proof against it slashes the bond).
    /// @param latestSeq The latest posted checkpoint.
    /// @param lastFinalizedSeq The latest final one (< latestSeq).
    error Settlement_CheckpointsPending(uint64 latestSeq, uint64 lastFinalizedSeq);
    /// @notice Only the dispute contract may call this.
    error Settlement_NotDisputes(address caller);
    /// @notice The checkpoint is final (its challenge window has passed, before the freeze if frozen; genesis is
    ///         final from the start): it can no longer be invalidated.
    error Settlement_CheckpointFinal(uint64 seq, uint64 finalizedAt);
    /// @notice Sending ETH to the operator failed.
    error Settlement_TransferFailed();
    /// @notice Constructor address parameter invalid: a token without code, a zero operator, oracle or disputes.
    error Settlement_InvalidParameter();
    /// @notice The challenge window is 0 or longer than MAX_CHALLENGE_WINDOW.
    error Settlement_ChallengeWindowOutOfRange(uint64 challengeWindow, uint64 maximum);
    /// @notice The forced deadline is 0 or longer than MAX_TIMEOUT.
    error Settlement_ForcedDeadlineOutOfRange(uint64 forcedDeadline, uint64 maximum);
    /// @notice The liveness timeout is 0 or longer than MAX_TIMEOUT.
    error Settlement_LivenessTimeoutOutOfRange(uint64 livenessTimeout, uint64 maximum);
    /// @notice The claim window is 0 or longer than MAX_TIMEOUT.
    error Settlement_ClaimWindowOutOfRange(uint64 claimWindow, uint64 maximum);
    /// @notice forcedDeadline must be below challengeWindow: a user who files a forced request when a bad
    ///         checkpoint appears must be able to freeze before that checkpoint finalizes.
    error Settlement_ForcedDeadlineNotBelowChallengeWindow(uint64 forcedDeadline, uint64 challengeWindow);
    /// @notice livenessTimeout must exceed challengeWindow: an honest operator that posts regularly is never
    ///         freezable for liveness (a checkpoint needs challengeWindow to finalize).
    error Settlement_LivenessTimeoutNotAboveChallengeWindow(uint64 livenessTimeout, uint64 challengeWindow);
    /// @notice The header's sequence number is not the next one.
    error Settlement_WrongSequence(uint64 expected, uint64 got);
    /// @notice The header does not chain onto the latest checkpoint.
    error Settlement_WrongPrevHash(bytes32 expected, bytes32 got);
    /// @notice The deposit cursor went backwards or beyond the queue.
    error Settlement_DepositCursorOutOfRange(uint64 previous, uint64 got, uint64 queueLength);
    /// @notice The deposit prefix hash does not match the vault's queue at the cursor.
    error Settlement_DepositPrefixMismatch(bytes32 expected, bytes32 got);
    /// @notice The forced-request prefix hash does not match the queue at the forced cursor.
    error Settlement_ForcedPrefixMismatch(bytes32 expected, bytes32 got);
    /// @notice The forced cursor went backwards or beyond the forced-request queue.
    error Settlement_ForcedCursorOutOfRange(uint64 previous, uint64 got, uint64 queueLength);
    /// @notice The chunk-hash commitment of batchData (BatchLib.hash) differs from the header's batchHash.
    error Settlement_BatchHashMismatch(bytes32 expected, bytes32 got);
    /// @notice The batch data is shorter than its own 5-byte header (version, record count).
    error Settlement_BatchTooShort(uint256 length);
    /// @notice The batch data's version byte is not the protocol version.
    error Settlement_BatchVersionMismatch(uint8 expected, uint8 got);
    /// @notice The batch data's record count differs from the header's recordCount.
    error Settlement_RecordCountMismatch(uint32 inData, uint32 inHeader);
    /// @notice The header's batchLength is not the length of the posted batch data.
    error Settlement_BatchLengthMismatch(uint256 length, uint32 batchLength);
    /// @notice The header's recordCount exceeds the trace tree's capacity (MAX_BATCH_RECORDS).
    error Settlement_TooManyRecords(uint32 count, uint256 maximum);
    /// @notice The batch data is larger than MAX_BATCH_BYTES.
    error Settlement_BatchTooLarge(uint256 length, uint256 maximum);
    /// @notice The withdrawal count exceeds the withdrawals tree's capacity.
    error Settlement_TooManyWithdrawals(uint64 count, uint256 maximum);
    /// @notice The header's cumulative withdrawal count or total is below the previous checkpoint's: the
    ///         withdrawals tree is append-only.
    error Settlement_WithdrawalsShrank(uint64 previousCount, uint64 count, uint128 previousTotal, uint128 total);
    /// @notice The header's timestamp is before the previous checkpoint's or in the future.
    error Settlement_BadTimestamp(uint64 timestamp, uint64 previous, uint256 blockTimestamp);
    /// @notice No checkpoint with this sequence number.
    error Settlement_UnknownCheckpoint(uint64 seq);
    /// @notice The checkpoint is still inside its challenge window.
    error Settlement_NotFinalized(uint64 seq, uint64 finalizesAt);
    /// @notice The withdrawal index is not below the checkpoint's (cumulative) withdrawal count.
    error Settlement_WithdrawalIndexOutOfRange(uint32 index, uint64 count);
    /// @notice This withdrawal (global index) was already claimed, through whichever checkpoint.
    error Settlement_AlreadyClaimed(uint32 index);
    /// @notice The Merkle proof does not lead to the checkpoint's withdrawals root.
    error Settlement_InvalidProof();
    /// @notice The exchange is frozen (the escape hatch's freeze): nothing is posted.
    error Settlement_Frozen();
    /// @notice The escape hatch was not created at the address the vault was told (cannot happen: CREATE
    ///         addresses follow the creator's nonce).
    error Settlement_HatchAddressMismatch(address predicted, address created);
    /// @notice The checkpoint leaves a forced request unserved past its deadline.
    /// @param index The oldest unserved request.
    /// @param deadline Its deadline (timestamp + forcedDeadline), not after the current block time.
    error Settlement_ForcedRequestOverdue(uint64 index, uint64 deadline);

    /// @notice Adds msg.value to the operator's bond. Operator only.
    function postBond() external payable;

    /// @notice Sends `amount` of bond above the minimum back to the operator. Operator only, and only while every
    ///         posted checkpoint is final (Settlement_CheckpointsPending otherwise).
    function withdrawBond(uint256 amount) external;

    /// @notice Invalidates checkpoint `seq` and every later one: the latest checkpoint becomes `seq - 1`, and the
    ///         next post has sequence number `seq` and chains onto checkpoint `seq - 1` (post rules 3-4). Only the
    ///         dispute contract (`disputes`) calls this, after it proved checkpoint `seq` wrong. O(1) gas however
    ///         many checkpoints follow `seq`: only the stored latest sequence number changes.
    /// @dev Rules, in order: caller is `disputes` (Settlement_NotDisputes); checkpoint `seq` exists
    ///      (Settlement_UnknownCheckpoint: seq > latestSeq, including invalidated ones); it is not final at the
    ///      Settlement's clock (block time, or the freeze time once frozen) (Settlement_CheckpointFinal; covers
    ///      genesis). Emits CheckpointsInvalidated(seq, previous latestSeq). Since the escape hatch reads the
    ///      latest checkpoint's cursors through views, forced requests and deposits that only the invalidated
    ///      checkpoints served are unserved again, with their original deadlines.
    /// @param seq The first checkpoint to invalidate.
    function invalidateFrom(uint64 seq) external;

    /// @notice Posts the next checkpoint. Operator only, bond at least the minimum.
    /// @param header The checkpoint header (docs/PROTOCOL.md, section 4).
    /// @param batchData The batch data (version 2: records, each followed by its stateRootAfter); its length must
    ///        equal header.batchLength and its chunk-hash commitment (BatchLib.hash) header.batchHash.
    function postCheckpoint(CheckpointHeader calldata header, bytes calldata batchData) external;

    /// @notice Pays withdrawal `index` of the global withdrawals tree to its recipient, proven against finalized
    ///         checkpoint `seq`. Anyone may call; once per leaf, whichever finalized checkpoint proves it.
    /// @dev Runs `checkWithdrawal`, marks the leaf claimed, then has the vault pay `recipient`, then emits.
    ///      A proof that is not exactly WITHDRAWAL_TREE_DEPTH long reverts with MerkleProofLib's
    ///      MerkleProof_WrongLength.
    /// @param seq Sequence number of a finalized checkpoint whose withdrawalCount is above `index`.
    /// @param index Global leaf index in the withdrawals tree.
    /// @param accountId The withdrawing account.
    /// @param recipient Who receives the tokens.
    /// @param amount Token amount.
    /// @param proof Exactly WITHDRAWAL_TREE_DEPTH sibling hashes, bottom-up.
    function claimWithdrawal(
        uint64 seq,
        uint32 index,
        uint32 accountId,
        address recipient,
        uint128 amount,
        bytes32[] calldata proof
    ) external;

    /// @notice Side-effect-free check of a withdrawal claim: returns if `claimWithdrawal` with the same
    ///         arguments would pay, reverts with the reason otherwise.
    /// @dev Rules, in order: the checkpoint exists; it is finalized; index < its (cumulative) withdrawalCount;
    ///      the leaf `index` is not claimed (through any checkpoint); the proof leads from
    ///      keccak256(0x00 ‖ abi.encode(accountId, recipient, amount)) at `index` to its withdrawals root.
    function checkWithdrawal(
        uint64 seq,
        uint32 index,
        uint32 accountId,
        address recipient,
        uint128 amount,
        bytes32[] calldata proof
    ) external view;

    /// @notice The operator address.
    function operator() external view returns (address);
    /// @notice The operator's current bond, in wei.
    function bond() external view returns (uint256);
    /// @notice The minimum bond required to post.
    function minBond() external view returns (uint256);
    /// @notice The challenge window in seconds.
    function challengeWindow() external view returns (uint64);
    /// @notice The collateral vault created by this contract.
    function vault() external view returns (address);
    /// @notice The escape hatch created by this contract (forced requests, freeze, escapes).
    function escapeHatch() external view returns (address);
    /// @notice Sequence number of the latest checkpoint (0 = only genesis).
    function latestSeq() external view returns (uint64);
    /// @notice Sequence number of the latest finalized checkpoint.
    function lastFinalizedSeq() external view returns (uint64);
    /// @notice The stored checkpoint `seq`.
    function getCheckpoint(uint64 seq) external view returns (Checkpoint memory);
    /// @notice Whether checkpoint `seq` exists and its challenge window has passed.
    function isFinalized(uint64 seq) external view returns (bool);
    /// @notice Block timestamp at which checkpoint `seq` finalizes.
    function finalizesAt(uint64 seq) external view returns (uint64);
    /// @notice Whether withdrawal `index` (global index in the withdrawals tree) was claimed.
    function isClaimed(uint32 index) external view returns (bool);
    /// @notice The cumulative withdrawal total of checkpoint `seq`: the sum of every withdrawal-tree leaf
    ///         appended up to its batch (the escape pool's "finalized withdrawals" at the frozen checkpoint).
    function cumulativeWithdrawalTotal(uint64 seq) external view returns (uint128);
    /// @notice The EIP-712 domain separator for signed requests (docs/PROTOCOL.md, section 3.1).
    function domainSeparator() external view returns (bytes32);
    /// @notice The dispute contract (IDisputeGame), the only address that may invalidate checkpoints.
    function disputes() external view returns (address);
    /// @notice The oracle whose signed prices the fraud-proof phase checks (stored, not used yet).
    function oracle() external view returns (address);
    /// @notice Seconds the operator has to serve a forced request (post rule 9; also the deposit deadline).
    function forcedDeadline() external view returns (uint64);
    /// @notice Sum of the amounts of every withdrawal claimed so far.
    function withdrawalsClaimed() external view returns (uint128);
}

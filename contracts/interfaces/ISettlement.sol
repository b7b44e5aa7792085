// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {CheckpointHeader} from "../libraries/CheckpointLib.sol";
import {AccountLeaf, MarketLeaf, PositionLeaf} from "../libraries/LeafLib.sol";

/// @title ISettlement
/// @notice Settlement checkpoints of the isoperp exchange: a bonded operator posts state roots with their
///         batch data; a checkpoint finalizes after the challenge window; every withdrawal is a leaf of one
///         global append-only withdrawals tree and is claimable once, with a Merkle proof against the
///         withdrawals root of any finalized checkpoint that holds it.
///         The escape hatch: users queue forced requests on-chain that the operator must serve before a
///         deadline; past it (or when nothing finalizes for the liveness timeout) anyone freezes the exchange
///         for good, and everyone escapes with Merkle proofs against the last finalized state root.
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
    /// @param claimsTotal What every account and position of this state is worth in an escape (the
    ///        haircut's denominator; docs/PROTOCOL.md section 4).
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
        uint128 claimsTotal;
    }

    /// @notice One isolated position to escape: its leaf and state-tree proof. Its market must have been
    ///         proven with `proveMarket`.
    /// @param position The position leaf.
    /// @param proof Its STATE_TREE_DEPTH sibling hashes, bottom-up.
    struct PositionWitness {
        PositionLeaf position;
        bytes32[] proof;
    }

    /// @notice What escapes need of a market leaf of the escape checkpoint, cached by `proveMarket`.
    /// @param markPrice The mark price positions are valued at.
    /// @param fundingIndex The funding index unpaid funding is settled against.
    /// @param notionalExp The market's notional exponent.
    /// @param proven Whether the market leaf was proven.
    struct EscapeMarket {
        uint64 markPrice;
        int128 fundingIndex;
        int8 notionalExp;
        bool proven;
    }

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
    /// @notice A withdrawal of a finalized checkpoint was paid.
    event WithdrawalClaimed(
        uint64 indexed seq, uint32 indexed index, uint32 accountId, address indexed recipient, uint128 amount
    );
    /// @notice A forced request entered the queue. The fields are the queue entry (docs/PROTOCOL.md, section 4).
    /// @param index Position in the forced-request queue (0-based).
    /// @param kind FORCED_WITHDRAWAL (1) or FORCED_EXIT (2).
    /// @param requester Who asked (and paid the fee); the ledger serves it only if this is the account's owner.
    /// @param accountId The account.
    /// @param marketId The market of a forced exit; 0 for a forced withdrawal.
    /// @param amount The amount of a forced withdrawal; 0 for a forced exit.
    /// @param timestamp Block timestamp of the request; it must be served before timestamp + forcedDeadline.
    /// @param prefixHash The queue's prefix hash after this entry (r_{index+1}).
    event ForcedRequested(
        uint64 indexed index,
        uint8 kind,
        address indexed requester,
        uint32 indexed accountId,
        uint16 marketId,
        uint128 amount,
        uint64 timestamp,
        bytes32 prefixHash
    );
    /// @notice The exchange froze for good; escapes use the state root of checkpoint `seq`.
    /// @param by Who called `freeze`.
    /// @param reason FREEZE_FORCED_REQUEST_OVERDUE (1) or FREEZE_LIVENESS (2).
    /// @param seq The last finalized checkpoint at the freeze (the escape checkpoint).
    event Frozen(address indexed by, uint8 reason, uint64 indexed seq);
    /// @notice At the freeze, the escape pool was fixed (docs/PROTOCOL.md, section 4).
    /// @param pool Tokens available to escapes: vault balance - unclaimed finalized withdrawals - refundable
    ///        deposits (0 if negative).
    /// @param claimsTotal The escape checkpoint's claimsTotal, the haircut's denominator.
    event EscapePoolFixed(uint128 pool, uint128 claimsTotal);
    /// @notice A market leaf of the escape checkpoint was proven; its positions can escape.
    event MarketProven(uint16 indexed marketId, uint64 markPrice, int128 fundingIndex, int8 notionalExp);
    /// @notice An account leaf was escaped: its free collateral (after the haircut) credited to its owner.
    event AccountEscaped(uint32 indexed accountId, address indexed owner, uint256 value, uint256 payout);
    /// @notice A position leaf was escaped: its value (after the haircut) credited to the account's owner.
    event PositionEscaped(
        uint32 indexed accountId, uint16 indexed marketId, address indexed owner, uint256 value, uint256 payout
    );
    /// @notice A deposit the escape checkpoint never included was credited back to its owner.
    event DepositRefunded(uint64 indexed index, address indexed owner, uint128 amount);
    /// @notice An owner withdrew its escape balance (escapes and refunds).
    event EscapeWithdrawn(address indexed owner, uint256 amount);

    /// @notice Only the operator may call this.
    error Settlement_NotOperator(address caller);
    /// @notice The operator's bond is below the minimum.
    error Settlement_BondTooLow(uint256 bond, uint256 minimum);
    /// @notice Zero-value bond post or withdrawal.
    error Settlement_ZeroAmount();
    /// @notice Withdrawing this much would leave the bond below the minimum.
    error Settlement_BondLocked(uint256 requested, uint256 withdrawable);
    /// @notice Sending ETH to the operator failed.
    error Settlement_TransferFailed();
    /// @notice Constructor parameter out of range.
    error Settlement_InvalidParameter();
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
    /// @notice keccak256(batchData) differs from the header's batchHash.
    error Settlement_BatchHashMismatch(bytes32 expected, bytes32 got);
    /// @notice The batch data is larger than MAX_BATCH_BYTES.
    error Settlement_BatchTooLarge(uint256 length, uint256 maximum);
    /// @notice The withdrawal count exceeds the withdrawals tree's capacity.
    error Settlement_TooManyWithdrawals(uint32 count, uint256 maximum);
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
    /// @notice The exchange is frozen: nothing is posted, requested or frozen again.
    error Settlement_Frozen();
    /// @notice Escapes and refunds exist only after a freeze.
    error Settlement_NotFrozen();
    /// @notice Neither freeze condition holds yet.
    /// @param forcedAt When the oldest unserved forced request becomes overdue (type(uint64).max if none).
    /// @param livenessAt When the liveness timeout expires.
    error Settlement_FreezeNotAllowed(uint64 forcedAt, uint64 livenessAt);
    /// @notice msg.value differs from the forced-request fee.
    error Settlement_WrongFee(uint256 paid, uint256 required);
    /// @notice The requester already has an unserved request of this kind for this account (and market).
    /// @param index That request's queue index.
    error Settlement_ForcedRequestPending(uint64 index);
    /// @notice The checkpoint leaves a forced request unserved past its deadline.
    /// @param index The oldest unserved request.
    /// @param deadline Its deadline (timestamp + forcedDeadline), not after the current block time.
    error Settlement_ForcedRequestOverdue(uint64 index, uint64 deadline);
    /// @notice No forced request with this index.
    error Settlement_UnknownForcedRequest(uint64 index, uint64 count);
    /// @notice The leaf is not in the escape checkpoint's state tree at this index.
    /// @param index The state-tree index the leaf was proven at.
    /// @param root The escape root it was checked against.
    error Settlement_InvalidStateProof(uint32 index, bytes32 root);
    /// @notice This state-tree leaf was escaped before.
    error Settlement_AlreadyEscaped(uint32 index);
    /// @notice The account leaf's owner is the zero address (the insurance account): nothing to escape.
    error Settlement_NoOwner(uint32 accountId);
    /// @notice A position witness belongs to another account than the account leaf.
    error Settlement_AccountMismatch(uint32 accountId, uint32 positionAccountId);
    /// @notice This market leaf was proven before.
    error Settlement_MarketAlreadyProven(uint16 marketId);
    /// @notice A position's market has not been proven with `proveMarket` yet.
    error Settlement_MarketNotProven(uint16 marketId);
    /// @notice Paying this escape would take the escapes' total beyond the pool (an inconsistent claimsTotal).
    error Settlement_EscapePoolExceeded(uint256 payout, uint256 remaining);
    /// @notice The deposit is in the escape checkpoint's state (index < its depositCursor): it escapes as
    ///         collateral, it is not refunded.
    error Settlement_DepositIncluded(uint64 index, uint64 depositCursor);
    /// @notice No deposit with this index.
    error Settlement_UnknownDeposit(uint64 index, uint64 count);
    /// @notice The deposit data does not match the vault's queue entry.
    /// @param expected The vault's prefix hash after the entry.
    /// @param got The hash of the data supplied.
    error Settlement_DepositMismatch(bytes32 expected, bytes32 got);
    /// @notice This deposit was refunded before.
    error Settlement_AlreadyRefunded(uint64 index);
    /// @notice The caller has no escape balance.
    error Settlement_NothingToWithdraw();

    /// @notice Adds msg.value to the operator's bond. Operator only.
    function postBond() external payable;

    /// @notice Sends `amount` of bond above the minimum back to the operator. Operator only.
    function withdrawBond(uint256 amount) external;

    /// @notice Posts the next checkpoint. Operator only, bond at least the minimum.
    /// @param header The checkpoint header (docs/PROTOCOL.md, section 4).
    /// @param batchData The batch data; its keccak256 must equal header.batchHash.
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

    /// @notice Queues a forced withdrawal of `amount` free collateral of `accountId` to its owner.
    /// @dev Payable with exactly `forcedRequestFee`, which is added to the operator's bond (compensation for
    ///      serving it; the fee also prices queue spam). One unserved request per (requester, account) at a
    ///      time. The contract does not know account owners: the ledger serves a request whose requester is not
    ///      the owner (or that cannot be executed) as a no-op that still advances the forced cursor.
    /// @return index The request's queue index.
    function requestForcedWithdrawal(uint32 accountId, uint128 amount) external payable returns (uint64 index);

    /// @notice Queues a forced exit: the ledger closes `accountId`'s isolated position in `marketId`.
    /// @dev Same fee, pending and ownership rules as requestForcedWithdrawal; one unserved request per
    ///      (requester, account, market).
    /// @return index The request's queue index.
    function requestForcedExit(uint32 accountId, uint16 marketId) external payable returns (uint64 index);

    /// @notice Freezes the exchange for good. Anyone may call, once either condition holds: the oldest forced
    ///         request the latest checkpoint did not serve reached its deadline (timestamp + forcedDeadline <=
    ///         now), or nothing finalized for the liveness timeout (finalizesAt(lastFinalizedSeq) +
    ///         livenessTimeout <= now).
    /// @dev Records the freeze time and the escape checkpoint (lastFinalizedSeq at that moment), and fixes the
    ///      escape pool. From then on no checkpoint is posted and none finalizes.
    function freeze() external;

    /// @notice Proves a market leaf of the escape checkpoint and caches what escapes value positions with
    ///         (mark price, funding index, notional exponent). Anyone may call; once per market. Positions
    ///         of a market escape only after this.
    function proveMarket(MarketLeaf calldata market, bytes32[] calldata proof) external;

    /// @notice Escapes an account of the escape checkpoint: its account leaf (free collateral) unless escaped
    ///         before, and the listed isolated positions, each worth max(0, quote - unpaid funding + notional
    ///         at the market's mark price) (EscapeLib). The total, after the haircut, is credited to the owner
    ///         named by the account leaf (withdrawn with `withdrawEscaped`). Anyone may call.
    /// @dev Each state-tree leaf escapes once: the account leaf with the first call for the account, each
    ///      position leaf when listed. A call that would escape nothing (account escaped, no positions)
    ///      reverts Settlement_AlreadyEscaped. The account leaf is proven on every call (a position leaf has
    ///      no owner).
    /// @param account The account leaf.
    /// @param proof Its STATE_TREE_DEPTH sibling hashes, bottom-up.
    /// @param positions Positions of this account, each with its proof; their markets proven.
    /// @return payout The total credited.
    function escape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        returns (uint256 payout);

    /// @notice Refunds a deposit the escape checkpoint never included (index >= its depositCursor), in full, to
    ///         the owner's escape balance. Anyone may call; once per deposit. The arguments are the vault's
    ///         queue entry (its Deposited event).
    function refundDeposit(uint64 index, address owner, uint128 amount, uint64 timestamp) external;

    /// @notice Pays the caller its escape balance (escapes and refunds credited to it).
    /// @dev Pull payment: the balance is zeroed before the vault transfers, and a transfer that fails leaves it
    ///      intact for a later call.
    function withdrawEscaped() external;

    /// @notice Side-effect-free check of `escape` with the same arguments: reverts with the reason it would
    ///         fail, else returns the total value it would escape and the total payout it would credit.
    /// @dev Rules, in order: frozen; accountId < 2^24 and the account proof leads to the escape root; the
    ///      owner is not the zero address; the account leaf's payout is within the pool; the call escapes
    ///      something; then per position: it is the account's; marketId < 64; not escaped before (nor listed
    ///      twice); its market was proven; the proof leads to the escape root; its value fits an int256
    ///      (EscapeLib_Overflow); its payout is within the pool.
    function checkEscape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        view
        returns (uint256 value, uint256 payout);

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
    /// @notice Number of forced requests ever queued.
    function forcedRequestCount() external view returns (uint64);
    /// @notice Block timestamp of forced request `index`; its deadline is this + forcedDeadline.
    function forcedRequestedAt(uint64 index) external view returns (uint64);
    /// @notice The forced-request queue's prefix hash after the first `cursor` requests (0 for cursor 0).
    function forcedPrefixHash(uint64 cursor) external view returns (bytes32);
    /// @notice The EIP-712 domain separator for signed requests (docs/PROTOCOL.md, section 3.1).
    function domainSeparator() external view returns (bytes32);
    /// @notice The oracle whose signed prices the fraud-proof phase checks (stored, not used yet).
    function oracle() external view returns (address);
    /// @notice Seconds the operator has to serve a forced request.
    function forcedDeadline() external view returns (uint64);
    /// @notice Seconds without a newly finalized checkpoint after which anyone may freeze.
    function livenessTimeout() external view returns (uint64);
    /// @notice The fee (wei) a forced request pays, added to the operator's bond.
    function forcedRequestFee() external view returns (uint256);
    /// @notice Sum of the amounts of every withdrawal claimed so far.
    function withdrawalsClaimed() external view returns (uint128);
    /// @notice Whether the exchange is frozen.
    function isFrozen() external view returns (bool);
    /// @notice Block timestamp of the freeze (0 while not frozen).
    function frozenAt() external view returns (uint64);
    /// @notice The escape checkpoint: lastFinalizedSeq at the freeze. Reverts Settlement_NotFrozen before.
    function frozenSeq() external view returns (uint64);
    /// @notice Earliest times `freeze` succeeds: for the oldest forced request the latest checkpoint did not
    ///         serve (type(uint64).max if none), and for the liveness timeout.
    function freezableAt() external view returns (uint64 forcedAt, uint64 livenessAt);
    /// @notice The escape pool fixed at the freeze, how much of it escapes credited, and the haircut's
    ///         denominator (all 0 before the freeze).
    function escapePool() external view returns (uint128 pool, uint128 paid, uint128 claimsTotal);
    /// @notice Whether state-tree leaf `index` was escaped (only account and position leaves escape).
    function isEscaped(uint32 index) external view returns (bool);
    /// @notice The cached market data of `marketId` (`proven` false until `proveMarket`).
    function escapeMarket(uint16 marketId) external view returns (EscapeMarket memory);
    /// @notice Whether deposit `index` was refunded.
    function isRefunded(uint64 index) external view returns (bool);
    /// @notice Tokens credited to `owner` by escapes and refunds, not yet withdrawn.
    function escapeBalance(address owner) external view returns (uint256);
}

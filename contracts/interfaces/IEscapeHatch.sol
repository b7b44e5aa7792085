// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccountLeaf, MarketLeaf, PositionLeaf} from "../libraries/LeafLib.sol";

/// @title IEscapeHatch
/// @notice The escape hatch of the isoperp exchange: users queue forced requests on-chain that the operator must
///         serve before a deadline; past it, when a deposit stays unincluded past the same deadline, or when
///         nothing finalizes for the liveness timeout, anyone freezes the exchange for good. After the freeze
///         everyone registers what the last finalized state owes them (Merkle proofs against its state root)
///         during the claim window; after the window each registered claim is paid from the escape pool, in
///         full when the pool covers every registered claim, else pro rata. No operator-written number enters
///         the payout.
/// @dev Created by the Settlement contract, whose checkpoints it reads (latestSeq, lastFinalizedSeq,
///      getCheckpoint, withdrawalsClaimed, cumulativeWithdrawalTotal); the Settlement reads the forced queue
///      (post rules 7-9) and `frozenAt` (post rule 0; finality stops at the freeze) from here.
///      docs/PROTOCOL.md, section 4.
interface IEscapeHatch {
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
    /// @notice The operator took the forced-request fees accrued so far.
    /// @param to Who received them.
    /// @param amount Wei sent.
    event ForcedFeesWithdrawn(address indexed to, uint256 amount);
    /// @notice The exchange froze for good; escapes use the state root of checkpoint `seq`.
    /// @param by Who froze it.
    /// @param reason FREEZE_FORCED_REQUEST_OVERDUE (1), FREEZE_LIVENESS (2) or FREEZE_DEPOSIT_OVERDUE (3).
    /// @param seq The last finalized checkpoint at the freeze (the escape checkpoint).
    event Frozen(address indexed by, uint8 reason, uint64 indexed seq);
    /// @notice At the freeze, the escape pool was fixed (docs/PROTOCOL.md, section 4).
    /// @param pool Tokens available to escapes: vault balance - unclaimed finalized withdrawals - unincluded
    ///        deposits (0 if negative).
    /// @param claimWindowEnd Registration closes at this block time (frozenAt + claimWindow).
    event EscapePoolFixed(uint128 pool, uint64 claimWindowEnd);
    /// @notice A market leaf of the escape checkpoint was proven; its positions can escape.
    event MarketProven(uint16 indexed marketId, uint64 markPrice, int128 fundingIndex, int8 notionalExp);
    /// @notice An account leaf was escaped: its free collateral is part of the owner's claim.
    event AccountEscaped(uint32 indexed accountId, address indexed owner, uint256 value);
    /// @notice A position leaf was escaped: its value is part of the account owner's claim.
    event PositionEscaped(uint32 indexed accountId, uint16 indexed marketId, address indexed owner, uint256 value);
    /// @notice An escape during the claim window registered `value` for `owner`.
    /// @param registeredTotal The sum of every registered claim after this one.
    event ClaimRegistered(address indexed owner, uint256 value, uint256 registeredTotal);
    /// @notice An escape after the claim window was paid from the residual, first come first served.
    /// @param value What the escaped leaves are worth.
    /// @param credited What the residual paid (<= value), withdrawable at once.
    event LateEscapeCredited(address indexed owner, uint256 value, uint256 credited);
    /// @notice A deposit the escape checkpoint never included was credited back to its owner, in full.
    event DepositRefunded(uint64 indexed index, address indexed owner, uint128 amount);
    /// @notice An owner withdrew what the hatch owed it (refunds, late credits, its registered claim's payout).
    event EscapeWithdrawn(address indexed owner, address indexed to, uint256 amount);
    /// @notice The operator swept the residual of the pool; late escapes ended.
    event ResidualSwept(address indexed to, uint256 amount);

    /// @notice Only the operator may call this.
    error EscapeHatch_NotOperator(address caller);
    /// @notice The exchange is frozen: nothing is requested or frozen again.
    error EscapeHatch_Frozen();
    /// @notice Escapes, refunds and withdrawals exist only after a freeze.
    error EscapeHatch_NotFrozen();
    /// @notice A forced withdrawal of zero.
    error EscapeHatch_ZeroAmount();
    /// @notice msg.value differs from the forced-request fee.
    error EscapeHatch_WrongFee(uint256 paid, uint256 required);
    /// @notice The requester already has an unserved request of this kind for this account (and market).
    /// @param index That request's queue index.
    error EscapeHatch_ForcedRequestPending(uint64 index);
    /// @notice No forced request with this index.
    error EscapeHatch_UnknownForcedRequest(uint64 index, uint64 count);
    /// @notice The cursor is beyond the forced-request queue.
    error EscapeHatch_ForcedCursorOutOfRange(uint64 cursor, uint64 count);
    /// @notice Neither freeze condition of `freeze` holds yet.
    /// @param forcedAt When the oldest unserved forced request becomes overdue (type(uint64).max if none).
    /// @param livenessAt When the liveness timeout expires.
    error EscapeHatch_FreezeNotAllowed(uint64 forcedAt, uint64 livenessAt);
    /// @notice The vault is in the middle of a deposit or a payout (its balance is in flux): freeze later.
    error EscapeHatch_VaultBusy();
    /// @notice The latest checkpoint included every deposit of the vault's queue: no deposit can be overdue.
    /// @param cursor The latest posted checkpoint's depositCursor.
    error EscapeHatch_NoPendingDeposit(uint64 cursor);
    /// @notice The first unincluded deposit is not overdue yet.
    /// @param deadline timestamp + forcedDeadline, after the current block time.
    error EscapeHatch_DepositNotOverdue(uint64 deadline);
    /// @notice The deposit data does not match the vault's queue entry.
    /// @param expected The vault's prefix hash after the entry.
    /// @param got The hash of the data supplied.
    error EscapeHatch_DepositMismatch(bytes32 expected, bytes32 got);
    /// @notice The deposit is in the escape checkpoint's state (index < its depositCursor): it escapes as
    ///         collateral, it is not refunded.
    error EscapeHatch_DepositIncluded(uint64 index, uint64 depositCursor);
    /// @notice No deposit with this index.
    error EscapeHatch_UnknownDeposit(uint64 index, uint64 count);
    /// @notice This deposit was refunded before.
    error EscapeHatch_AlreadyRefunded(uint64 index);
    /// @notice The leaf is not in the escape checkpoint's state tree at this index.
    /// @param index The state-tree index the leaf was proven at.
    /// @param root The escape root it was checked against.
    error EscapeHatch_InvalidStateProof(uint32 index, bytes32 root);
    /// @notice This state-tree leaf was escaped before.
    error EscapeHatch_AlreadyEscaped(uint32 index);
    /// @notice The account leaf's owner is the zero address (the insurance account): nothing to escape.
    error EscapeHatch_NoOwner(uint32 accountId);
    /// @notice A position witness belongs to another account than the account leaf.
    error EscapeHatch_AccountMismatch(uint32 accountId, uint32 positionAccountId);
    /// @notice This market leaf was proven before.
    error EscapeHatch_MarketAlreadyProven(uint16 marketId);
    /// @notice A position's market has not been proven with `proveMarket` yet.
    error EscapeHatch_MarketNotProven(uint16 marketId);
    /// @notice Registering the claim would take the registered total beyond 2^128 - 1 (only possible in an
    ///         absurd state).
    /// @param value The claim.
    /// @param total The registered total it would make.
    error EscapeHatch_ClaimTooLarge(uint256 value, uint256 total);
    /// @notice The residual was swept: escapes after the claim window ended.
    error EscapeHatch_LateEscapesEnded();
    /// @notice The claim window is still open: registered claims are paid after it.
    /// @param endsAt frozenAt + claimWindow.
    error EscapeHatch_ClaimWindowOpen(uint64 endsAt);
    /// @notice The residual may be swept only from frozenAt + 2 × claimWindow on.
    error EscapeHatch_SweepTooEarly(uint64 allowedAt);
    /// @notice The residual was swept before.
    error EscapeHatch_AlreadySwept();
    /// @notice Nothing to withdraw (or sweep).
    error EscapeHatch_NothingToWithdraw();
    /// @notice The recipient is the zero address.
    error EscapeHatch_ZeroRecipient();
    /// @notice Sending ETH failed.
    error EscapeHatch_TransferFailed();

    // ------------------------------------------------------------------ forced requests

    /// @notice Queues a forced withdrawal of `amount` free collateral of `accountId` to its owner.
    /// @dev Payable with exactly `forcedRequestFee`, which accrues to the operator (`withdrawForcedFees`).
    ///      One unserved request per (requester, account) at a time: unserved = at or beyond the latest posted
    ///      checkpoint's forcedCursor. The contract does not know account owners: the ledger serves a request
    ///      whose requester is not the owner (or that cannot be executed) as a no-op that still advances the
    ///      forced cursor. Reverts after the freeze.
    /// @return index The request's queue index.
    function requestForcedWithdrawal(uint32 accountId, uint128 amount) external payable returns (uint64 index);

    /// @notice Queues a forced exit: the ledger closes `accountId`'s isolated position in `marketId`.
    /// @dev Same fee, pending and ownership rules as requestForcedWithdrawal; one unserved request per
    ///      (requester, account, market).
    /// @return index The request's queue index.
    function requestForcedExit(uint32 accountId, uint16 marketId) external payable returns (uint64 index);

    /// @notice Sends every forced-request fee accrued so far to `to`. Operator only (pull payment).
    function withdrawForcedFees(address to) external;

    // ------------------------------------------------------------------ freeze

    /// @notice Freezes the exchange for good. Anyone may call, once either condition holds: the oldest forced
    ///         request the latest checkpoint did not serve reached its deadline (timestamp + forcedDeadline <=
    ///         now), or nothing finalized for the liveness timeout (finalizesAt(lastFinalizedSeq) +
    ///         livenessTimeout <= now). Reverts while the vault is paying out or taking a deposit.
    /// @dev Records the freeze time and the escape checkpoint (lastFinalizedSeq at that moment), and fixes the
    ///      escape pool. From then on no checkpoint is posted and none finalizes.
    function freeze() external;

    /// @notice Freezes the exchange for good because a deposit stayed unincluded past the forced deadline
    ///         (reason 3). The arguments are the vault's queue entry at the latest posted checkpoint's
    ///         depositCursor `c` (its Deposited event); it must extend the vault's prefix chain from
    ///         depositPrefixHash(c) to depositPrefixHash(c + 1), and timestamp + forcedDeadline <= now.
    function freezeForDeposit(address owner, uint128 amount, uint64 timestamp) external;

    // ------------------------------------------------------------------ escape

    /// @notice Proves a market leaf of the escape checkpoint and caches what escapes value positions with.
    ///         Anyone may call; once per market. Positions of a market escape only after this.
    function proveMarket(MarketLeaf calldata market, bytes32[] calldata proof) external;

    /// @notice Escapes an account of the escape checkpoint: its account leaf (free collateral) unless escaped
    ///         before, and the listed isolated positions, each worth max(0, quote - unpaid funding + notional
    ///         at the market's mark price) (EscapeLib). Anyone may call; the value is the claim of the owner
    ///         named by the account leaf. During the claim window the value is registered (paid after the
    ///         window, haircut against the registered total); after it, it is credited from the residual at
    ///         once (at most its value, first come first served) until the operator sweeps the residual.
    /// @param account The account leaf.
    /// @param proof Its STATE_TREE_DEPTH sibling hashes, bottom-up.
    /// @param positions Positions of this account, each with its proof; their markets proven.
    /// @return value The total value of the leaves escaped by this call.
    function escape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        returns (uint256 value);

    /// @notice Side-effect-free check of `escape` with the same arguments: reverts with the reason it would
    ///         fail, else returns the total value it would escape.
    /// @dev Rules, in order: frozen; late escapes not ended; accountId < 2^24 and the account proof leads to
    ///      the escape root; the owner is not the zero address; the call escapes something; then per position:
    ///      it is the account's; marketId < 64; not escaped before (nor listed twice); its market was proven;
    ///      the proof leads to the escape root; its value fits an int256 (EscapeLib_Overflow).
    function checkEscape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        view
        returns (uint256 value);

    /// @notice Refunds a deposit the escape checkpoint never included (index >= its depositCursor), in full,
    ///         outside the pool, withdrawable at once. Anyone may call; once per deposit. The arguments are the
    ///         vault's queue entry (its Deposited event).
    function refundDeposit(uint64 index, address owner, uint128 amount, uint64 timestamp) external;

    /// @notice Pays the caller what the hatch owes it: refunds and late credits at any time after the freeze,
    ///         plus `payout(registered)` once the claim window has ended.
    function withdrawEscaped() external;

    /// @notice `withdrawEscaped`, paid to `to` instead of the caller.
    function withdrawEscapedTo(address to) external;

    /// @notice Pays the residual of the pool (pool - min(pool, registeredTotal) - latePaid) to the operator
    ///         and ends late escapes. Operator only, once, from frozenAt + 2 × claimWindow on.
    function sweepResidual() external;

    // ------------------------------------------------------------------ views

    /// @notice The Settlement contract whose checkpoints this hatch reads.
    function settlement() external view returns (address);
    /// @notice Seconds the operator has to serve a forced request (or include a deposit).
    function forcedDeadline() external view returns (uint64);
    /// @notice Seconds without a newly finalized checkpoint after which anyone may freeze.
    function livenessTimeout() external view returns (uint64);
    /// @notice The fee (wei) a forced request pays, accrued for the operator.
    function forcedRequestFee() external view returns (uint256);
    /// @notice Seconds after the freeze during which escapes register claims.
    function claimWindow() external view returns (uint64);
    /// @notice Forced-request fees accrued and not yet withdrawn by the operator (wei).
    function forcedFees() external view returns (uint256);
    /// @notice Number of forced requests ever queued.
    function forcedRequestCount() external view returns (uint64);
    /// @notice The forced-request queue's prefix hash after the first `cursor` requests (0 for cursor 0).
    function forcedPrefixHash(uint64 cursor) external view returns (bytes32);
    /// @notice Block timestamp of forced request `index`; its deadline is this + forcedDeadline.
    function forcedRequestedAt(uint64 index) external view returns (uint64);
    /// @notice Earliest times `freeze` succeeds: for the oldest forced request the latest checkpoint did not
    ///         serve (type(uint64).max if none), and for the liveness timeout.
    function freezableAt() external view returns (uint64 forcedAt, uint64 livenessAt);
    /// @notice Whether the exchange is frozen.
    function isFrozen() external view returns (bool);
    /// @notice Block timestamp of the freeze (0 while not frozen).
    function frozenAt() external view returns (uint64);
    /// @notice The escape checkpoint: lastFinalizedSeq at the freeze. Reverts EscapeHatch_NotFrozen before.
    function frozenSeq() external view returns (uint64);
    /// @notice End of the claim window, frozenAt + claimWindow (0 while not frozen).
    function claimWindowEnd() external view returns (uint64);
    /// @notice The escape pool fixed at the freeze (0 before).
    function pool() external view returns (uint128);
    /// @notice Sum of every claim registered during the claim window.
    function registeredTotal() external view returns (uint128);
    /// @notice What late escapes took from the residual so far.
    function latePaid() external view returns (uint128);
    /// @notice pool - min(pool, registeredTotal) - latePaid: what late escapes (and then the sweep) can take.
    function residual() external view returns (uint128);
    /// @notice Whether the residual was swept (late escapes ended).
    function swept() external view returns (bool);
    /// @notice `owner`'s claim registered during the window and not yet paid.
    function registeredOf(address owner) external view returns (uint128);
    /// @notice Refunds and late credits of `owner` not yet withdrawn (withdrawable at any time).
    function creditOf(address owner) external view returns (uint128);
    /// @notice What `withdrawEscaped` would pay `owner` once the window has ended: creditOf +
    ///         payout(registeredOf), with payout(v) = v if registeredTotal <= pool, else
    ///         floor(v × pool / registeredTotal). Provisional while the window is open (the total can grow).
    function owedTo(address owner) external view returns (uint256);
    /// @notice Whether state-tree leaf `index` was escaped (only account and position leaves escape).
    function isEscaped(uint32 index) external view returns (bool);
    /// @notice The cached market data of `marketId` (`proven` false until `proveMarket`).
    function escapeMarket(uint16 marketId) external view returns (EscapeMarket memory);
    /// @notice Whether deposit `index` was refunded.
    function isRefunded(uint64 index) external view returns (bool);
}

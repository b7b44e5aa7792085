// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IEscapeHatch} from "./interfaces/IEscapeHatch.sol";
import {ISettlement} from "./interfaces/ISettlement.sol";
import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IERC20} from "./interfaces/IERC20.sol";
import {EscapeLib} from "./libraries/EscapeLib.sol";
import {AccountLeaf, LeafIndex, LeafLib, MarketLeaf, PositionLeaf} from "./libraries/LeafLib.sol";
import {MerkleProofLib} from "./libraries/MerkleProofLib.sol";

/// @title EscapeHatch
/// @notice Forced-request queue, freeze, escapes, deposit refunds and the claim window of the isoperp exchange
///         (docs/PROTOCOL.md, section 4).
/// @dev Created by the Settlement contract (`settlement`, read through views only). The escape pays nothing an
///      operator wrote: the pool is the vault's balance at the freeze minus what the vault still owes outside
///      the escape, the claims are the values users prove during the claim window, and each registered claim
///      is paid `EscapeLib.haircut(claim, pool, registeredTotal)` after the window: exact and independent of
///      the order of claims (sum of floors <= pool). Escapes after the window take the residual
///      `pool - min(pool, registeredTotal) - latePaid` first come first served, until the operator sweeps it.
contract EscapeHatch is IEscapeHatch {
    /// @notice Forced-request kind: withdraw free collateral to the owner.
    uint8 public constant FORCED_WITHDRAWAL = 1;
    /// @notice Forced-request kind: close an isolated position.
    uint8 public constant FORCED_EXIT = 2;
    /// @notice Freeze reason: a forced request reached its deadline unserved.
    uint8 public constant FREEZE_FORCED_REQUEST_OVERDUE = 1;
    /// @notice Freeze reason: no checkpoint finalized for the liveness timeout.
    uint8 public constant FREEZE_LIVENESS = 2;
    /// @notice Freeze reason: a deposit stayed unincluded past the forced deadline.
    uint8 public constant FREEZE_DEPOSIT_OVERDUE = 3;
    /// @dev Depth of the state tree.
    uint256 private constant STATE_TREE_DEPTH = MerkleProofLib.STATE_TREE_DEPTH;
    /// @dev Bit of the account leaf in an account's escaped lane (bits 0..63 are its positions).
    uint256 private constant ACCOUNT_ESCAPED_BIT = 64;

    /// @inheritdoc IEscapeHatch
    address public immutable settlement;
    /// @dev The collateral vault (pays escapes, keeps the deposit queue) and its token.
    address private immutable _vault;
    address private immutable _token;
    /// @dev The operator: receives forced-request fees and the swept residual.
    address private immutable _operator;
    /// @inheritdoc IEscapeHatch
    uint64 public immutable forcedDeadline;
    /// @inheritdoc IEscapeHatch
    uint64 public immutable livenessTimeout;
    /// @inheritdoc IEscapeHatch
    uint256 public immutable forcedRequestFee;
    /// @inheritdoc IEscapeHatch
    uint64 public immutable claimWindow;

    /// @dev What requests, freezes and escapes read, in one word.
    /// @param frozenAt Block time of the freeze; 0 while not frozen (block time is never 0).
    /// @param forcedCount Length of the forced-request queue.
    /// @param seq The escape checkpoint (lastFinalizedSeq at the freeze).
    /// @param depositCursor Its depositCursor: deposits from here on are refunded.
    struct Status {
        uint64 frozenAt;
        uint64 forcedCount;
        uint64 seq;
        uint64 depositCursor;
    }

    /// @dev The pool fixed at the freeze and the sum of the claims registered during the window.
    struct Pool {
        uint128 pool;
        uint128 registeredTotal;
    }

    /// @dev What late escapes took from the residual, and whether the operator swept it.
    struct Late {
        uint128 paid;
        bool swept;
    }

    /// @dev Per owner: the claim registered during the window (paid after it, with the haircut), and the
    ///      refunds and late credits (withdrawable at once).
    struct Claim {
        uint128 registered;
        uint128 credit;
    }

    /// @dev The outcome of an escape call, computed by `_checkEscape` without side effects.
    struct EscapeResult {
        uint256 escapedWord; // the account's escaped word after the call
        bool accountEscaped; // whether the call escapes the account leaf
        uint256[] values; // per position
        uint256 value; // total, account leaf included
    }

    Status private _status;
    Pool private _pool;
    Late private _late;
    /// @dev The escape checkpoint's state root, cached at the freeze.
    bytes32 private _escapeRoot;
    /// @inheritdoc IEscapeHatch
    uint256 public forcedFees;

    /// @dev `_forcedPrefixHashes[i]` is the forced queue's prefix hash after request i, r_{i+1}.
    mapping(uint256 index => bytes32 prefixHash) private _forcedPrefixHashes;
    /// @dev Request timestamps, four per word: request i in bits [64 * (i & 3), 64 * (i & 3) + 64) of word i >> 2.
    mapping(uint256 word => uint256 times) private _forcedTimes;
    /// @dev Latest request index + 1 (0 = none) per keccak256(requester, accountId, kind, marketId).
    mapping(bytes32 key => uint64 indexPlusOne) private _forcedLatest;
    /// @dev Escaped leaves, one 128-bit lane per account so that an account's leaves share one word:
    ///      `_escaped[accountId >> 1]`, lane `accountId & 1`; in the lane, bit `marketId` (< 64) marks the
    ///      position in that market and bit ACCOUNT_ESCAPED_BIT the account leaf.
    mapping(uint256 word => uint256 bits) private _escaped;
    /// @dev Market data proven for escapes, by market id.
    mapping(uint16 marketId => EscapeMarket) private _escapeMarkets;
    /// @dev Refunded deposits: bit `index & 255` of word `index >> 8`.
    mapping(uint256 word => uint256 bits) private _refunded;
    /// @dev Registered claims and credits per owner.
    mapping(address owner => Claim) private _claims;

    /// @dev Restricts a function to the operator.
    modifier onlyOperator() {
        if (msg.sender != _operator) revert EscapeHatch_NotOperator(msg.sender);
        _;
    }

    /// @dev Deployed by the Settlement constructor, which checked every parameter (ranges, and the orderings
    ///      forcedDeadline < challengeWindow < livenessTimeout).
    /// @param vault_ The collateral vault (it lets this contract pay out).
    /// @param token_ The vault's collateral token.
    /// @param operator_ The operator.
    /// @param forcedDeadline_ Seconds to serve a forced request or include a deposit.
    /// @param livenessTimeout_ Seconds without finality before anyone may freeze.
    /// @param forcedRequestFee_ Wei a forced request pays (accrued for the operator); may be 0.
    /// @param claimWindow_ Seconds after the freeze during which escapes register claims.
    constructor(
        address vault_,
        address token_,
        address operator_,
        uint64 forcedDeadline_,
        uint64 livenessTimeout_,
        uint256 forcedRequestFee_,
        uint64 claimWindow_
    ) {
        settlement = msg.sender;
        _vault = vault_;
        _token = token_;
        _operator = operator_;
        forcedDeadline = forcedDeadline_;
        livenessTimeout = livenessTimeout_;
        forcedRequestFee = forcedRequestFee_;
        claimWindow = claimWindow_;
    }

    // ------------------------------------------------------------------ forced requests

    /// @inheritdoc IEscapeHatch
    function requestForcedWithdrawal(uint32 accountId, uint128 amount) external payable returns (uint64) {
        // The id must fit the state tree's index layout (reverts LeafLib_AccountOutOfRange).
        LeafLib.accountIndex(accountId);
        if (amount == 0) revert EscapeHatch_ZeroAmount();
        return _requestForced(FORCED_WITHDRAWAL, accountId, 0, amount);
    }

    /// @inheritdoc IEscapeHatch
    function requestForcedExit(uint32 accountId, uint16 marketId) external payable returns (uint64) {
        // Both ids must fit the index layout (reverts LeafLib_AccountOutOfRange / LeafLib_MarketOutOfRange).
        LeafLib.positionIndex(accountId, marketId);
        return _requestForced(FORCED_EXIT, accountId, marketId, 0);
    }

    /// @dev Appends a request to the queue: prefix hash, timestamp, the requester's pending marker, the fee.
    function _requestForced(uint8 kind, uint32 accountId, uint16 marketId, uint128 amount)
        private
        returns (uint64 index)
    {
        Status memory status = _status;
        // 1. Nothing is requested after a freeze (nobody would serve it).
        if (status.frozenAt != 0) revert EscapeHatch_Frozen();
        // 2. The fee is paid exactly (an overpayment would be lost).
        if (msg.value != forcedRequestFee) revert EscapeHatch_WrongFee(msg.value, forcedRequestFee);
        // 3. One unserved request per (requester, account, kind, market). Keyed by the requester, so a stranger's
        //    request (served as a no-op) never blocks the owner's own. Unserved = not below the latest
        //    checkpoint's forced cursor.
        bytes32 key = keccak256(abi.encode(msg.sender, accountId, kind, marketId));
        uint64 latest = _forcedLatest[key];
        if (latest != 0) {
            unchecked {
                // latest >= 1.
                latest -= 1;
            }
            if (latest >= _latestCheckpoint().forcedCursor) revert EscapeHatch_ForcedRequestPending(latest);
        }

        index = status.forcedCount;
        uint64 timestamp = uint64(block.timestamp);
        bytes32 prefixHash = keccak256(
            abi.encode(
                index == 0 ? bytes32(0) : _forcedPrefixHashes[index - 1],
                index,
                kind,
                msg.sender,
                accountId,
                marketId,
                amount,
                timestamp
            )
        );
        _forcedPrefixHashes[index] = prefixHash;
        // The lane of a new index is still zero, so OR-ing the timestamp in writes exactly that lane.
        _forcedTimes[index >> 2] |= uint256(timestamp) << ((index & 3) * 64);
        // index + 1 is checked: a queue of 2^64 requests is out of reach anyway.
        _forcedLatest[key] = index + 1;
        _status.forcedCount = index + 1;
        // The fee compensates the operator for serving; it waits here until the operator pulls it.
        if (msg.value != 0) forcedFees += msg.value;
        emit ForcedRequested(index, kind, msg.sender, accountId, marketId, amount, timestamp, prefixHash);
    }

    /// @inheritdoc IEscapeHatch
    function withdrawForcedFees(address to) external onlyOperator {
        if (to == address(0)) revert EscapeHatch_ZeroRecipient();
        uint256 amount = forcedFees;
        if (amount == 0) revert EscapeHatch_NothingToWithdraw();
        // Zeroed before the ETH leaves: a re-entering recipient finds nothing left.
        forcedFees = 0;
        emit ForcedFeesWithdrawn(to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert EscapeHatch_TransferFailed();
    }

    // ------------------------------------------------------------------ freeze

    /// @inheritdoc IEscapeHatch
    function freeze() external {
        _checkCanFreeze();
        // A forced request is overdue, or nothing finalized for the liveness timeout (both at, not after, the
        // deadline: `<=`).
        (uint64 forcedAt, uint64 livenessAt) = freezableAt();
        uint8 reason;
        if (forcedAt <= block.timestamp) {
            reason = FREEZE_FORCED_REQUEST_OVERDUE;
        } else if (livenessAt <= block.timestamp) {
            reason = FREEZE_LIVENESS;
        } else {
            revert EscapeHatch_FreezeNotAllowed(forcedAt, livenessAt);
        }
        _freeze(reason);
    }

    /// @inheritdoc IEscapeHatch
    function freezeForDeposit(address owner, uint128 amount, uint64 timestamp) external {
        _checkCanFreeze();
        // 1. The latest posted checkpoint left a deposit of the vault's queue out: `cursor` is the first one.
        uint64 cursor = _latestCheckpoint().depositCursor;
        ICollateralVault v = ICollateralVault(_vault);
        if (cursor >= v.depositCount()) revert EscapeHatch_NoPendingDeposit(cursor);
        // 2. The data is that queue entry: it extends h_cursor to h_{cursor+1}.
        bytes32 expected = v.depositPrefixHash(cursor + 1);
        bytes32 got = keccak256(abi.encode(v.depositPrefixHash(cursor), cursor, owner, amount, timestamp));
        if (got != expected) revert EscapeHatch_DepositMismatch(expected, got);
        // 3. It is overdue (at, not after, the deadline). The timestamp is the vault's (a past block time), and
        //    forcedDeadline <= 365 days, so the sum fits a uint64.
        uint64 deadline = timestamp + forcedDeadline;
        if (deadline > block.timestamp) revert EscapeHatch_DepositNotOverdue(deadline);
        _freeze(FREEZE_DEPOSIT_OVERDUE);
    }

    /// @dev The rules both freezes share: once only, and never while the vault's balance is in flux (during a
    ///      payout the claim is already counted as paid while the tokens are still in the vault, which would
    ///      inflate the pool; during a deposit the tokens may be in before the queue entry).
    function _checkCanFreeze() private view {
        if (_status.frozenAt != 0) revert EscapeHatch_Frozen();
        if (ICollateralVault(_vault).locked()) revert EscapeHatch_VaultBusy();
    }

    /// @dev Freezes for `reason`: the escape checkpoint, its root and deposit cursor, and the pool.
    function _freeze(uint8 reason) private {
        ISettlement s = ISettlement(settlement);
        // The escape checkpoint is the last one final at this moment (read before frozenAt is set, so the
        // Settlement evaluates finality at the block time); from now on the Settlement's clock stays here.
        uint64 seq = s.lastFinalizedSeq();
        ISettlement.Checkpoint memory cp = s.getCheckpoint(seq);
        uint64 frozenAt = uint64(block.timestamp);
        _status = Status({
            frozenAt: frozenAt,
            forcedCount: _status.forcedCount,
            seq: seq,
            depositCursor: cp.depositCursor
        });
        _escapeRoot = cp.stateRoot;
        emit Frozen(msg.sender, reason, seq);

        // The pool: what the vault holds beyond what it still owes outside the escape. Finalized withdrawals
        // not yet claimed (every claim so far is of a checkpoint <= seq, and every later claim is too, so
        // claims and the balance fall together and the pool stays exact) and deposits the escape checkpoint
        // never included (refunded in full; refunds and the balance fall together as well).
        uint256 cumulative = s.cumulativeWithdrawalTotal(seq);
        uint256 claimed = s.withdrawalsClaimed();
        uint256 owed = cumulative > claimed ? cumulative - claimed : 0;
        ICollateralVault v = ICollateralVault(_vault);
        owed += v.depositTotal() - v.depositedBefore(cp.depositCursor);
        uint256 balance = IERC20(_token).balanceOf(_vault);
        uint256 pool_ = balance > owed ? balance - owed : 0;
        if (pool_ > type(uint128).max) pool_ = type(uint128).max;
        _pool.pool = uint128(pool_);
        emit EscapePoolFixed(uint128(pool_), frozenAt + claimWindow);
    }

    // ------------------------------------------------------------------ escape

    /// @inheritdoc IEscapeHatch
    function proveMarket(MarketLeaf calldata market, bytes32[] calldata proof) external {
        // 1. Frozen: the root is the escape checkpoint's.
        bytes32 root = _frozenRoot();
        // 2. The id fits the layout (reverts LeafLib_MarketOutOfRange), and the market was not proven before.
        uint16 marketId = market.marketId;
        uint32 index = LeafIndex.unwrap(LeafLib.marketIndex(marketId));
        if (_escapeMarkets[marketId].proven) revert EscapeHatch_MarketAlreadyProven(marketId);
        // 3. The leaf is in the escape state.
        _prove(root, LeafLib.hash(market), index, proof);
        _escapeMarkets[marketId] = EscapeMarket({
            markPrice: market.markPrice,
            fundingIndex: market.fundingIndex,
            notionalExp: market.notionalExp,
            proven: true
        });
        emit MarketProven(marketId, market.markPrice, market.fundingIndex, market.notionalExp);
    }

    /// @inheritdoc IEscapeHatch
    function escape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        returns (uint256 value)
    {
        EscapeResult memory r = _checkEscape(account, proof, positions);
        // Every leaf of the call is marked in one write; no external call anywhere (the owner pulls with
        // withdrawEscaped).
        _escaped[account.accountId >> 1] = r.escapedWord;
        value = r.value;
        address owner = account.owner;
        if (r.accountEscaped) emit AccountEscaped(account.accountId, owner, account.collateral);
        for (uint256 i; i < positions.length; ++i) {
            emit PositionEscaped(account.accountId, positions[i].position.marketId, owner, r.values[i]);
        }

        Claim memory claim = _claims[owner];
        if (block.timestamp < claimWindowEnd()) {
            // Registration: the claim joins the haircut's denominator. A total beyond 2^128 - 1 (only an absurd
            // state) is refused, which keeps EscapeLib.haircut's product below 2^256.
            uint256 sum = uint256(_pool.registeredTotal) + value;
            if (sum > type(uint128).max) revert EscapeHatch_ClaimTooLarge(value, sum);
            uint128 total = uint128(sum);
            _pool.registeredTotal = total;
            // claim.registered <= the old total, so this sum fits as well.
            claim.registered += uint128(value);
            _claims[owner] = claim;
            emit ClaimRegistered(owner, value, total);
        } else {
            // Late: paid from the residual at once, at most its value, first come first served.
            uint128 residual_ = residual();
            uint128 credited = value < residual_ ? uint128(value) : residual_;
            _late.paid += credited;
            claim.credit += credited;
            _claims[owner] = claim;
            emit LateEscapeCredited(owner, value, credited);
        }
    }

    /// @inheritdoc IEscapeHatch
    function checkEscape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        view
        returns (uint256 value)
    {
        return _checkEscape(account, proof, positions).value;
    }

    /// @inheritdoc IEscapeHatch
    function refundDeposit(uint64 index, address owner, uint128 amount, uint64 timestamp) external {
        // 1. Refunds exist only after a freeze.
        if (_status.frozenAt == 0) revert EscapeHatch_NotFrozen();
        // 2. The escape checkpoint did not include the deposit (an included one escapes as collateral).
        uint64 cursor = _status.depositCursor;
        if (index < cursor) revert EscapeHatch_DepositIncluded(index, cursor);
        // 3. The deposit exists.
        ICollateralVault v = ICollateralVault(_vault);
        uint64 count = v.depositCount();
        if (index >= count) revert EscapeHatch_UnknownDeposit(index, count);
        // 4. It was not refunded before (test-and-set).
        uint256 bit = 1 << (index & 0xff);
        uint256 bits = _refunded[index >> 8];
        if (bits & bit != 0) revert EscapeHatch_AlreadyRefunded(index);
        // 5. The data is the vault's queue entry: it extends h_index to h_{index+1}.
        bytes32 expected = v.depositPrefixHash(index + 1);
        bytes32 got = keccak256(abi.encode(v.depositPrefixHash(index), index, owner, amount, timestamp));
        if (got != expected) revert EscapeHatch_DepositMismatch(expected, got);

        _refunded[index >> 8] = bits | bit;
        // Checked: an owner's credits are bounded by the vault's deposits and pool, both below 2^128.
        _claims[owner].credit += amount;
        emit DepositRefunded(index, owner, amount);
    }

    /// @inheritdoc IEscapeHatch
    function withdrawEscaped() external {
        _withdraw(msg.sender);
    }

    /// @inheritdoc IEscapeHatch
    function withdrawEscapedTo(address to) external {
        if (to == address(0)) revert EscapeHatch_ZeroRecipient();
        _withdraw(to);
    }

    /// @dev Pays the caller's credit, and its registered claim's payout once the window has ended, to `to`.
    function _withdraw(address to) private {
        Claim memory claim = _claims[msg.sender];
        uint256 amount = claim.credit;
        if (claim.registered != 0) {
            uint64 end = claimWindowEnd();
            if (block.timestamp >= end) {
                amount += _payout(claim.registered);
                claim.registered = 0;
            } else if (amount == 0) {
                revert EscapeHatch_ClaimWindowOpen(end);
            }
        }
        if (amount == 0) revert EscapeHatch_NothingToWithdraw();
        // Cleared BEFORE the tokens move: a re-entry through the token finds nothing left. If the transfer
        // reverts (a blocklisted recipient, a hook that refuses), the whole call reverts and the claim stays.
        _claims[msg.sender] = Claim({registered: claim.registered, credit: 0});
        ICollateralVault(_vault).payOut(to, amount);
        emit EscapeWithdrawn(msg.sender, to, amount);
    }

    /// @inheritdoc IEscapeHatch
    function sweepResidual() external onlyOperator {
        uint64 frozenAt_ = _status.frozenAt;
        if (frozenAt_ == 0) revert EscapeHatch_NotFrozen();
        // frozenAt + 2 * claimWindow < 2^64: block times are far below 2^63 and claimWindow <= 365 days.
        uint64 allowedAt = frozenAt_ + 2 * claimWindow;
        if (block.timestamp < allowedAt) revert EscapeHatch_SweepTooEarly(allowedAt);
        if (_late.swept) revert EscapeHatch_AlreadySwept();
        uint128 amount = residual();
        // Counted as taken and marked swept before the tokens move; late escapes end here.
        _late = Late({paid: _late.paid + amount, swept: true});
        if (amount != 0) ICollateralVault(_vault).payOut(_operator, amount);
        emit ResidualSwept(_operator, amount);
    }

    /// @dev What an escape call would do: the account's new escaped word and the values. Reverts with the first
    ///      rule broken, in the order IEscapeHatch.checkEscape lists them.
    function _checkEscape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        private
        view
        returns (EscapeResult memory r)
    {
        // 1. Frozen: the root is the escape checkpoint's, never a pending or older one.
        bytes32 root = _frozenRoot();
        // 2. Late escapes did not end.
        if (_late.swept) revert EscapeHatch_LateEscapesEnded();
        // 3. The account id fits the layout and its leaf is in the escape state (it names the owner).
        uint32 accountIndex = LeafIndex.unwrap(LeafLib.accountIndex(account.accountId));
        _prove(root, LeafLib.hash(account), accountIndex, proof);
        // 4. It has an owner: the insurance account (owner 0) holds the exchange's own positions, which are
        //    not claims (nobody could withdraw a credit to the zero address).
        if (account.owner == address(0)) revert EscapeHatch_NoOwner(account.accountId);

        uint256 lane = (account.accountId & 1) * 128;
        r.escapedWord = _escaped[account.accountId >> 1];

        // 5. The account leaf escapes with the first call for the account; a call must escape something.
        uint256 accountBit = 1 << (lane + ACCOUNT_ESCAPED_BIT);
        if (r.escapedWord & accountBit == 0) {
            r.escapedWord |= accountBit;
            r.accountEscaped = true;
            r.value = account.collateral;
        } else if (positions.length == 0) {
            revert EscapeHatch_AlreadyEscaped(accountIndex);
        }

        // 6. Each position, in order (rules a-e).
        r.values = new uint256[](positions.length);
        for (uint256 i; i < positions.length; ++i) {
            uint256 value = _positionValue(root, account.accountId, lane, positions[i], r);
            r.values[i] = value;
            // Checked: values fit an int256 each; a sum beyond 2^256 - 1 reverts.
            r.value += value;
        }
    }

    /// @dev Rules a-e of one position of an escape call (marking it in `r.escapedWord`); returns its value.
    function _positionValue(
        bytes32 root,
        uint32 accountId,
        uint256 lane,
        PositionWitness calldata witness,
        EscapeResult memory r
    ) private view returns (uint256) {
        PositionLeaf calldata position = witness.position;
        // a. It is the account's (so the account leaf's owner owns it).
        if (position.accountId != accountId) revert EscapeHatch_AccountMismatch(accountId, position.accountId);
        // b. The market id fits the layout (reverts LeafLib_MarketOutOfRange).
        uint32 index = LeafIndex.unwrap(LeafLib.positionIndex(accountId, position.marketId));
        // c. Not escaped before, nor earlier in this call.
        uint256 bit = 1 << (lane + position.marketId);
        if (r.escapedWord & bit != 0) revert EscapeHatch_AlreadyEscaped(index);
        r.escapedWord |= bit;
        // d. Its market was proven.
        EscapeMarket memory market = _escapeMarkets[position.marketId];
        if (!market.proven) revert EscapeHatch_MarketNotProven(position.marketId);
        // e. The leaf is in the escape state.
        _prove(root, LeafLib.hash(position), index, witness.proof);
        return EscapeLib.positionValue(position, market.markPrice, market.fundingIndex, market.notionalExp);
    }

    /// @dev Reverts unless `proof` proves `leafHash` at `index` under `root` (a malformed proof reverts in
    ///      MerkleProofLib: wrong length, index out of range).
    function _prove(bytes32 root, bytes32 leafHash, uint32 index, bytes32[] calldata proof) private pure {
        if (!MerkleProofLib.verify(root, leafHash, index, proof, STATE_TREE_DEPTH)) {
            revert EscapeHatch_InvalidStateProof(index, root);
        }
    }

    /// @dev The escape root; reverts EscapeHatch_NotFrozen before the freeze.
    function _frozenRoot() private view returns (bytes32) {
        if (_status.frozenAt == 0) revert EscapeHatch_NotFrozen();
        return _escapeRoot;
    }

    /// @dev payout(v) = v if registeredTotal <= pool, else floor(v × pool / registeredTotal) (EscapeLib.haircut).
    function _payout(uint128 registered) private view returns (uint256) {
        Pool memory p = _pool;
        return EscapeLib.haircut(registered, p.pool, p.registeredTotal);
    }

    /// @dev The latest posted checkpoint.
    function _latestCheckpoint() private view returns (ISettlement.Checkpoint memory) {
        ISettlement s = ISettlement(settlement);
        return s.getCheckpoint(s.latestSeq());
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IEscapeHatch
    function forcedRequestCount() external view returns (uint64) {
        return _status.forcedCount;
    }

    /// @inheritdoc IEscapeHatch
    function forcedPrefixHash(uint64 cursor) external view returns (bytes32) {
        uint64 count = _status.forcedCount;
        if (cursor > count) revert EscapeHatch_ForcedCursorOutOfRange(cursor, count);
        return cursor == 0 ? bytes32(0) : _forcedPrefixHashes[cursor - 1];
    }

    /// @inheritdoc IEscapeHatch
    function forcedRequestedAt(uint64 index) external view returns (uint64) {
        uint64 count = _status.forcedCount;
        if (index >= count) revert EscapeHatch_UnknownForcedRequest(index, count);
        return _forcedTime(index);
    }

    /// @inheritdoc IEscapeHatch
    function freezableAt() public view returns (uint64 forcedAt, uint64 livenessAt) {
        ISettlement s = ISettlement(settlement);
        uint64 cursor = s.getCheckpoint(s.latestSeq()).forcedCursor;
        // time + forcedDeadline < 2^64: block times are far below 2^63 and forcedDeadline <= 365 days.
        forcedAt = cursor < _status.forcedCount ? _forcedTime(cursor) + forcedDeadline : type(uint64).max;
        livenessAt = s.finalizesAt(s.lastFinalizedSeq()) + livenessTimeout;
    }

    /// @inheritdoc IEscapeHatch
    function isFrozen() external view returns (bool) {
        return _status.frozenAt != 0;
    }

    /// @inheritdoc IEscapeHatch
    function frozenAt() external view returns (uint64) {
        return _status.frozenAt;
    }

    /// @inheritdoc IEscapeHatch
    function frozenSeq() external view returns (uint64) {
        if (_status.frozenAt == 0) revert EscapeHatch_NotFrozen();
        return _status.seq;
    }

    /// @inheritdoc IEscapeHatch
    function claimWindowEnd() public view returns (uint64) {
        uint64 at = _status.frozenAt;
        // frozenAt + claimWindow < 2^64 (block time far below 2^63, claimWindow <= 365 days).
        return at == 0 ? 0 : at + claimWindow;
    }

    /// @inheritdoc IEscapeHatch
    function pool() external view returns (uint128) {
        return _pool.pool;
    }

    /// @inheritdoc IEscapeHatch
    function registeredTotal() external view returns (uint128) {
        return _pool.registeredTotal;
    }

    /// @inheritdoc IEscapeHatch
    function latePaid() external view returns (uint128) {
        return _late.paid;
    }

    /// @inheritdoc IEscapeHatch
    function residual() public view returns (uint128) {
        Pool memory p = _pool;
        uint128 covered = p.registeredTotal < p.pool ? p.registeredTotal : p.pool;
        unchecked {
            // covered <= pool, and late payments and the sweep only ever take from what is left: paid <= pool -
            // covered (each late credit is capped at the residual, and registration ends before any of them).
            return p.pool - covered - _late.paid;
        }
    }

    /// @inheritdoc IEscapeHatch
    function swept() external view returns (bool) {
        return _late.swept;
    }

    /// @inheritdoc IEscapeHatch
    function registeredOf(address owner) external view returns (uint128) {
        return _claims[owner].registered;
    }

    /// @inheritdoc IEscapeHatch
    function creditOf(address owner) external view returns (uint128) {
        return _claims[owner].credit;
    }

    /// @inheritdoc IEscapeHatch
    function owedTo(address owner) external view returns (uint256) {
        Claim memory claim = _claims[owner];
        return claim.credit + _payout(claim.registered);
    }

    /// @inheritdoc IEscapeHatch
    function isEscaped(uint32 index) external view returns (bool) {
        uint32 kind = index >> LeafLib.KIND_SHIFT;
        uint32 accountId = (index >> LeafLib.ACCOUNT_SHIFT) & uint32(LeafLib.MAX_ACCOUNTS - 1);
        uint32 sub = index & uint32(LeafLib.MAX_MARKETS - 1);
        uint256 bit;
        if (kind == LeafLib.KIND_ACCOUNT && sub == 0) {
            bit = ACCOUNT_ESCAPED_BIT;
        } else if (kind == LeafLib.KIND_POSITION) {
            bit = sub;
        } else {
            return false; // no other leaf ever escapes
        }
        return (_escaped[accountId >> 1] >> ((accountId & 1) * 128 + bit)) & 1 == 1;
    }

    /// @inheritdoc IEscapeHatch
    function escapeMarket(uint16 marketId) external view returns (EscapeMarket memory) {
        return _escapeMarkets[marketId];
    }

    /// @inheritdoc IEscapeHatch
    function isRefunded(uint64 index) external view returns (bool) {
        return _refunded[index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @dev Timestamp of forced request `index` (the caller checked index < forcedCount).
    function _forcedTime(uint64 index) private view returns (uint64) {
        return uint64(_forcedTimes[index >> 2] >> ((index & 3) * 64));
    }
}

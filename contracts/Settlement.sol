// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ISettlement} from "./interfaces/ISettlement.sol";
import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IERC20} from "./interfaces/IERC20.sol";
import {CollateralVault} from "./CollateralVault.sol";
import {CheckpointHeader, CheckpointLib} from "./libraries/CheckpointLib.sol";
import {EscapeLib} from "./libraries/EscapeLib.sol";
import {AccountLeaf, LeafIndex, LeafLib, MarketLeaf, PositionLeaf} from "./libraries/LeafLib.sol";
import {MerkleProofLib} from "./libraries/MerkleProofLib.sol";
import {RequestLib} from "./libraries/RequestLib.sol";

/// @title Settlement
/// @notice Checkpoint chain, operator bond, withdrawal claims, forced-request queue, freeze and escape hatch of
///         the isoperp exchange (docs/PROTOCOL.md, section 4).
/// @dev Checkpoints are stored in an array indexed by sequence number; index 0 is the genesis checkpoint,
///      fixed at deployment and final from the start. Finality is lazy: checkpoint `seq > 0` is final once
///      `postedAt + challengeWindow <= now`, where `now` is the block time, or the freeze time once frozen (so
///      nothing finalizes after a freeze). Because `postedAt` never decreases along the chain, the finalized
///      checkpoints are always a prefix of it (`lastFinalizedSeq` relies on that).
contract Settlement is ISettlement {
    /// @notice Protocol version of the batch format and encodings.
    uint8 public constant PROTOCOL_VERSION = 1;
    /// @notice Largest batch accepted by `postCheckpoint`, in bytes.
    uint256 public constant MAX_BATCH_BYTES = 131_072;
    /// @notice Depth of the state tree.
    uint256 public constant STATE_TREE_DEPTH = MerkleProofLib.STATE_TREE_DEPTH;
    /// @notice Depth of the global withdrawals tree.
    uint256 public constant WITHDRAWAL_TREE_DEPTH = MerkleProofLib.WITHDRAWAL_TREE_DEPTH;
    /// @notice Depth of a checkpoint's trace tree.
    uint256 public constant TRACE_TREE_DEPTH = MerkleProofLib.TRACE_TREE_DEPTH;
    /// @notice Capacity of a withdrawals tree: 2^WITHDRAWAL_TREE_DEPTH leaves.
    uint256 public constant MAX_WITHDRAWALS = 1 << MerkleProofLib.WITHDRAWAL_TREE_DEPTH;
    /// @notice Longest accepted challenge window (keeps `postedAt + challengeWindow` far from overflow).
    uint64 public constant MAX_CHALLENGE_WINDOW = 365 days;
    /// @notice Longest accepted forced-request deadline and liveness timeout (same reason).
    uint64 public constant MAX_TIMEOUT = 365 days;
    /// @notice Forced-request kind: withdraw free collateral to the owner.
    uint8 public constant FORCED_WITHDRAWAL = 1;
    /// @notice Forced-request kind: close an isolated position.
    uint8 public constant FORCED_EXIT = 2;
    /// @notice Freeze reason: a forced request reached its deadline unserved.
    uint8 public constant FREEZE_FORCED_REQUEST_OVERDUE = 1;
    /// @notice Freeze reason: no checkpoint finalized for the liveness timeout.
    uint8 public constant FREEZE_LIVENESS = 2;
    /// @dev Bit of the account leaf in an account's escaped lane (bits 0..63 are its positions).
    uint256 private constant ACCOUNT_ESCAPED_BIT = 64;

    /// @inheritdoc ISettlement
    address public immutable operator;
    /// @inheritdoc ISettlement
    uint256 public immutable minBond;
    /// @inheritdoc ISettlement
    uint64 public immutable challengeWindow;
    /// @inheritdoc ISettlement
    address public immutable vault;
    /// @inheritdoc ISettlement
    address public immutable oracle;
    /// @inheritdoc ISettlement
    uint64 public immutable forcedDeadline;
    /// @inheritdoc ISettlement
    uint64 public immutable livenessTimeout;
    /// @inheritdoc ISettlement
    uint256 public immutable forcedRequestFee;

    /// @dev The collateral token (the vault's), for the escape pool's balance.
    address private immutable _token;
    /// @dev Chain id at deployment, and the domain separator computed for it.
    uint256 private immutable _deployChainId;
    bytes32 private immutable _deployDomainSeparator;

    /// @dev What claims, posts and forced requests all read, in one word.
    /// @param withdrawalsClaimed Sum of every claimed withdrawal (for the escape pool).
    /// @param frozenAt Block time of the freeze; 0 while not frozen (block time is never 0).
    /// @param forcedCount Length of the forced-request queue.
    struct Status {
        uint128 withdrawalsClaimed;
        uint64 frozenAt;
        uint64 forcedCount;
    }

    /// @dev What escapes and refunds read, fixed at the freeze.
    /// @param seq The escape checkpoint (lastFinalizedSeq at the freeze).
    /// @param depositCursor Its depositCursor: deposits from here on are refunded.
    /// @param claimsTotal Its claimsTotal: the haircut's denominator.
    struct Escape {
        uint64 seq;
        uint64 depositCursor;
        uint128 claimsTotal;
    }

    /// @dev The escape pool and how much of it escapes credited so far (paid <= pool always).
    struct Pool {
        uint128 pool;
        uint128 paid;
    }

    /// @dev The outcome of an escape call, computed by `_checkEscape` without side effects.
    struct EscapeResult {
        uint256 escapedWord; // the account's escaped word after the call
        bool accountEscaped; // whether the call escapes the account leaf
        uint256 accountValue;
        uint256 accountPayout;
        uint256[] values; // per position
        uint256[] payouts; // per position
        uint256 value; // total
        uint256 payout; // total
        uint128 paid; // the pool's tally after the call
    }

    /// @inheritdoc ISettlement
    uint256 public bond;

    /// @dev `_checkpoints[seq]`; never empty (genesis).
    Checkpoint[] private _checkpoints;

    /// @dev Claimed withdrawals, keyed by the global leaf index only: bit `index & 255` of word `index >> 8`.
    mapping(uint256 word => uint256 bits) private _claimed;

    Status private _status;
    Escape private _escape;
    Pool private _pool;
    /// @dev The escape checkpoint's state root, cached at the freeze.
    bytes32 private _escapeRoot;

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
    /// @inheritdoc ISettlement
    mapping(address owner => uint256 amount) public escapeBalance;

    /// @dev Restricts a function to the operator.
    modifier onlyOperator() {
        if (msg.sender != operator) revert Settlement_NotOperator(msg.sender);
        _;
    }

    /// @param token The collateral token (a contract).
    /// @param operator_ The operator, the only address that may post checkpoints and bond.
    /// @param oracle_ The price oracle's signing address (fraud-proof phase; nonzero).
    /// @param minBond_ The bond the operator must keep to post (wei).
    /// @param challengeWindow_ Seconds between a post and its finality, in (0, MAX_CHALLENGE_WINDOW].
    /// @param forcedDeadline_ Seconds the operator has to serve a forced request, in (0, MAX_TIMEOUT].
    /// @param livenessTimeout_ Seconds without finality before anyone may freeze, in (0, MAX_TIMEOUT].
    /// @param forcedRequestFee_ Wei a forced request pays (added to the operator's bond); may be 0.
    /// @param genesisStateRoot State root of the genesis checkpoint (market leaves and the exchange leaf).
    constructor(
        address token,
        address operator_,
        address oracle_,
        uint256 minBond_,
        uint64 challengeWindow_,
        uint64 forcedDeadline_,
        uint64 livenessTimeout_,
        uint256 forcedRequestFee_,
        bytes32 genesisStateRoot
    ) {
        // A token without code would make every transfer a silent no-op (this also rejects address(0)).
        if (token.code.length == 0) revert Settlement_InvalidParameter();
        if (operator_ == address(0) || oracle_ == address(0)) revert Settlement_InvalidParameter();
        if (challengeWindow_ == 0 || challengeWindow_ > MAX_CHALLENGE_WINDOW) revert Settlement_InvalidParameter();
        if (forcedDeadline_ == 0 || forcedDeadline_ > MAX_TIMEOUT) revert Settlement_InvalidParameter();
        if (livenessTimeout_ == 0 || livenessTimeout_ > MAX_TIMEOUT) revert Settlement_InvalidParameter();

        operator = operator_;
        oracle = oracle_;
        minBond = minBond_;
        challengeWindow = challengeWindow_;
        forcedDeadline = forcedDeadline_;
        livenessTimeout = livenessTimeout_;
        forcedRequestFee = forcedRequestFee_;
        _token = token;
        vault = address(new CollateralVault(token));
        _deployChainId = block.chainid;
        _deployDomainSeparator = RequestLib.domainSeparator(block.chainid, address(this));

        // Genesis: every header field zero except the state root; posted (and final) now. No CheckpointPosted
        // event: that event promises batch data in its transaction's calldata, and genesis has none.
        CheckpointHeader memory genesis;
        genesis.stateRoot = genesisStateRoot;
        _checkpoints.push(
            Checkpoint({
                checkpointHash: CheckpointLib.hash(genesis),
                stateRoot: genesisStateRoot,
                withdrawalsRoot: bytes32(0),
                withdrawalCount: 0,
                depositCursor: 0,
                forcedCursor: 0,
                timestamp: 0,
                postedAt: uint64(block.timestamp),
                withdrawalTotal: 0,
                claimsTotal: 0
            })
        );
    }

    // ------------------------------------------------------------------ bond

    /// @inheritdoc ISettlement
    function postBond() external payable onlyOperator {
        if (msg.value == 0) revert Settlement_ZeroAmount();
        bond += msg.value;
        emit BondPosted(msg.sender, msg.value, bond);
    }

    /// @inheritdoc ISettlement
    function withdrawBond(uint256 amount) external onlyOperator {
        if (amount == 0) revert Settlement_ZeroAmount();
        uint256 current = bond;
        uint256 withdrawable = current > minBond ? current - minBond : 0;
        if (amount > withdrawable) revert Settlement_BondLocked(amount, withdrawable);
        unchecked {
            // amount <= withdrawable <= current.
            bond = current - amount;
        }
        emit BondWithdrawn(msg.sender, amount, current - amount);
        // ETH leaves after the bond was lowered, so a re-entering operator sees the reduced bond.
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert Settlement_TransferFailed();
    }

    // ------------------------------------------------------------------ checkpoints

    /// @inheritdoc ISettlement
    function postCheckpoint(CheckpointHeader calldata header, bytes calldata batchData) external {
        _checkCheckpoint(header, batchData);
        // Copying the header to memory ABI-validates every field (a uint64 with dirty high bits reverts),
        // so the hash is that of the canonical encoding the operator computes off-chain.
        bytes32 checkpointHash = CheckpointLib.hash(header);
        uint64 postedAt = uint64(block.timestamp);
        // withdrawalsRoot / withdrawalCount / withdrawalTotal are the exchange leaf's: cumulative since genesis.
        _checkpoints.push(
            Checkpoint({
                checkpointHash: checkpointHash,
                stateRoot: header.stateRoot,
                withdrawalsRoot: header.withdrawalsRoot,
                withdrawalCount: header.withdrawalCount,
                depositCursor: header.depositCursor,
                forcedCursor: header.forcedCursor,
                timestamp: header.timestamp,
                postedAt: postedAt,
                withdrawalTotal: header.withdrawalTotal,
                claimsTotal: header.claimsTotal
            })
        );
        emit CheckpointPosted(
            header.seq,
            checkpointHash,
            header.stateRoot,
            header.withdrawalsRoot,
            header.depositCursor,
            postedAt + challengeWindow
        );
    }

    /// @dev The acceptance rules of a checkpoint, one per line, in the order docs/PROTOCOL.md lists them.
    function _checkCheckpoint(CheckpointHeader calldata header, bytes calldata batchData) private view {
        Checkpoint storage prev = _checkpoints[_checkpoints.length - 1];
        Status memory status = _status;

        // 0. Nothing is posted after a freeze.
        if (status.frozenAt != 0) revert Settlement_Frozen();
        // 1. Only the operator posts.
        if (msg.sender != operator) revert Settlement_NotOperator(msg.sender);
        // 2. The operator is bonded at least the minimum (the stake a fraud proof slashes).
        if (bond < minBond) revert Settlement_BondTooLow(bond, minBond);
        // 3. The sequence number is the next one.
        uint64 expectedSeq = uint64(_checkpoints.length);
        if (header.seq != expectedSeq) revert Settlement_WrongSequence(expectedSeq, header.seq);
        // 4. The header chains onto the latest checkpoint.
        if (header.prevHash != prev.checkpointHash) {
            revert Settlement_WrongPrevHash(prev.checkpointHash, header.prevHash);
        }
        // 5. The deposit cursor never goes backwards and never beyond the vault's queue.
        uint64 queueLength = ICollateralVault(vault).depositCount();
        if (header.depositCursor < prev.depositCursor || header.depositCursor > queueLength) {
            revert Settlement_DepositCursorOutOfRange(prev.depositCursor, header.depositCursor, queueLength);
        }
        // 6. The included deposits are exactly the vault's first `depositCursor` queue entries.
        bytes32 prefixHash = ICollateralVault(vault).depositPrefixHash(header.depositCursor);
        if (header.depositPrefixHash != prefixHash) {
            revert Settlement_DepositPrefixMismatch(prefixHash, header.depositPrefixHash);
        }
        // 7. The forced cursor never goes backwards and never beyond the forced-request queue.
        uint64 forcedCount = status.forcedCount;
        if (header.forcedCursor < prev.forcedCursor || header.forcedCursor > forcedCount) {
            revert Settlement_ForcedCursorOutOfRange(prev.forcedCursor, header.forcedCursor, forcedCount);
        }
        // 8. The served forced requests are exactly the queue's first `forcedCursor` entries.
        bytes32 forcedHash = forcedPrefixHash(header.forcedCursor);
        if (header.forcedPrefixHash != forcedHash) {
            revert Settlement_ForcedPrefixMismatch(forcedHash, header.forcedPrefixHash);
        }
        // 9. No forced request is left unserved past its deadline: the first one not served must still be on time.
        if (header.forcedCursor < forcedCount) {
            uint64 deadline = _forcedTime(header.forcedCursor) + forcedDeadline;
            if (deadline <= block.timestamp) revert Settlement_ForcedRequestOverdue(header.forcedCursor, deadline);
        }
        // 10. The batch fits the size limit.
        if (batchData.length > MAX_BATCH_BYTES) revert Settlement_BatchTooLarge(batchData.length, MAX_BATCH_BYTES);
        // 11. The header commits to exactly this batch data.
        bytes32 batchHash = keccak256(batchData);
        if (header.batchHash != batchHash) revert Settlement_BatchHashMismatch(batchHash, header.batchHash);
        // 12. The withdrawals fit the withdrawals tree.
        if (header.withdrawalCount > MAX_WITHDRAWALS) {
            revert Settlement_TooManyWithdrawals(header.withdrawalCount, MAX_WITHDRAWALS);
        }
        // 13. System time never goes backwards and never beyond the chain's time.
        if (header.timestamp < prev.timestamp || header.timestamp > block.timestamp) {
            revert Settlement_BadTimestamp(header.timestamp, prev.timestamp, block.timestamp);
        }
    }

    // ------------------------------------------------------------------ withdrawals

    /// @inheritdoc ISettlement
    function claimWithdrawal(
        uint64 seq,
        uint32 index,
        uint32 accountId,
        address recipient,
        uint128 amount,
        bytes32[] calldata proof
    ) external {
        checkWithdrawal(seq, index, accountId, recipient, amount, proof);
        // Marked spent BEFORE the tokens move, so no re-entry through the token can claim it twice.
        _consumeWithdrawal(index);
        // Checked: the claimed total never exceeds what the vault ever paid out, far below 2^128.
        _status.withdrawalsClaimed += amount;
        ICollateralVault(vault).payOut(recipient, amount);
        emit WithdrawalClaimed(seq, index, accountId, recipient, amount);
    }

    /// @inheritdoc ISettlement
    function checkWithdrawal(
        uint64 seq,
        uint32 index,
        uint32 accountId,
        address recipient,
        uint128 amount,
        bytes32[] calldata proof
    ) public view {
        // 1. The checkpoint exists.
        Checkpoint storage cp = _checkpoint(seq);
        // 2. Its challenge window has passed (before the freeze, if frozen).
        uint64 finalAt = _finalizesAt(seq, cp);
        if (finalAt > _now()) revert Settlement_NotFinalized(seq, finalAt);
        // 3. The leaf was appended up to this checkpoint (withdrawalCount is cumulative).
        if (index >= cp.withdrawalCount) revert Settlement_WithdrawalIndexOutOfRange(index, cp.withdrawalCount);
        // 4. It was not paid before, through this checkpoint or any other.
        if (isClaimed(index)) revert Settlement_AlreadyClaimed(index);
        // 5. The leaf is in the global withdrawals tree at `index` as of this checkpoint (a malformed proof reverts
        //    inside). The tree is append-only, so every later checkpoint holds the same leaf at the same index.
        bytes32 leafHash = MerkleProofLib.hashLeaf(abi.encode(accountId, recipient, amount));
        if (!MerkleProofLib.verify(cp.withdrawalsRoot, leafHash, index, proof, WITHDRAWAL_TREE_DEPTH)) {
            revert Settlement_InvalidProof();
        }
    }

    /// @dev The single place a withdrawal leaf is spent: test-and-set on the global index, so no path (claims
    ///      through different checkpoints, later escapes of finalized withdrawals) can ever pay a leaf twice.
    function _consumeWithdrawal(uint32 index) private {
        uint256 bit = 1 << (index & 0xff);
        uint256 bits = _claimed[index >> 8];
        if (bits & bit != 0) revert Settlement_AlreadyClaimed(index);
        _claimed[index >> 8] = bits | bit;
    }

    // ------------------------------------------------------------------ forced requests

    /// @inheritdoc ISettlement
    function requestForcedWithdrawal(uint32 accountId, uint128 amount) external payable returns (uint64) {
        // The id must fit the state tree's index layout (reverts LeafLib_AccountOutOfRange).
        LeafLib.accountIndex(accountId);
        if (amount == 0) revert Settlement_ZeroAmount();
        return _requestForced(FORCED_WITHDRAWAL, accountId, 0, amount);
    }

    /// @inheritdoc ISettlement
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
        if (status.frozenAt != 0) revert Settlement_Frozen();
        // 2. The fee is paid exactly (an overpayment would be lost in the bond).
        if (msg.value != forcedRequestFee) revert Settlement_WrongFee(msg.value, forcedRequestFee);
        // 3. One unserved request per (requester, account, kind, market). Keyed by the requester, so a stranger's
        //    request (served as a no-op) never blocks the owner's own. Unserved = not below the latest
        //    checkpoint's forced cursor (a later invalidation reopens requests with their original times).
        bytes32 key = keccak256(abi.encode(msg.sender, accountId, kind, marketId));
        uint64 latest = _forcedLatest[key];
        if (latest != 0) {
            unchecked {
                // latest >= 1.
                latest -= 1;
            }
            if (latest >= _checkpoints[_checkpoints.length - 1].forcedCursor) {
                revert Settlement_ForcedRequestPending(latest);
            }
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
        // index + 1 and forcedCount + 1 are checked: a queue of 2^64 requests is out of reach anyway.
        _forcedLatest[key] = index + 1;
        _status.forcedCount = index + 1;
        // The fee compensates the operator for serving: it joins the bond (withdrawable above the minimum).
        if (msg.value != 0) bond += msg.value;
        emit ForcedRequested(index, kind, msg.sender, accountId, marketId, amount, timestamp, prefixHash);
    }

    // ------------------------------------------------------------------ freeze

    /// @inheritdoc ISettlement
    function freeze() external {
        // 1. Once only: a freeze is permanent.
        if (_status.frozenAt != 0) revert Settlement_Frozen();
        // 2. A forced request is overdue, or nothing finalized for the liveness timeout (both at, not after,
        //    the deadline: `<=`).
        (uint64 forcedAt, uint64 livenessAt) = freezableAt();
        uint8 reason;
        if (forcedAt <= block.timestamp) {
            reason = FREEZE_FORCED_REQUEST_OVERDUE;
        } else if (livenessAt <= block.timestamp) {
            reason = FREEZE_LIVENESS;
        } else {
            revert Settlement_FreezeNotAllowed(forcedAt, livenessAt);
        }

        // The escape checkpoint is the last one final at this moment; from now on `_now()` stays here, so
        // nothing else ever finalizes.
        uint64 seq = _lastFinalizedSeq(uint64(block.timestamp));
        _status.frozenAt = uint64(block.timestamp);
        Checkpoint storage cp = _checkpoints[seq];
        _escapeRoot = cp.stateRoot;
        _escape = Escape({seq: seq, depositCursor: cp.depositCursor, claimsTotal: cp.claimsTotal});
        emit Frozen(msg.sender, reason, seq);

        // The pool: what the vault holds beyond what it still owes outside the escape. Finalized withdrawals
        // not yet claimed (every claim so far is of a checkpoint <= seq, and every later claim is too, so
        // claims and the balance fall together and the pool stays exact) and deposits the escape checkpoint
        // never included (refunded in full; refunds and the balance fall together as well).
        uint256 claimed = _status.withdrawalsClaimed;
        uint256 owed = cp.withdrawalTotal > claimed ? cp.withdrawalTotal - claimed : 0; // cumulative total
        ICollateralVault v = ICollateralVault(vault);
        owed += v.depositTotal() - v.depositedBefore(cp.depositCursor);
        uint256 balance = IERC20(_token).balanceOf(vault);
        uint256 pool = balance > owed ? balance - owed : 0;
        if (pool > type(uint128).max) pool = type(uint128).max;
        _pool.pool = uint128(pool);
        emit EscapePoolFixed(uint128(pool), cp.claimsTotal);
    }

    // ------------------------------------------------------------------ escape

    /// @inheritdoc ISettlement
    function proveMarket(MarketLeaf calldata market, bytes32[] calldata proof) external {
        // 1. Frozen: the root is the escape checkpoint's.
        bytes32 root = _frozenRoot();
        // 2. The id fits the layout (reverts LeafLib_MarketOutOfRange), and the market was not proven before.
        uint16 marketId = market.marketId;
        uint32 index = LeafIndex.unwrap(LeafLib.marketIndex(marketId));
        if (_escapeMarkets[marketId].proven) revert Settlement_MarketAlreadyProven(marketId);
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

    /// @inheritdoc ISettlement
    function escape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        returns (uint256 payout)
    {
        EscapeResult memory r = _checkEscape(account, proof, positions);
        // Every leaf of the call is marked in one write, the pool's tally updated and the owner credited; no
        // external call anywhere (the owner pulls with withdrawEscaped).
        _escaped[account.accountId >> 1] = r.escapedWord;
        _pool.paid = r.paid;
        payout = r.payout;
        escapeBalance[account.owner] += payout;
        if (r.accountEscaped) emit AccountEscaped(account.accountId, account.owner, r.accountValue, r.accountPayout);
        for (uint256 i; i < positions.length; ++i) {
            emit PositionEscaped(
                account.accountId, positions[i].position.marketId, account.owner, r.values[i], r.payouts[i]
            );
        }
    }

    /// @inheritdoc ISettlement
    function checkEscape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        external
        view
        returns (uint256 value, uint256 payout)
    {
        EscapeResult memory r = _checkEscape(account, proof, positions);
        return (r.value, r.payout);
    }

    /// @inheritdoc ISettlement
    function refundDeposit(uint64 index, address owner, uint128 amount, uint64 timestamp) external {
        // 1. Refunds exist only after a freeze.
        if (_status.frozenAt == 0) revert Settlement_NotFrozen();
        // 2. The escape checkpoint did not include the deposit (an included one escapes as collateral).
        uint64 cursor = _escape.depositCursor;
        if (index < cursor) revert Settlement_DepositIncluded(index, cursor);
        // 3. The deposit exists.
        ICollateralVault v = ICollateralVault(vault);
        uint64 count = v.depositCount();
        if (index >= count) revert Settlement_UnknownDeposit(index, count);
        // 4. It was not refunded before (test-and-set).
        uint256 bit = 1 << (index & 0xff);
        uint256 bits = _refunded[index >> 8];
        if (bits & bit != 0) revert Settlement_AlreadyRefunded(index);
        // 5. The data is the vault's queue entry: it extends h_index to h_{index+1}.
        bytes32 expected = v.depositPrefixHash(index + 1);
        bytes32 got = keccak256(abi.encode(v.depositPrefixHash(index), index, owner, amount, timestamp));
        if (got != expected) revert Settlement_DepositMismatch(expected, got);

        _refunded[index >> 8] = bits | bit;
        escapeBalance[owner] += amount;
        emit DepositRefunded(index, owner, amount);
    }

    /// @inheritdoc ISettlement
    function withdrawEscaped() external {
        uint256 amount = escapeBalance[msg.sender];
        if (amount == 0) revert Settlement_NothingToWithdraw();
        // Zeroed BEFORE the tokens move: a re-entry through the token finds nothing left. If the transfer
        // reverts (a blocklisted owner, a hook that refuses), the whole call reverts and the balance stays.
        escapeBalance[msg.sender] = 0;
        ICollateralVault(vault).payOut(msg.sender, amount);
        emit EscapeWithdrawn(msg.sender, amount);
    }

    /// @dev What an escape call would do: the account's new escaped word, the pool's new tally, the values
    ///      and payouts. Reverts with the first rule broken, in the order ISettlement.checkEscape lists them.
    function _checkEscape(AccountLeaf calldata account, bytes32[] calldata proof, PositionWitness[] calldata positions)
        private
        view
        returns (EscapeResult memory r)
    {
        // 1. Frozen: the root is the escape checkpoint's, never a pending or older one.
        bytes32 root = _frozenRoot();
        // 2. The account id fits the layout and its leaf is in the escape state (it names the owner).
        uint32 accountIndex = LeafIndex.unwrap(LeafLib.accountIndex(account.accountId));
        _prove(root, LeafLib.hash(account), accountIndex, proof);
        // 3. It has an owner: the insurance account (owner 0) holds the exchange's own positions, which are
        //    not claims (nobody could withdraw a credit to the zero address).
        if (account.owner == address(0)) revert Settlement_NoOwner(account.accountId);

        uint256 lane = (account.accountId & 1) * 128;
        r.escapedWord = _escaped[account.accountId >> 1];
        Pool memory pool = _pool;
        uint128 total = _escape.claimsTotal;

        // 4. The account leaf escapes with the first call for the account; a call must escape something.
        uint256 accountBit = 1 << (lane + ACCOUNT_ESCAPED_BIT);
        if (r.escapedWord & accountBit == 0) {
            r.escapedWord |= accountBit;
            r.accountEscaped = true;
            r.accountValue = account.collateral;
            r.accountPayout = _payout(r.accountValue, pool, total);
            // payout <= pool.pool - pool.paid (checked in _payout), so the tally stays <= pool < 2^128.
            pool.paid += uint128(r.accountPayout);
        } else if (positions.length == 0) {
            revert Settlement_AlreadyEscaped(accountIndex);
        }
        r.value = r.accountValue;
        r.payout = r.accountPayout;

        // 5. Each position, in order (rules a-f).
        r.values = new uint256[](positions.length);
        r.payouts = new uint256[](positions.length);
        for (uint256 i; i < positions.length; ++i) {
            uint256 value = _positionValue(root, account.accountId, lane, positions[i], r);
            // f. The payout within the pool; as in 4, the tally stays <= pool < 2^128.
            uint256 one = _payout(value, pool, total);
            pool.paid += uint128(one);
            r.values[i] = value;
            r.payouts[i] = one;
            r.value += value;
            r.payout += one;
        }
        r.paid = pool.paid;
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
        if (position.accountId != accountId) revert Settlement_AccountMismatch(accountId, position.accountId);
        // b. The market id fits the layout (reverts LeafLib_MarketOutOfRange).
        uint32 index = LeafIndex.unwrap(LeafLib.positionIndex(accountId, position.marketId));
        // c. Not escaped before, nor earlier in this call.
        uint256 bit = 1 << (lane + position.marketId);
        if (r.escapedWord & bit != 0) revert Settlement_AlreadyEscaped(index);
        r.escapedWord |= bit;
        // d. Its market was proven.
        EscapeMarket memory market = _escapeMarkets[position.marketId];
        if (!market.proven) revert Settlement_MarketNotProven(position.marketId);
        // e. The leaf is in the escape state.
        _prove(root, LeafLib.hash(position), index, witness.proof);
        return EscapeLib.positionValue(position, market.markPrice, market.fundingIndex, market.notionalExp);
    }

    /// @dev Reverts unless `proof` proves `leafHash` at `index` under `root` (a malformed proof reverts in
    ///      MerkleProofLib: wrong length, index out of range).
    function _prove(bytes32 root, bytes32 leafHash, uint32 index, bytes32[] calldata proof) private pure {
        if (!MerkleProofLib.verify(root, leafHash, index, proof, STATE_TREE_DEPTH)) {
            revert Settlement_InvalidStateProof(index, root);
        }
    }

    /// @dev The escape root; reverts Settlement_NotFrozen before the freeze.
    function _frozenRoot() private view returns (bytes32) {
        if (_status.frozenAt == 0) revert Settlement_NotFrozen();
        return _escapeRoot;
    }

    /// @dev The payout of a claim worth `value` (EscapeLib.haircut) with the defensive cap: the escapes
    ///      together never take more than the pool, whatever claimsTotal the operator committed.
    function _payout(uint256 value, Pool memory pool, uint128 total) private pure returns (uint256 payout) {
        payout = EscapeLib.haircut(value, pool.pool, total);
        uint256 remaining = pool.pool - pool.paid; // paid <= pool always
        if (payout > remaining) revert Settlement_EscapePoolExceeded(payout, remaining);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ISettlement
    function latestSeq() public view returns (uint64) {
        unchecked {
            // The array always holds the genesis checkpoint, so length >= 1.
            return uint64(_checkpoints.length - 1);
        }
    }

    /// @inheritdoc ISettlement
    function lastFinalizedSeq() external view returns (uint64) {
        return _lastFinalizedSeq(_now());
    }

    /// @inheritdoc ISettlement
    function getCheckpoint(uint64 seq) external view returns (Checkpoint memory) {
        return _checkpoint(seq);
    }

    /// @inheritdoc ISettlement
    function isFinalized(uint64 seq) external view returns (bool) {
        if (seq >= _checkpoints.length) return false;
        return _finalizesAt(seq, _checkpoints[seq]) <= _now();
    }

    /// @inheritdoc ISettlement
    /// @dev The nominal time; after a freeze a checkpoint whose time is after `frozenAt` never finalizes.
    function finalizesAt(uint64 seq) external view returns (uint64) {
        return _finalizesAt(seq, _checkpoint(seq));
    }

    /// @inheritdoc ISettlement
    function isClaimed(uint32 index) public view returns (bool) {
        return _claimed[index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @inheritdoc ISettlement
    function cumulativeWithdrawalTotal(uint64 seq) external view returns (uint128) {
        return _checkpoint(seq).withdrawalTotal;
    }

    /// @inheritdoc ISettlement
    function forcedRequestCount() external view returns (uint64) {
        return _status.forcedCount;
    }

    /// @inheritdoc ISettlement
    function forcedPrefixHash(uint64 cursor) public view returns (bytes32) {
        uint64 count = _status.forcedCount;
        if (cursor > count) revert Settlement_ForcedCursorOutOfRange(0, cursor, count);
        return cursor == 0 ? bytes32(0) : _forcedPrefixHashes[cursor - 1];
    }

    /// @inheritdoc ISettlement
    function forcedRequestedAt(uint64 index) external view returns (uint64) {
        uint64 count = _status.forcedCount;
        if (index >= count) revert Settlement_UnknownForcedRequest(index, count);
        return _forcedTime(index);
    }

    /// @inheritdoc ISettlement
    function freezableAt() public view returns (uint64 forcedAt, uint64 livenessAt) {
        uint64 cursor = _checkpoints[_checkpoints.length - 1].forcedCursor;
        // time + forcedDeadline < 2^64: block times are far below 2^63 and forcedDeadline <= MAX_TIMEOUT.
        forcedAt = cursor < _status.forcedCount ? _forcedTime(cursor) + forcedDeadline : type(uint64).max;
        uint64 seq = _lastFinalizedSeq(_now());
        livenessAt = _finalizesAt(seq, _checkpoints[seq]) + livenessTimeout;
    }

    /// @inheritdoc ISettlement
    function withdrawalsClaimed() external view returns (uint128) {
        return _status.withdrawalsClaimed;
    }

    /// @inheritdoc ISettlement
    function isFrozen() external view returns (bool) {
        return _status.frozenAt != 0;
    }

    /// @inheritdoc ISettlement
    function frozenAt() external view returns (uint64) {
        return _status.frozenAt;
    }

    /// @inheritdoc ISettlement
    function frozenSeq() external view returns (uint64) {
        if (_status.frozenAt == 0) revert Settlement_NotFrozen();
        return _escape.seq;
    }

    /// @inheritdoc ISettlement
    function escapePool() external view returns (uint128 pool, uint128 paid, uint128 claimsTotal) {
        return (_pool.pool, _pool.paid, _escape.claimsTotal);
    }

    /// @inheritdoc ISettlement
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

    /// @inheritdoc ISettlement
    function escapeMarket(uint16 marketId) external view returns (EscapeMarket memory) {
        return _escapeMarkets[marketId];
    }

    /// @inheritdoc ISettlement
    function isRefunded(uint64 index) external view returns (bool) {
        return _refunded[index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @inheritdoc ISettlement
    /// @dev Cached at deployment; recomputed if the chain id changed since (a fork), so signatures made for
    ///      one chain never verify on the other.
    function domainSeparator() external view returns (bytes32) {
        if (block.chainid == _deployChainId) return _deployDomainSeparator;
        return RequestLib.domainSeparator(block.chainid, address(this));
    }

    /// @dev The stored checkpoint `seq`; reverts Settlement_UnknownCheckpoint if there is none.
    function _checkpoint(uint64 seq) private view returns (Checkpoint storage) {
        if (seq >= _checkpoints.length) revert Settlement_UnknownCheckpoint(seq);
        return _checkpoints[seq];
    }

    /// @dev The time finality is evaluated at: the block time, or the freeze time once frozen (frozenAt is a
    ///      past block time, so this is min(block.timestamp, frozenAt)).
    function _now() private view returns (uint64) {
        uint64 at = _status.frozenAt;
        return at != 0 ? at : uint64(block.timestamp);
    }

    /// @dev The latest checkpoint final at time `at`. Binary search: finality is monotonic along the chain
    ///      because postedAt is, and genesis is final.
    function _lastFinalizedSeq(uint64 at) private view returns (uint64) {
        uint256 lo = 0; // known final
        uint256 hi = _checkpoints.length - 1; // upper bound of the search
        while (lo < hi) {
            uint256 mid;
            unchecked {
                // lo < hi < array length (< 2^64), so the sum cannot overflow; mid > lo.
                mid = (lo + hi + 1) / 2;
            }
            if (_finalizesAt(uint64(mid), _checkpoints[mid]) <= at) {
                lo = mid;
            } else {
                unchecked {
                    // mid > lo >= 0, so mid >= 1.
                    hi = mid - 1;
                }
            }
        }
        return uint64(lo);
    }

    /// @dev Timestamp of forced request `index` (the caller checked index < forcedCount).
    function _forcedTime(uint64 index) private view returns (uint64) {
        return uint64(_forcedTimes[index >> 2] >> ((index & 3) * 64));
    }

    /// @dev When checkpoint `seq` (stored at `cp`) is final: at its post for genesis, after the window otherwise.
    ///      postedAt + challengeWindow < 2^64 for any block time before year 5e11 (window <= 365 days).
    function _finalizesAt(uint64 seq, Checkpoint storage cp) private view returns (uint64) {
        return seq == 0 ? cp.postedAt : cp.postedAt + challengeWindow;
    }
}

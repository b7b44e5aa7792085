// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ISettlement} from "./interfaces/ISettlement.sol";
import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IEscapeHatch} from "./interfaces/IEscapeHatch.sol";
import {CollateralVault} from "./CollateralVault.sol";
import {BatchLib} from "./libraries/BatchLib.sol";
import {EscapeHatch} from "./EscapeHatch.sol";
import {CheckpointHeader, CheckpointLib} from "./libraries/CheckpointLib.sol";
import {MerkleProofLib} from "./libraries/MerkleProofLib.sol";
import {RequestLib} from "./libraries/RequestLib.sol";

/// @title Settlement
/// @notice Checkpoint chain, operator bond and withdrawal claims of the isoperp exchange (docs/PROTOCOL.md,
///         section 4). It creates the collateral vault and the escape hatch (forced requests, freeze, escapes).
/// @dev Checkpoints are stored in a mapping keyed by sequence number with a stored length `_count` (latest seq
///      + 1); seq 0 is the genesis checkpoint, fixed at deployment and final from the start. The dispute contract
///      (`disputes`, IDisputeGame) may invalidate a pending checkpoint and every later one in O(1) by lowering
///      `_count`; the next post then reuses the sequence number (entries at or above `_count` are stale and never
///      read).
///      Finality is lazy: checkpoint `seq > 0` is final once
///      `postedAt + challengeWindow <= now`, where `now` is the block time, or the freeze time once frozen (so
///      nothing finalizes after a freeze; the freeze time is the escape hatch's). Because `postedAt` never decreases along the chain, the finalized
///      checkpoints are always a prefix of it (`lastFinalizedSeq` relies on that).
contract Settlement is ISettlement {
    /// @notice Protocol version of the batch format and encodings.
    uint8 public constant PROTOCOL_VERSION = 2;
    /// @notice Largest batch accepted by `postCheckpoint`, in bytes.
    uint256 public constant MAX_BATCH_BYTES = 131_072;
    /// @notice Most records a batch may hold: the trace tree's capacity, 2^TRACE_TREE_DEPTH.
    uint256 public constant MAX_BATCH_RECORDS = 1 << MerkleProofLib.TRACE_TREE_DEPTH;
    /// @notice Bytes of the batch data's own header: version (1 byte) and record count (4 bytes).
    uint256 public constant BATCH_PREFIX_BYTES = 5;
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
    /// @notice Longest accepted forced-request deadline, liveness timeout and claim window (same reason).
    uint64 public constant MAX_TIMEOUT = 365 days;

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
    address public immutable escapeHatch;
    /// @inheritdoc ISettlement
    uint64 public immutable forcedDeadline;
    /// @inheritdoc ISettlement
    address public immutable disputes;

    /// @dev Chain id at deployment, and the domain separator computed for it.
    uint256 private immutable _deployChainId;
    bytes32 private immutable _deployDomainSeparator;

    /// @inheritdoc ISettlement
    uint256 public bond;

    /// @dev `_checkpoints[seq]` for seq < _count; entries at or above `_count` are stale (invalidated) and never
    ///      read: every read goes through `_checkpoint`, which bounds seq by `_latestSeq()`, or reads the latest.
    mapping(uint64 seq => Checkpoint) private _checkpoints;

    /// @dev Number of live checkpoints, genesis included (>= 1): the latest seq + 1. A length rather than the
    ///      latest seq so that the slot is never zero: every post and invalidation rewrites a nonzero word
    ///      (no 20k zero-to-nonzero store on the first post, no refund games).
    uint64 private _count;

    /// @dev Claimed withdrawals, keyed by the global leaf index only: bit `index & 255` of word `index >> 8`.
    mapping(uint256 word => uint256 bits) private _claimed;

    /// @dev Sum of every claimed withdrawal (for the escape pool).
    uint128 private _withdrawalsClaimed;


    /// @dev Restricts a function to the operator.
    modifier onlyOperator() {
        if (msg.sender != operator) revert Settlement_NotOperator(msg.sender);
        _;
    }

    /// @param token The collateral token (a contract).
    /// @param operator_ The operator, the only address that may post checkpoints and bond.
    /// @param oracle_ The price oracle's signing address (fraud-proof phase; nonzero).
    /// @param disputes_ The dispute contract (IDisputeGame), the only address that may invalidate checkpoints
    ///        (nonzero). It is deployed after this contract and knows it, so the deployer precomputes its address
    ///        (its CREATE nonce); the DisputeGame's constructor checks that this contract names it.
    /// @param minBond_ The bond the operator must keep to post (wei).
    /// @param periods The protocol's periods in seconds (ISettlement.Periods), each in (0, 365 days]:
    ///        challengeWindow between a post and its finality; forcedDeadline for serving a forced request or
    ///        consuming a deposit, below the challenge window (a user who files a forced request the moment a
    ///        bad checkpoint appears can then freeze, escaping against the last good finalized state, before
    ///        the bad checkpoint finalizes); livenessTimeout without finality before anyone may freeze, above
    ///        the challenge window (a checkpoint needs the window to finalize, so a live honest operator is never
    ///        freezable for liveness); claimWindow after a freeze, during which escapes register claims.
    /// @param forcedRequestFee_ Wei a forced request pays (accrued in the hatch for the operator); may be 0.
    /// @param genesisStateRoot State root of the genesis checkpoint (market leaves and the exchange leaf).
    /// @param genesisMarketLeaves The genesis market leaves (abi-encoded), published in `GenesisMarketsListed`.
    /// @param genesisMarketSymbols Their display symbols, published with them.
    constructor(
        address token,
        address operator_,
        address oracle_,
        address disputes_,
        uint256 minBond_,
        Periods memory periods,
        uint256 forcedRequestFee_,
        bytes32 genesisStateRoot,
        bytes[] memory genesisMarketLeaves,
        string[] memory genesisMarketSymbols
    ) {
        // A token without code would make every transfer a silent no-op (this also rejects address(0)).
        if (token.code.length == 0) revert Settlement_InvalidParameter();
        if (operator_ == address(0) || oracle_ == address(0) || disputes_ == address(0)) {
            revert Settlement_InvalidParameter();
        }
        _checkPeriods(periods);

        operator = operator_;
        oracle = oracle_;
        disputes = disputes_;
        minBond = minBond_;
        challengeWindow = periods.challengeWindow;
        forcedDeadline = periods.forcedDeadline;
        (vault, escapeHatch) = _createVaultAndHatch(token, operator_, periods, forcedRequestFee_);
        _deployChainId = block.chainid;
        _deployDomainSeparator = RequestLib.domainSeparator(block.chainid, address(this));

        // Genesis: every header field zero except the state root; posted (and final) now. No CheckpointPosted
        // event: that event promises batch data in its transaction's calldata, and genesis has none.
        CheckpointHeader memory genesis;
        genesis.stateRoot = genesisStateRoot;
        _checkpoints[0] = Checkpoint({
            checkpointHash: CheckpointLib.hash(genesis),
            stateRoot: genesisStateRoot,
            withdrawalsRoot: bytes32(0),
            withdrawalCount: 0,
            depositCursor: 0,
            forcedCursor: 0,
            timestamp: 0,
            postedAt: uint64(block.timestamp),
            withdrawalTotal: 0
        });
        _count = 1;
        emit GenesisMarketsListed(genesisStateRoot, genesisMarketLeaves, genesisMarketSymbols);
    }

    /// @dev The constructor's period checks: each in range, then the two orderings (see the constructor).
    function _checkPeriods(Periods memory p) private pure {
        if (p.challengeWindow == 0 || p.challengeWindow > MAX_CHALLENGE_WINDOW) {
            revert Settlement_ChallengeWindowOutOfRange(p.challengeWindow, MAX_CHALLENGE_WINDOW);
        }
        if (p.forcedDeadline == 0 || p.forcedDeadline > MAX_TIMEOUT) {
            revert Settlement_ForcedDeadlineOutOfRange(p.forcedDeadline, MAX_TIMEOUT);
        }
        if (p.livenessTimeout == 0 || p.livenessTimeout > MAX_TIMEOUT) {
            revert Settlement_LivenessTimeoutOutOfRange(p.livenessTimeout, MAX_TIMEOUT);
        }
        if (p.claimWindow == 0 || p.claimWindow > MAX_TIMEOUT) {
            revert Settlement_ClaimWindowOutOfRange(p.claimWindow, MAX_TIMEOUT);
        }
        if (p.forcedDeadline >= p.challengeWindow) {
            revert Settlement_ForcedDeadlineNotBelowChallengeWindow(p.forcedDeadline, p.challengeWindow);
        }
        if (p.livenessTimeout <= p.challengeWindow) {
            revert Settlement_LivenessTimeoutNotAboveChallengeWindow(p.livenessTimeout, p.challengeWindow);
        }
    }

    /// @dev Creates the vault and the hatch. The vault (this contract's first CREATE, nonce 1) must know the
    ///      hatch (the second, nonce 2) to let it pay out, and the hatch must know the vault: the hatch's address
    ///      is computed from the nonce first.
    function _createVaultAndHatch(address token, address operator_, Periods memory p, uint256 forcedRequestFee_)
        private
        returns (address vault_, address hatch)
    {
        address predicted = _createAddress(2);
        vault_ = address(new CollateralVault(token, predicted));
        hatch = address(
            new EscapeHatch(
                vault_, token, operator_, p.forcedDeadline, p.livenessTimeout, forcedRequestFee_, p.claimWindow
            )
        );
        if (hatch != predicted) revert Settlement_HatchAddressMismatch(predicted, hatch);
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
        // The bond a fraud proof slashes stays while any checkpoint can still be disputed. Finality is a prefix
        // of the chain, so every checkpoint is final exactly when the latest one is.
        uint64 latest = _latestSeq();
        uint64 now_ = _now();
        if (_finalizesAt(latest, _checkpoints[latest]) > now_) {
            revert Settlement_CheckpointsPending(latest, _lastFinalizedSeq(now_));
        }
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
        // Every field the header-vs-state dispute compares (IDisputeGame.proveHeaderMismatch) is stored here.
        // header.seq == latest + 1 (rule 3); the slot may hold an invalidated checkpoint, overwritten whole.
        _checkpoints[header.seq] = Checkpoint({
            checkpointHash: checkpointHash,
            stateRoot: header.stateRoot,
            withdrawalsRoot: header.withdrawalsRoot,
            withdrawalCount: header.withdrawalCount,
            depositCursor: header.depositCursor,
            forcedCursor: header.forcedCursor,
            timestamp: header.timestamp,
            postedAt: postedAt,
            withdrawalTotal: header.withdrawalTotal
        });
        unchecked {
            // header.seq == latest + 1 <= 2^63 (at most one post per block), far from the uint64 limit.
            _count = header.seq + 1;
        }
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
        uint64 latest = _latestSeq();
        Checkpoint storage prev = _checkpoints[latest];
        IEscapeHatch hatch = IEscapeHatch(escapeHatch);

        // 0. Nothing is posted after a freeze.
        if (hatch.frozenAt() != 0) revert Settlement_Frozen();
        // 1. Only the operator posts.
        if (msg.sender != operator) revert Settlement_NotOperator(msg.sender);
        // 2. The operator is bonded at least the minimum (the stake a fraud proof slashes).
        if (bond < minBond) revert Settlement_BondTooLow(bond, minBond);
        // 3. The sequence number is the next one (after an invalidation, the invalidated one again).
        uint64 expectedSeq = latest + 1;
        if (header.seq != expectedSeq) revert Settlement_WrongSequence(expectedSeq, header.seq);
        // 4. The header chains onto the latest (not invalidated) checkpoint.
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
        uint64 forcedCount = hatch.forcedRequestCount();
        if (header.forcedCursor < prev.forcedCursor || header.forcedCursor > forcedCount) {
            revert Settlement_ForcedCursorOutOfRange(prev.forcedCursor, header.forcedCursor, forcedCount);
        }
        // 8. The served forced requests are exactly the queue's first `forcedCursor` entries.
        bytes32 forcedHash = hatch.forcedPrefixHash(header.forcedCursor);
        if (header.forcedPrefixHash != forcedHash) {
            revert Settlement_ForcedPrefixMismatch(forcedHash, header.forcedPrefixHash);
        }
        // 9. No forced request is left unserved past its deadline: the first one not served must still be on time.
        if (header.forcedCursor < forcedCount) {
            uint64 deadline = hatch.forcedRequestedAt(header.forcedCursor) + forcedDeadline;
            if (deadline <= block.timestamp) revert Settlement_ForcedRequestOverdue(header.forcedCursor, deadline);
        }
        // 10. The batch fits the size limit, and the header states its length (so a proof can bound offsets).
        if (batchData.length > MAX_BATCH_BYTES) revert Settlement_BatchTooLarge(batchData.length, MAX_BATCH_BYTES);
        if (header.batchLength != batchData.length) {
            revert Settlement_BatchLengthMismatch(batchData.length, header.batchLength);
        }
        // 10a. The data starts with its own header: the protocol version and a record count equal to the header's
        //      (so that a proof never meets data without a count, or a count the trace disagrees with).
        if (batchData.length < BATCH_PREFIX_BYTES) revert Settlement_BatchTooShort(batchData.length);
        if (uint8(batchData[0]) != PROTOCOL_VERSION) {
            revert Settlement_BatchVersionMismatch(PROTOCOL_VERSION, uint8(batchData[0]));
        }
        // The records fit the trace tree, and the data holds as many as the header says.
        if (header.recordCount > MAX_BATCH_RECORDS) {
            revert Settlement_TooManyRecords(header.recordCount, MAX_BATCH_RECORDS);
        }
        uint32 dataCount = uint32(bytes4(batchData[1:BATCH_PREFIX_BYTES]));
        if (dataCount != header.recordCount) revert Settlement_RecordCountMismatch(dataCount, header.recordCount);
        // 11. The header commits to exactly this batch data, chunk by chunk (a proof opens one chunk).
        bytes32 batchHash = BatchLib.hash(batchData);
        if (header.batchHash != batchHash) revert Settlement_BatchHashMismatch(batchHash, header.batchHash);
        // 12. The withdrawals tree only grows (its fields are cumulative copies of the exchange leaf's) and fits
        //     its depth. A checkpoint that shrank them would un-withdraw paid value; one that grows them wrongly
        //     is provably wrong against its state (the exchange leaf).
        if (header.withdrawalCount < prev.withdrawalCount || header.withdrawalTotal < prev.withdrawalTotal) {
            revert Settlement_WithdrawalsShrank(
                prev.withdrawalCount, header.withdrawalCount, prev.withdrawalTotal, header.withdrawalTotal
            );
        }
        if (header.withdrawalCount > MAX_WITHDRAWALS) {
            revert Settlement_TooManyWithdrawals(header.withdrawalCount, MAX_WITHDRAWALS);
        }
        // 13. System time never goes backwards and never beyond the chain's time.
        if (header.timestamp < prev.timestamp || header.timestamp > block.timestamp) {
            revert Settlement_BadTimestamp(header.timestamp, prev.timestamp, block.timestamp);
        }
    }

    // ------------------------------------------------------------------ disputes

    /// @inheritdoc ISettlement
    function invalidateFrom(uint64 seq) external {
        // 1. Only the dispute contract judges checkpoints; this contract only applies its verdict.
        if (msg.sender != disputes) revert Settlement_NotDisputes(msg.sender);
        // 2. The checkpoint exists (is posted and not invalidated already).
        Checkpoint storage cp = _checkpoint(seq);
        // 3. It is still pending: a final checkpoint is never undone (claims may have paid against it). Genesis is
        //    final from the start, so seq > 0.
        uint64 finalAt = _finalizesAt(seq, cp);
        if (finalAt <= _now()) revert Settlement_CheckpointFinal(seq, finalAt);
        uint64 previousLatest = _latestSeq();
        // The latest becomes seq - 1: the count of live checkpoints is seq (>= 1: genesis is final, rule 3).
        _count = seq;
        emit CheckpointsInvalidated(seq, previousLatest);
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
        _withdrawalsClaimed += amount;
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

    // ------------------------------------------------------------------ views


    /// @inheritdoc ISettlement
    function latestSeq() external view returns (uint64) {
        return _latestSeq();
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
        if (seq > _latestSeq()) return false;
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
    function withdrawalsClaimed() external view returns (uint128) {
        return _withdrawalsClaimed;
    }

    /// @inheritdoc ISettlement
    /// @dev Cached at deployment; recomputed if the chain id changed since (a fork), so signatures made for
    ///      one chain never verify on the other.
    function domainSeparator() external view returns (bytes32) {
        if (block.chainid == _deployChainId) return _deployDomainSeparator;
        return RequestLib.domainSeparator(block.chainid, address(this));
    }

    /// @dev Sequence number of the latest live checkpoint.
    function _latestSeq() private view returns (uint64) {
        unchecked {
            // _count >= 1: set to 1 at genesis, then only to seq + 1 (post) or seq >= 1 (invalidateFrom).
            return _count - 1;
        }
    }

    /// @dev The stored checkpoint `seq`; reverts Settlement_UnknownCheckpoint if there is none.
    function _checkpoint(uint64 seq) private view returns (Checkpoint storage) {
        if (seq > _latestSeq()) revert Settlement_UnknownCheckpoint(seq);
        return _checkpoints[seq];
    }

    /// @dev The time finality is evaluated at: the block time, or the freeze time once frozen (frozenAt is a
    ///      past block time, so this is min(block.timestamp, frozenAt)).
    function _now() private view returns (uint64) {
        uint64 at = IEscapeHatch(escapeHatch).frozenAt();
        return at != 0 ? at : uint64(block.timestamp);
    }

    /// @dev The latest checkpoint final at time `at`. Binary search: finality is monotonic along the chain
    ///      because postedAt is, and genesis is final.
    function _lastFinalizedSeq(uint64 at) private view returns (uint64) {
        uint64 lo = 0; // known final
        uint64 hi = _latestSeq(); // upper bound of the search
        while (lo < hi) {
            uint64 mid;
            unchecked {
                // lo < hi <= latest < 2^63 (one post per block), so the sum cannot overflow; mid > lo.
                mid = (lo + hi + 1) / 2;
            }
            if (_finalizesAt(mid, _checkpoints[mid]) <= at) {
                lo = mid;
            } else {
                unchecked {
                    // mid > lo >= 0, so mid >= 1.
                    hi = mid - 1;
                }
            }
        }
        return lo;
    }

    /// @dev When checkpoint `seq` (stored at `cp`) is final: at its post for genesis, after the window otherwise.
    ///      postedAt + challengeWindow < 2^64 for any block time before year 5e11 (window <= 365 days).
    function _finalizesAt(uint64 seq, Checkpoint storage cp) private view returns (uint64) {
        return seq == 0 ? cp.postedAt : cp.postedAt + challengeWindow;
    }

    /// @dev The address of this contract's CREATE with nonce `nonce` (1 <= nonce < 0x80):
    ///      keccak256(rlp([address(this), nonce]))[12:], the RLP list being 0xd6 0x94 ‖ address ‖ nonce.
    function _createAddress(uint8 nonce) private view returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xd6), bytes1(0x94), address(this), nonce)))));
    }
}

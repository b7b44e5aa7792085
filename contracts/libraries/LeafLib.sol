// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {MerkleProofLib} from "./MerkleProofLib.sol";

/// @notice Index of a leaf in the state tree: `kind << 30 | account << 6 | sub` (docs/PROTOCOL.md, section 2).
/// @dev A distinct type so that a raw account or market id can never be passed where a tree index is expected.
///      The state tree has depth 32, so every index fits a uint32.
type LeafIndex is uint32;

/// @notice An account leaf (leaf type 1) without its leaf-type word, which LeafLib adds.
struct AccountLeaf {
    uint32 accountId;
    address owner;
    uint128 collateral;
    uint64 nonce;
}

/// @notice An isolated-position leaf (leaf type 2) without its leaf-type word.
struct PositionLeaf {
    uint32 accountId;
    uint16 marketId;
    int64 size;
    int128 quote;
    int128 basis;
    int128 fundingIndex;
}

/// @notice A market leaf (leaf type 3) without its leaf-type word.
struct MarketLeaf {
    uint16 marketId;
    uint64 markPrice;
    uint64 markTime;
    int128 fundingIndex;
    uint64 fundingTime;
    uint32 imfPpm;
    uint32 mmfPpm;
    int8 notionalExp;
    int32 makerFeePpm;
    int32 takerFeePpm;
    uint64 minSize;
    uint64 sizeStep;
    uint64 priceTick;
    uint64 openInterest;
}

/// @notice The exchange leaf (leaf type 4, v2) without its leaf-type word.
/// @dev withdrawalsRoot, withdrawalCount and withdrawalTotal commit to the global append-only withdrawals tree
///      (depth 32): its root, its number of leaves and the sum of their amounts, cumulative since genesis.
struct ExchangeLeaf {
    int128 insuranceFund;
    uint128 feeBalance;
    uint32 nextAccountId;
    uint64 depositCursor;
    uint64 forcedCursor;
    bytes32 withdrawalsRoot;
    uint64 withdrawalCount;
    uint128 withdrawalTotal;
}

/// @title LeafLib
/// @notice Encodings, hashes and tree indices of the state-tree leaves (docs/PROTOCOL.md, section 2).
/// @dev The structs carry the protocol fields in protocol order WITHOUT the leading `uint8 leafType` word:
///      the type is a property of the struct, so LeafLib writes the constant itself and a caller can never
///      encode a leaf under another kind's type. `encode(leaf) = abi.encode(uint8 LEAF_TYPE_x, fields...)`.
///      Every struct is static (value types only), and ABI-encoding a static tuple places its words inline,
///      so `abi.encode(leafType, leaf)` is byte-for-byte `abi.encode(leafType, leaf.f1, ..., leaf.fn)`.
library LeafLib {
    /// @notice Leaf-type word of an account leaf.
    uint8 internal constant LEAF_TYPE_ACCOUNT = 1;
    /// @notice Leaf-type word of a position leaf.
    uint8 internal constant LEAF_TYPE_POSITION = 2;
    /// @notice Leaf-type word of a market leaf.
    uint8 internal constant LEAF_TYPE_MARKET = 3;
    /// @notice Leaf-type word of the exchange leaf.
    uint8 internal constant LEAF_TYPE_EXCHANGE = 4;
    /// @notice Leaf-type word of an order-fill slot (reserved for the engine issue).
    uint8 internal constant LEAF_TYPE_ORDER = 5;

    /// @notice Bit position of the leaf kind in an index.
    uint8 internal constant KIND_SHIFT = 30;
    /// @notice Bit position of the account field in an index.
    uint8 internal constant ACCOUNT_SHIFT = 6;
    /// @notice Number of account ids (ids are < 2^24).
    uint256 internal constant MAX_ACCOUNTS = 1 << 24;
    /// @notice Number of market ids (ids are < 64).
    uint256 internal constant MAX_MARKETS = 1 << 6;
    /// @notice Index kind of account leaves.
    uint32 internal constant KIND_ACCOUNT = 0;
    /// @notice Index kind of isolated-position leaves.
    uint32 internal constant KIND_POSITION = 1;
    /// @notice Index kind of order-fill slots (reserved).
    uint32 internal constant KIND_ORDER = 2;
    /// @notice Index kind of the global leaves (markets and the exchange leaf).
    uint32 internal constant KIND_GLOBAL = 3;
    /// @notice Account field of global market leaves.
    uint32 internal constant GLOBAL_MARKETS = 0;
    /// @notice Account field of the global exchange leaf.
    uint32 internal constant GLOBAL_EXCHANGE = 1;

    /// @notice Index of the exchange leaf: kind 3, account field 1, sub 0.
    LeafIndex internal constant EXCHANGE_INDEX =
        LeafIndex.wrap(uint32(KIND_GLOBAL << KIND_SHIFT | GLOBAL_EXCHANGE << ACCOUNT_SHIFT));

    /// @notice The account id does not fit the index layout.
    /// @param accountId The rejected id.
    /// @param limit Ids must be below this (2^24).
    error LeafLib_AccountOutOfRange(uint32 accountId, uint256 limit);
    /// @notice The market id does not fit the index layout.
    /// @param marketId The rejected id.
    /// @param limit Ids must be below this (64).
    error LeafLib_MarketOutOfRange(uint16 marketId, uint256 limit);

    // ------------------------------------------------------------------ indices

    /// @notice Index of the account leaf of `accountId`: `accountId << 6`.
    function accountIndex(uint32 accountId) internal pure returns (LeafIndex) {
        _checkAccount(accountId);
        // accountId < 2^24, so accountId << 6 < 2^30 fits the uint32 without truncation.
        return LeafIndex.wrap((KIND_ACCOUNT << KIND_SHIFT) | (accountId << ACCOUNT_SHIFT));
    }

    /// @notice Index of the isolated position of `accountId` in `marketId`: `1 << 30 | accountId << 6 | marketId`.
    function positionIndex(uint32 accountId, uint16 marketId) internal pure returns (LeafIndex) {
        _checkAccount(accountId);
        _checkMarket(marketId);
        // accountId < 2^24 and marketId < 2^6 keep the three fields disjoint and below 2^32.
        return LeafIndex.wrap((KIND_POSITION << KIND_SHIFT) | (accountId << ACCOUNT_SHIFT) | uint32(marketId));
    }

    /// @notice Index of the market leaf of `marketId`: `3 << 30 | 0 << 6 | marketId`.
    function marketIndex(uint16 marketId) internal pure returns (LeafIndex) {
        _checkMarket(marketId);
        return LeafIndex.wrap((KIND_GLOBAL << KIND_SHIFT) | (GLOBAL_MARKETS << ACCOUNT_SHIFT) | uint32(marketId));
    }

    // ------------------------------------------------------------------ encodings

    /// @notice abi.encode(uint8(1), accountId, owner, collateral, nonce).
    function encode(AccountLeaf memory leaf) internal pure returns (bytes memory) {
        return abi.encode(LEAF_TYPE_ACCOUNT, leaf);
    }

    /// @notice abi.encode(uint8(2), accountId, marketId, size, quote, basis, fundingIndex).
    function encode(PositionLeaf memory leaf) internal pure returns (bytes memory) {
        return abi.encode(LEAF_TYPE_POSITION, leaf);
    }

    /// @notice abi.encode(uint8(3), marketId, markPrice, ..., openInterest) (15 words).
    function encode(MarketLeaf memory leaf) internal pure returns (bytes memory) {
        return abi.encode(LEAF_TYPE_MARKET, leaf);
    }

    /// @notice abi.encode(uint8(4), insuranceFund, feeBalance, nextAccountId, depositCursor, forcedCursor,
    ///         withdrawalsRoot, withdrawalCount, withdrawalTotal) (9 words).
    function encode(ExchangeLeaf memory leaf) internal pure returns (bytes memory) {
        return abi.encode(LEAF_TYPE_EXCHANGE, leaf);
    }

    // ------------------------------------------------------------------ hashes

    /// @notice keccak256(0x00 ‖ encode(leaf)).
    function hash(AccountLeaf memory leaf) internal pure returns (bytes32) {
        return MerkleProofLib.hashLeaf(encode(leaf));
    }

    /// @notice keccak256(0x00 ‖ encode(leaf)).
    function hash(PositionLeaf memory leaf) internal pure returns (bytes32) {
        return MerkleProofLib.hashLeaf(encode(leaf));
    }

    /// @notice keccak256(0x00 ‖ encode(leaf)).
    function hash(MarketLeaf memory leaf) internal pure returns (bytes32) {
        return MerkleProofLib.hashLeaf(encode(leaf));
    }

    /// @notice keccak256(0x00 ‖ encode(leaf)).
    function hash(ExchangeLeaf memory leaf) internal pure returns (bytes32) {
        return MerkleProofLib.hashLeaf(encode(leaf));
    }

    // ------------------------------------------------------------------ checks

    /// @dev Reverts unless accountId < 2^24.
    function _checkAccount(uint32 accountId) private pure {
        if (accountId >= MAX_ACCOUNTS) revert LeafLib_AccountOutOfRange(accountId, MAX_ACCOUNTS);
    }

    /// @dev Reverts unless marketId < 64.
    function _checkMarket(uint16 marketId) private pure {
        if (marketId >= MAX_MARKETS) revert LeafLib_MarketOutOfRange(marketId, MAX_MARKETS);
    }
}

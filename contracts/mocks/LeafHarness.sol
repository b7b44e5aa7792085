// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccountLeaf, ExchangeLeaf, LeafIndex, LeafLib, MarketLeaf, PositionLeaf} from "../libraries/LeafLib.sol";

/// @title LeafHarness
/// @notice Test-only: exposes LeafLib so Python can compare it with the operator's leaf encodings.
contract LeafHarness {
    function encodeAccount(AccountLeaf memory leaf) external pure returns (bytes memory) {
        return LeafLib.encode(leaf);
    }

    function encodePosition(PositionLeaf memory leaf) external pure returns (bytes memory) {
        return LeafLib.encode(leaf);
    }

    function encodeMarket(MarketLeaf memory leaf) external pure returns (bytes memory) {
        return LeafLib.encode(leaf);
    }

    function encodeExchange(ExchangeLeaf memory leaf) external pure returns (bytes memory) {
        return LeafLib.encode(leaf);
    }

    function hashAccount(AccountLeaf memory leaf) external pure returns (bytes32) {
        return LeafLib.hash(leaf);
    }

    function hashPosition(PositionLeaf memory leaf) external pure returns (bytes32) {
        return LeafLib.hash(leaf);
    }

    function hashMarket(MarketLeaf memory leaf) external pure returns (bytes32) {
        return LeafLib.hash(leaf);
    }

    function hashExchange(ExchangeLeaf memory leaf) external pure returns (bytes32) {
        return LeafLib.hash(leaf);
    }

    function accountIndex(uint32 accountId) external pure returns (uint32) {
        return LeafIndex.unwrap(LeafLib.accountIndex(accountId));
    }

    function positionIndex(uint32 accountId, uint16 marketId) external pure returns (uint32) {
        return LeafIndex.unwrap(LeafLib.positionIndex(accountId, marketId));
    }

    function marketIndex(uint16 marketId) external pure returns (uint32) {
        return LeafIndex.unwrap(LeafLib.marketIndex(marketId));
    }

    function exchangeIndex() external pure returns (uint32) {
        return LeafIndex.unwrap(LeafLib.EXCHANGE_INDEX);
    }

    function leafTypes() external pure returns (uint8, uint8, uint8, uint8, uint8) {
        return (
            LeafLib.LEAF_TYPE_ACCOUNT,
            LeafLib.LEAF_TYPE_POSITION,
            LeafLib.LEAF_TYPE_MARKET,
            LeafLib.LEAF_TYPE_EXCHANGE,
            LeafLib.LEAF_TYPE_ORDER
        );
    }
}

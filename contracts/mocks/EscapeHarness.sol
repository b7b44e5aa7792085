// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EscapeLib} from "../libraries/EscapeLib.sol";
import {MarketLeaf, PositionLeaf} from "../libraries/LeafLib.sol";

/// @title EscapeHarness
/// @notice Test-only: exposes EscapeLib so Python can compare it with isoperp.ledger.arith.
contract EscapeHarness {
    function floorDiv(int256 a, int256 b) external pure returns (int256) {
        return EscapeLib.floorDiv(a, b);
    }

    function notional(int64 size, uint64 price, int8 exp) external pure returns (int256) {
        return EscapeLib.notional(size, price, exp);
    }

    function equity(PositionLeaf calldata position, MarketLeaf calldata market) external pure returns (int256) {
        return EscapeLib.equity(position, market.markPrice, market.fundingIndex, market.notionalExp);
    }

    function positionValue(PositionLeaf calldata position, MarketLeaf calldata market)
        external
        pure
        returns (uint256)
    {
        return EscapeLib.positionValue(position, market.markPrice, market.fundingIndex, market.notionalExp);
    }

    function haircut(uint256 value, uint256 pool, uint256 total) external pure returns (uint256) {
        return EscapeLib.haircut(value, pool, total);
    }
}

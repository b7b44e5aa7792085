// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {PositionLeaf} from "./LeafLib.sol";

/// @title EscapeLib
/// @notice The integer arithmetic of an escape (docs/PROTOCOL.md, sections 1 and 4): signed floor division,
///         notional with a signed decimal exponent, the escape value of an isolated position, the haircut.
/// @dev Exactly the reference arithmetic of `isoperp.ledger.arith` (Python integers): `floorDiv` rounds toward
///      -inf for every sign combination, `notional(size, price, e) = floor(size * price * 10^e)`. Where the
///      exact result does not fit an int256 the functions revert with EscapeLib_Overflow instead of wrapping
///      (tests/contracts/test_escape_lib.py holds them against the Python functions on random inputs).
library EscapeLib {
    /// @notice Parts per million: the funding index is scaled by 1e6 (docs/PROTOCOL.md, section 4).
    int256 internal constant PPM = 1e6;
    /// @dev The largest power of ten below 2^255: 10^76 (10^77 > type(int256).max).
    uint256 private constant MAX_POW10 = 76;

    /// @notice The exact result does not fit an int256.
    error EscapeLib_Overflow();
    /// @notice Division by zero.
    error EscapeLib_DivisionByZero();

    /// @notice floor(a / b), rounding toward -inf for any signs (Python's `a // b`).
    function floorDiv(int256 a, int256 b) internal pure returns (int256 q) {
        if (b == 0) revert EscapeLib_DivisionByZero();
        // The one quotient that does not fit: type(int256).min / -1 = 2^255.
        if (b == -1 && a == type(int256).min) revert EscapeLib_Overflow();
        unchecked {
            // b != 0 and (a, b) != (min, -1): Solidity's truncating `/` and `%` cannot overflow. Truncation and
            // floor differ by exactly one when the division is inexact and the signs differ; q is then >= min + 1
            // (|a / b| < |a| whenever |b| >= 2), so q - 1 cannot wrap.
            q = a / b;
            if (a % b != 0 && ((a < 0) != (b < 0))) q -= 1;
        }
    }

    /// @notice floor(size * price * 10^exp): the signed notional of `size` lots at `price` ticks.
    /// @dev |size * price| < 2^63 * 2^64 = 2^127, so the product itself always fits. For exp >= 0 the scaled
    ///      product must fit an int256; for exp < 0 it is floor-divided by 10^-exp, and once 10^-exp exceeds
    ///      2^127 (-exp >= 39) the quotient is 0 or -1 by sign alone.
    function notional(int64 size, uint64 price, int8 exp) internal pure returns (int256) {
        int256 product = int256(size) * int256(uint256(price));
        if (exp >= 0) {
            if (product == 0) return 0;
            uint256 e = uint256(int256(exp));
            if (e > MAX_POW10) revert EscapeLib_Overflow();
            int256 scale = int256(10 ** e);
            if (product > type(int256).max / scale || product < type(int256).min / scale) revert EscapeLib_Overflow();
            return product * scale;
        }
        uint256 k = uint256(-int256(exp)); // 1..128
        if (k > MAX_POW10) return product < 0 ? int256(-1) : int256(0);
        return floorDiv(product, int256(10 ** k));
    }

    /// @notice The signed equity of a position at its market's mark price, after unpaid funding:
    ///         quote + floor(-(fundingIndex - position.fundingIndex) * size / 1e6)
    ///               + notional(size, markPrice, notionalExp),
    ///         with the market's markPrice, fundingIndex and notionalExp.
    /// @dev The funding term is dYdX's settlement on touch. |funding delta| < 2^129 and |size| <= 2^63, so the
    ///      product fits easily, as does quote + funding (< 2^194). Only the final addition can leave int256,
    ///      and then only when the exact sum does (|notional| < 2^255 and |quote + funding| < 2^194).
    function equity(PositionLeaf calldata position, uint64 markPrice, int128 fundingIndex, int8 notionalExp)
        internal
        pure
        returns (int256)
    {
        int256 fundingDelta = int256(fundingIndex) - int256(position.fundingIndex);
        int256 funding = floorDiv(-fundingDelta * int256(position.size), PPM);
        int256 base = int256(position.quote) + funding;
        int256 n = notional(position.size, markPrice, notionalExp);
        if ((n > 0 && base > type(int256).max - n) || (n < 0 && base < type(int256).min - n)) {
            revert EscapeLib_Overflow();
        }
        return base + n;
    }

    /// @notice What a position is worth in an escape: max(0, equity). A position in bad debt is worth 0.
    function positionValue(PositionLeaf calldata position, uint64 markPrice, int128 fundingIndex, int8 notionalExp)
        internal
        pure
        returns (uint256)
    {
        int256 e = equity(position, markPrice, fundingIndex, notionalExp);
        return e > 0 ? uint256(e) : 0;
    }

    /// @notice The payout of a claim worth `value`: `value` when the pool covers every claim
    ///         (`total <= pool`), `floor(value * pool / total)` otherwise. Independent of claim order.
    /// @dev pool and total are below 2^128 (the escape hatch stores them as uint128). When total > pool, a value
    ///      of at least `total` (only possible in an inconsistent checkpoint) pays `pool`, which is what the
    ///      formula gives at value = total; below it, value * pool < 2^256 so the product cannot overflow.
    function haircut(uint256 value, uint256 pool, uint256 total) internal pure returns (uint256) {
        if (total <= pool) return value;
        if (value >= total) return pool;
        return value * pool / total;
    }
}

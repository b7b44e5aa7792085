"""Integer arithmetic of the protocol (docs/PROTOCOL.md, section 1). Pure functions, ints only.

Rounding rules: notionals floor (toward -inf, which always lowers a signed equity), requirements
and fees round up (``ceil``), credits such as maker rebates round down. Every function rejects
non-``int`` arguments, including ``bool`` (``True`` is an ``int`` to Python, never a quantity
here).
"""

from __future__ import annotations

from isoperp.protocol.constants import FUNDING_PERIOD, PPM


def _int(name: str, value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def _divisor(value: object) -> int:
    divisor = _int("divisor", value)
    if divisor == 0:
        raise ZeroDivisionError("division by zero")
    return divisor


def floor_div(a: int, b: int) -> int:
    """``floor(a / b)``: rounds toward -inf for any signs (``floor_div(-7, 2) == -4``)."""
    if type(a) is int and type(b) is int and b:
        return a // b
    _int("a", a)
    _divisor(b)
    return a // b  # Python's // is floor division for every sign combination


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)``: rounds toward +inf for any signs (``ceil_div(-7, 2) == -3``)."""
    if type(a) is int and type(b) is int and b:
        return -((-a) // b)
    _int("a", a)
    _divisor(b)
    return -((-a) // b)


def trunc_div(a: int, b: int) -> int:
    """``a / b`` rounded toward zero (Solidity's signed ``/``): ``trunc_div(-7, 2) == -3``."""
    if not (type(a) is int and type(b) is int and b):
        _int("a", a)
        _divisor(b)
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def notional(size: int, price: int, notional_exp: int) -> int:
    """``floor(size * price * 10^notional_exp)``; ``notional_exp`` may be negative (then the
    division floors toward -inf)."""
    if type(size) is int and type(price) is int and type(notional_exp) is int:
        if notional_exp == 0:
            return size * price
        if notional_exp > 0:
            return size * price * 10**notional_exp
        return size * price // 10**-notional_exp
    product = _int("size", size) * _int("price", price)
    if _int("notional_exp", notional_exp) >= 0:
        return product * 10**notional_exp
    return product // 10**-notional_exp


def fee(notional_abs: int, fee_ppm: int) -> int:
    """The fee charged on a notional: ``ceil(n * ppm / 1e6)`` for ``ppm >= 0``.

    A negative ``ppm`` is a rebate: the result is ``-floor(n * |ppm| / 1e6)`` (the credit rounds
    down, which is the same as rounding the signed fee toward +inf).
    """
    if type(notional_abs) is int and type(fee_ppm) is int and notional_abs >= 0:
        return -((-notional_abs * fee_ppm) // PPM)
    if _int("notional_abs", notional_abs) < 0:
        raise ValueError(f"notional_abs must be >= 0, got {notional_abs}")
    return -((-notional_abs * _int("fee_ppm", fee_ppm)) // PPM)


def margin_requirement(notional_value: int, fraction_ppm: int) -> int:
    """``ceil(|notional| * fraction_ppm / 1e6)``: the initial or maintenance requirement."""
    if type(notional_value) is int and type(fraction_ppm) is int and fraction_ppm >= 0:
        return -((-abs(notional_value) * fraction_ppm) // PPM)
    if _int("fraction_ppm", fraction_ppm) < 0:
        raise ValueError(f"fraction_ppm must be >= 0, got {fraction_ppm}")
    return -((-abs(_int("notional", notional_value)) * fraction_ppm) // PPM)


initial_margin_requirement = margin_requirement
"""Alias: ``initial_margin_requirement(notional, imf_ppm)``."""

maintenance_margin_requirement = margin_requirement
"""Alias: ``maintenance_margin_requirement(notional, mmf_ppm)``."""


def sign(value: int) -> int:
    """-1, 0 or 1."""
    return (_int("value", value) > 0) - (value < 0)


def funding_index_delta(rate_ppm: int, dt: int, price: int, notional_exp: int) -> int:
    """dYdX's funding index step: ``trunc(rate_ppm * dt * price * 10^notional_exp / 28800)``
    (truncated toward zero), in micro-USDC per lot, scaled by 1e6."""
    numerator = _int("rate_ppm", rate_ppm) * _int("dt", dt) * _int("price", price)
    if _int("notional_exp", notional_exp) >= 0:
        return trunc_div(numerator * 10**notional_exp, FUNDING_PERIOD)
    return trunc_div(numerator, FUNDING_PERIOD * 10**-notional_exp)


def funding_payment(index_delta: int, size: int) -> int:
    """What a position of ``size`` lots receives when the index moved by ``index_delta`` since
    its last settlement: ``floor(-index_delta * size / 1e6)`` (a payment when negative). Flooring
    means funding never creates collateral (StarkEx)."""
    if type(index_delta) is int and type(size) is int:
        return (-index_delta * size) // PPM
    return (-_int("index_delta", index_delta) * _int("size", size)) // PPM

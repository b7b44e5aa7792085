"""Exact conversions between what people type and integer protocol units (no floats anywhere)."""

from __future__ import annotations

import re

from isoperp.errors import ConfigError

USDC_DECIMALS = 6
_DECIMAL = re.compile(r"^(\d+)(?:\.(\d*))?$")


def parse_units(text: str, decimals: int, *, what: str = "amount") -> int:
    """``"12.5"`` with 6 decimals -> 12_500_000. Rejects signs, exponents, and extra decimals."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    match = _DECIMAL.match(cleaned)
    if not match:
        raise ConfigError(f"{what} {text!r} is not a plain decimal number", code="bad_amount")
    whole, frac = match.group(1), match.group(2) or ""
    if len(frac) > decimals:
        raise ConfigError(f"{what} {text!r} has more than {decimals} decimals", code="bad_amount")
    return int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0")


def parse_usdc(text: str) -> int:
    return parse_units(text, USDC_DECIMALS, what="USDC amount")


def format_units(value: int, decimals: int) -> str:
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    text = f"{whole:,}"
    if frac:
        text += "." + str(frac).rjust(decimals, "0").rstrip("0")
    return sign + text


def format_usdc(value: int) -> str:
    return format_units(value, USDC_DECIMALS) + " USDC"

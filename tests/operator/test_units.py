"""Exact decimal <-> integer conversions (no floats)."""

import pytest

from isoperp.errors import ConfigError
from isoperp.units import format_units, format_usdc, parse_units, parse_usdc


@pytest.mark.parametrize(
    "text, value",
    [
        ("1", 1_000_000),
        ("0.000001", 1),
        ("12.5", 12_500_000),
        ("1,000", 1_000_000_000),
        ("1_000.25", 1_000_250_000),
        ("7.", 7_000_000),
        ("0", 0),
    ],
)
def test_parse_usdc(text, value):
    assert parse_usdc(text) == value


@pytest.mark.parametrize("text", ["", "-1", "+1", "1e6", "0.0000001", "abc", "1.2.3", " . "])
def test_parse_usdc_rejects(text):
    with pytest.raises(ConfigError) as info:
        parse_usdc(text)
    assert info.value.code == "bad_amount"


def test_parse_ether_units():
    assert parse_units("1.5", 18) == 1_500_000_000_000_000_000


def test_format_round_trips_exactly():
    for value in (0, 1, 999_999, 1_000_000, 123_456_789_012, -2_500_000):
        text = format_units(value, 6).replace(",", "")
        assert (parse_usdc(text.lstrip("-")) * (-1 if value < 0 else 1)) == value
    assert format_usdc(2_500_500_000) == "2,500.5 USDC"

"""Market files: the deployment's genesis markets (JSON or TOML), validated with one-line errors;
the genesis root they give; the Settlement constructor arguments that publish them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isoperp.chain.genesis import (
    DEFAULT_MARKETS,
    constructor_args,
    genesis_state_root,
    load_markets,
    market_config,
    parse_markets,
)
from isoperp.errors import ConfigError
from isoperp.ledger.markets import DEVNET_MARKETS
from isoperp.ledger.model import Market
from isoperp.protocol.leaves import decode_leaf

# The devnet genesis root with the v1 exchange leaf (5 words). The v2 exchange leaf (D3) changes
# it: update it together with the leaf and docs/PROTOCOL.md.
DEVNET_ROOT = "22e5ae977ef86864efba58cc9f9240d9d4d2add251e26b3d0ee696ba4d9056d3"

SOL = {
    "marketId": 2,
    "symbol": "SOL-USD",
    "markPrice": 15_000,
    "imfPpm": 100_000,
    "mmfPpm": 60_000,
    "notionalExp": -1,
    "makerFeePpm": -200,
    "takerFeePpm": 700,
    "minSize": 2,
    "sizeStep": 2,
    "priceTick": 5,
}
SOL_TOML = """
[[markets]]
marketId = 2
symbol = "SOL-USD"
markPrice = 15_000
imfPpm = 100_000
mmfPpm = 60_000
notionalExp = -1
makerFeePpm = -200
takerFeePpm = 700
minSize = 2
sizeStep = 2
priceTick = 5
"""
SOL_MARKET = Market(2, 15_000, 0, 0, 0, 100_000, 60_000, -1, -200, 700, 2, 2, 5, 0, "SOL-USD")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_markets_are_the_devnet_markets() -> None:
    assert DEFAULT_MARKETS == DEVNET_MARKETS
    assert [m.symbol for m in DEFAULT_MARKETS] == ["BTC-USD", "ETH-USD"]


def test_devnet_genesis_root_is_stable() -> None:
    """The devnet genesis root (PROTOCOL v2 leaves: markets, insurance account, exchange of
    zeros); a change to any genesis leaf changes it."""
    root = genesis_state_root(DEVNET_MARKETS)
    assert root.hex() == DEVNET_ROOT
    assert genesis_state_root(DEVNET_MARKETS[:1]) != root


def test_load_markets_toml_and_json_agree(tmp_path: Path) -> None:
    devnet = [market_config(m) for m in DEVNET_MARKETS]
    as_json = _write(tmp_path, "m.json", json.dumps({"markets": [*devnet, SOL]}))
    bare_list = _write(tmp_path, "l.json", json.dumps([*devnet, SOL]))
    devnet_toml = "".join(
        "[[markets]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
        for entry in devnet
    )
    as_toml = _write(tmp_path, "m.toml", devnet_toml + SOL_TOML)
    expected = (*DEVNET_MARKETS, SOL_MARKET)
    for path in (as_json, bare_list, as_toml):
        markets = load_markets(path)
        assert markets == expected
        assert [m.symbol for m in markets] == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert genesis_state_root(expected) != genesis_state_root(DEVNET_MARKETS)


def test_constructor_args_are_the_market_leaves() -> None:
    markets = (*DEVNET_MARKETS, SOL_MARKET)
    leaves, symbols = constructor_args(markets)
    assert [decode_leaf(leaf) for leaf in leaves] == list(markets)
    assert symbols == ["BTC-USD", "ETH-USD", "SOL-USD"]


def _bad(**changes: object) -> list[dict[str, object]]:
    entry: dict[str, object] = {**SOL, **changes}
    return [{k: v for k, v in entry.items() if v is not None}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected a non-empty list of markets"),
        ({"market": []}, "unknown top-level key 'market'"),
        ({"markets": "BTC"}, "expected a non-empty list"),
        ([5], "market #0 is not a table"),
        (_bad(tick=1), "market 2: unknown parameter 'tick'"),
        (_bad(priceTick=None), "market 2: missing priceTick"),
        (_bad(priceTick=0), "market 2: priceTick = 0 is outside [1, "),
        (_bad(sizeStep=0), "market 2: sizeStep = 0 is outside [1, "),
        (_bad(sizeStep=1 << 64), "sizeStep = 18446744073709551616 is outside"),
        (_bad(markPrice=0), "markPrice = 0 is outside [1, "),
        (_bad(marketId=64), "marketId = 64 is outside [0, 63]"),
        (_bad(marketId=-1), "marketId = -1 is outside"),
        (_bad(notionalExp=128), "notionalExp = 128 is outside [-128, 127]"),
        (_bad(imfPpm=1_000_001), "imfPpm = 1000001 is outside [0, 1000000]"),
        (_bad(imfPpm=50_000, mmfPpm=60_000), "mmfPpm = 60000 exceeds imfPpm = 50000"),
        (_bad(makerFeePpm=-1_000_001), "makerFeePpm = -1000001 is outside [-1000000, 1000000]"),
        (_bad(takerFeePpm=1_000_001), "takerFeePpm = 1000001 is outside"),
        (_bad(makerFeePpm=-800), "the maker rebate 800 ppm exceeds the taker fee 700 ppm"),
        (_bad(minSize=True), "minSize must be an integer, got True"),
        (_bad(markPrice=1.5), "markPrice must be an integer, got 1.5"),
        (_bad(markPrice="15000"), "markPrice must be an integer"),
        (_bad(symbol=7), "symbol must be printable text"),
        (_bad(symbol="x\ny"), "symbol must be printable text"),
        ([SOL, {**SOL, "symbol": "OTHER"}], "market id 2 is listed twice"),
        ([SOL, {**SOL, "marketId": 3, "symbol": "sol-usd"}], "symbol 'sol-usd' is listed twice"),
    ],
)
def test_parse_markets_bad_parameters_raise_one_line(raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_markets(raw, source="m.json")
    assert info.value.code == "bad_markets"
    assert info.value.message.startswith("m.json: ")
    assert message in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.yaml", "markets: []", "must end in .json or .toml"),
        ("m.json", "{", "not valid JSON"),
        ("m.toml", "[[markets]\nx = ", "not valid TOML"),
        ("m.toml", "", "expected a non-empty list of markets"),
    ],
)
def test_load_markets_bad_file_raises_one_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_markets(_write(tmp_path, name, text))
    assert info.value.code == "bad_markets" and message in info.value.message
    assert "\n" not in info.value.message


def test_load_markets_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_markets(tmp_path / "none.toml")
    assert info.value.code == "bad_markets" and "cannot read the market file" in info.value.message

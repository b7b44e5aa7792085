"""The genesis state of a deployment (PROTOCOL §2 "Genesis", v2 spec D8).

The deployment's market configuration is the single source of the genesis state: the deploy step
takes a market list (the devnet markets of ``isoperp.ledger.markets`` unless a JSON or TOML file
is given), computes the genesis root from it and passes the market leaves to the Settlement's
constructor, which publishes them in its ``GenesisMarketsListed`` event. ``read_genesis`` recovers
them from L1 alone (an RPC endpoint and the Settlement's address) and checks them against the
genesis checkpoint's state root, so every reader (the operator, the escape path, an auditor)
rebuilds the same genesis state without any local constant.

A market file lists markets by their leaf parameters (PROTOCOL §2 field names)::

    [[markets]]                      # JSON: {"markets": [{...}, ...]} or a bare list
    marketId = 2
    symbol = "SOL-USD"               # optional, display only (not in the leaf)
    markPrice = 15_000               # the initial mark, in ticks (> 0)
    imfPpm = 100_000
    mmfPpm = 60_000
    notionalExp = -1
    makerFeePpm = -200               # negative: a rebate
    takerFeePpm = 700
    minSize = 2
    sizeStep = 2
    priceTick = 5

Every other market leaf field starts at zero (``markTime``, ``fundingIndex``, ``fundingTime``,
``openInterest``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hexbytes import HexBytes
from web3 import Web3

from isoperp.chain.artifacts import artifact
from isoperp.errors import ConfigError, ProtocolError
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_ORACLE
from isoperp.ledger.model import Market
from isoperp.protocol.constants import MAX_MARKETS, PPM
from isoperp.protocol.leaves import decode_leaf, encode_market
from isoperp.protocol.signing import Domain

logger = logging.getLogger(__name__)

DEFAULT_MARKETS: Final[tuple[Market, ...]] = DEVNET_MARKETS
"""The market list a deployment gets when no market file is given."""

GENESIS_EVENT: Final = "GenesisMarketsListed"

# file key -> (Market attribute, lower bound, exclusive upper bound)
_PARAMETERS: Final[dict[str, tuple[str, int, int]]] = {
    "marketId": ("market_id", 0, MAX_MARKETS),
    "markPrice": ("mark_price", 1, 1 << 64),
    "imfPpm": ("imf_ppm", 0, PPM + 1),
    "mmfPpm": ("mmf_ppm", 0, PPM + 1),
    "notionalExp": ("notional_exp", -(1 << 7), 1 << 7),
    "makerFeePpm": ("maker_fee_ppm", -PPM, PPM + 1),
    "takerFeePpm": ("taker_fee_ppm", -PPM, PPM + 1),
    "minSize": ("min_size", 0, 1 << 64),
    "sizeStep": ("size_step", 1, 1 << 64),
    "priceTick": ("price_tick", 1, 1 << 64),
}
_SYMBOL_MAX: Final = 32


def _bad(source: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {message}", code="bad_markets")


def market_from_config(entry: object, *, source: str, position: int) -> Market:
    """One market of a market file (a mapping of the ``_PARAMETERS`` keys and ``symbol``).

    Checks, in order: the entry is a table, no unknown keys, every parameter present and an
    integer in its range (``marketId < 64``, ``markPrice >= 1``, ``notionalExp`` an int8, the
    others of PROTOCOL §3.2 "Market parameters": ``sizeStep >= 1``, ``priceTick >= 1``,
    ``mmfPpm <= imfPpm <= 1e6``, ``|makerFeePpm|, |takerFeePpm| <= 1e6``), and a maker rebate no
    larger than the taker fee (else every fill would drain ``feeBalance``). Raises ``ConfigError``
    (code ``bad_markets``) with a one-line message."""
    where = f"market #{position}"
    if not isinstance(entry, Mapping):
        raise _bad(source, f"{where} is not a table of parameters")
    if type(entry.get("marketId")) is int:
        where = f"market {entry['marketId']}"
    unknown = sorted(set(entry) - set(_PARAMETERS) - {"symbol"})
    if unknown:
        raise _bad(source, f"{where}: unknown parameter {unknown[0]!r}")
    values: dict[str, Any] = {}
    for key, (name, low, high) in _PARAMETERS.items():
        if key not in entry:
            raise _bad(source, f"{where}: missing {key}")
        value = entry[key]
        if type(value) is not int:
            raise _bad(source, f"{where}: {key} must be an integer, got {value!r}")
        if not low <= value < high:
            raise _bad(source, f"{where}: {key} = {value} is outside [{low}, {high - 1}]")
        values[name] = value
    symbol = entry.get("symbol", "")
    if not isinstance(symbol, str) or len(symbol) > _SYMBOL_MAX or not symbol.isprintable():
        raise _bad(source, f"{where}: symbol must be printable text of at most {_SYMBOL_MAX} chars")
    if values["mmf_ppm"] > values["imf_ppm"]:
        raise _bad(
            source,
            f"{where}: mmfPpm = {values['mmf_ppm']} exceeds imfPpm = {values['imf_ppm']}",
        )
    if values["maker_fee_ppm"] + values["taker_fee_ppm"] < 0:
        raise _bad(
            source,
            f"{where}: the maker rebate {-values['maker_fee_ppm']} ppm exceeds the taker fee "
            f"{values['taker_fee_ppm']} ppm",
        )
    return Market(
        mark_time=0, funding_index=0, funding_time=0, open_interest=0, symbol=symbol, **values
    )


def parse_markets(raw: object, *, source: str = "markets") -> tuple[Market, ...]:
    """The market list of a parsed market file: ``{"markets": [...]}`` or a bare list; at least
    one market, ids unique, symbols unique when given. Raises ``ConfigError`` (``bad_markets``)."""
    if isinstance(raw, Mapping):
        extra = sorted(set(raw) - {"markets"})
        if extra:
            raise _bad(source, f"unknown top-level key {extra[0]!r} (expected 'markets')")
        raw = raw.get("markets")
    if not isinstance(raw, list) or not raw:
        raise _bad(source, "expected a non-empty list of markets under 'markets'")
    markets = tuple(
        market_from_config(entry, source=source, position=i) for i, entry in enumerate(raw)
    )
    seen_ids: set[int] = set()
    seen_symbols: set[str] = set()
    for m in markets:
        if m.market_id in seen_ids:
            raise _bad(source, f"market id {m.market_id} is listed twice")
        seen_ids.add(m.market_id)
        if m.symbol and m.symbol.upper() in seen_symbols:
            raise _bad(source, f"symbol {m.symbol!r} is listed twice")
        seen_symbols.add(m.symbol.upper())
    return markets


def load_markets(path: Path) -> tuple[Market, ...]:
    """The markets of a ``.json`` or ``.toml`` market file. Raises ``ConfigError``."""
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise _bad(source, "a market file must end in .json or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _bad(source, f"cannot read the market file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise _bad(source, "the market file is not UTF-8 text") from exc
    try:
        raw: object = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _bad(source, f"not valid {suffix[1:].upper()}: {first}") from exc
    return parse_markets(raw, source=source)


def market_config(market: Market) -> dict[str, int | str]:
    """The market-file entry of ``market`` (its parameters; genesis fields are zero)."""
    out: dict[str, int | str] = {"symbol": market.symbol} if market.symbol else {}
    for key, (name, _, _) in _PARAMETERS.items():
        out[key] = getattr(market, name)
    return out


# -- the genesis state ---------------------------------------------------------------------------


def genesis_state_root(markets: Iterable[Market]) -> bytes:
    """The genesis root: the market leaves, the insurance account and the exchange leaf of zeros
    (the domain and the oracle do not enter it)."""
    ledger = Ledger.genesis(
        markets, Domain(0, "0x" + "00" * 20), DEVNET_ORACLE, fee_recipient=DEVNET_ORACLE
    )
    return ledger.state_root


def constructor_args(markets: Sequence[Market]) -> tuple[list[bytes], list[str]]:
    """The Settlement's ``genesisMarketLeaves`` and ``genesisMarketSymbols`` arguments."""
    return [encode_market(m) for m in markets], [m.symbol for m in markets]


@dataclass(frozen=True, slots=True)
class Genesis:
    """A deployment's genesis as L1 has it: the markets (with their symbols), the genesis state
    root (the event's, equal to the genesis checkpoint's) and the deployment block."""

    markets: tuple[Market, ...]
    state_root: bytes
    block: int


def deployment_block(w3: Web3, address: str) -> int:
    """The block that created the contract at ``address``: the first block with code there
    (binary search over ``eth_getCode``; needs the node's state at those blocks)."""
    address = Web3.to_checksum_address(address)
    high = int(w3.eth.block_number)
    if not w3.eth.get_code(address, high):
        raise ProtocolError(f"no contract at {address}", code="genesis")
    low = 0
    while low < high:
        mid = (low + high) // 2
        if w3.eth.get_code(address, mid):
            high = mid
        else:
            low = mid + 1
    return low


def read_genesis(w3: Web3, settlement: str, *, block: int | None = None) -> Genesis:
    """The genesis markets of the Settlement at ``settlement``, from L1 alone: its one
    ``GenesisMarketsListed`` event (in the deployment block, found when ``block`` is None),
    decoded and checked: every leaf a market leaf, one symbol per leaf, and the genesis state they
    build has the event's root, which is the genesis checkpoint's ``stateRoot``. Raises
    ``ProtocolError`` (code ``genesis``)."""
    address = Web3.to_checksum_address(settlement)
    contract = w3.eth.contract(address=address, abi=artifact("Settlement").abi)
    if block is None:
        block = deployment_block(w3, address)
    event = contract.events[GENESIS_EVENT]
    topic = HexBytes(event.topic)
    logs = w3.eth.get_logs(
        {"address": address, "fromBlock": block, "toBlock": block, "topics": [topic]}
    )
    if len(logs) != 1:
        raise ProtocolError(
            f"{address}: {len(logs)} {GENESIS_EVENT} events in block {block}, expected 1",
            code="genesis",
        )
    args = event.process_log(logs[0])["args"]
    leaves, symbols = list(args["marketLeaves"]), list(args["symbols"])
    root = bytes(args["stateRoot"])
    if len(symbols) != len(leaves):
        raise ProtocolError(
            f"{GENESIS_EVENT}: {len(leaves)} market leaves but {len(symbols)} symbols",
            code="genesis",
        )
    markets: list[Market] = []
    for i, (data, symbol) in enumerate(zip(leaves, symbols, strict=True)):
        try:
            leaf = decode_leaf(bytes(data))
        except ProtocolError as exc:
            raise ProtocolError(f"genesis market leaf {i}: {exc.message}", code="genesis") from exc
        if not isinstance(leaf, Market):
            raise ProtocolError(f"genesis leaf {i} is not a market leaf", code="genesis")
        markets.append(dataclasses.replace(leaf, symbol=str(symbol)))
    try:
        rebuilt = genesis_state_root(markets)
    except ConfigError as exc:
        raise ProtocolError(f"genesis markets: {exc.message}", code="genesis") from exc
    onchain = bytes(contract.functions.getCheckpoint(0).call()[1])
    if rebuilt != root or root != onchain:
        raise ProtocolError(
            f"the genesis markets build root 0x{rebuilt.hex()}, the event says 0x{root.hex()} "
            f"and the genesis checkpoint 0x{onchain.hex()}",
            code="genesis",
        )
    logger.info("genesis of %s: %d markets, root 0x%s", address, len(markets), root.hex())
    return Genesis(tuple(markets), root, block)

"""Human units of each market: symbols, price and size decimals, exact conversions to ticks/lots."""

from __future__ import annotations

from dataclasses import dataclass

from isoperp.errors import ConfigError
from isoperp.units import format_units, parse_units


@dataclass(frozen=True, slots=True)
class Instrument:
    """How people write a market's prices and sizes: a price of ``60000.1`` with 1 price decimal
    is 600,001 ticks of $0.10; a size of ``0.1`` BTC with 5 size decimals is 10,000 lots."""

    market_id: int
    symbol: str
    price_decimals: int
    size_decimals: int

    def ticks(self, text: str) -> int:
        return parse_units(text, self.price_decimals, what=f"{self.symbol} price")

    def lots(self, text: str) -> int:
        return parse_units(text, self.size_decimals, what=f"{self.symbol} size")

    def price(self, ticks: int) -> str:
        return format_units(ticks, self.price_decimals)

    def size(self, lots: int) -> str:
        return format_units(lots, self.size_decimals)


DEVNET_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(0, "BTC-USD", price_decimals=1, size_decimals=5),
    Instrument(1, "ETH-USD", price_decimals=2, size_decimals=4),
)


def instrument(name: str | int) -> Instrument:
    """By symbol (case-insensitive, ``BTC`` works too) or market id; ConfigError otherwise."""
    for inst in DEVNET_INSTRUMENTS:
        if str(name).upper() in (inst.symbol, inst.symbol.split("-")[0]) or str(name) == str(
            inst.market_id
        ):
            return inst
    known = ", ".join(i.symbol for i in DEVNET_INSTRUMENTS)
    raise ConfigError(f"unknown market {name!r} (markets: {known})", code="unknown_market")


def by_id(market_id: int) -> Instrument:
    return instrument(market_id)

"""Risk views of an isolated position (docs/PROTOCOL.md, section 3.3). Pure functions, ints only.

Every view values the position *including its pending funding* (what settling it now would
pay or charge), at the market's mark price unless a ``mark`` is given:

- ``equity = quote + pending_funding + notional(size, mark)`` (notional floors: against the
  trader);
- initial / maintenance requirement ``ceil(|notional| * imf|mmf / 1e6)``;
- liquidatable iff ``MMR > 0 and equity < MMR``; bankrupt iff ``size != 0 and equity < 0``.

Prices are in ticks of the market (integers). Liquidation and bankruptcy prices are rounded
against the trader: a long's liquidation price up and a short's down (it is reached no later
than the real threshold); a long's bankruptcy price down and a short's up (a liquidation may
execute up to one price unit, or one tick on the grid, beyond the exact bankruptcy price; the
insurance fund covers that rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

from isoperp.ledger import arith
from isoperp.ledger.model import Market, Position
from isoperp.protocol.constants import PPM


def pending_funding(position: Position, market: Market) -> int:
    """What settling funding now credits to the position's quote (negative: a payment):
    ``floor(-(market.fundingIndex - position.fundingIndex) * size / 1e6)``."""
    if position.size == 0:
        return 0
    return arith.funding_payment(market.funding_index - position.funding_index, position.size)


def settle_funding(position: Position, market: Market) -> tuple[Position, int]:
    """The position with its pending funding booked into ``quote`` and its index caught up, and
    the amount booked. Raises ``ValueError`` if the quote would leave ``int128``."""
    payment = pending_funding(position, market)
    if position.funding_index == market.funding_index:
        return position, payment
    settled = Position(
        position.account_id,
        position.market_id,
        position.size,
        position.quote + payment,
        position.basis,
        market.funding_index,
    )
    return settled, payment


def _mark(market: Market, mark: int | None) -> int:
    return market.mark_price if mark is None else mark


def equity(position: Position, market: Market, mark: int | None = None) -> int:
    """``quote + pending funding + notional(size, mark)``."""
    return (
        position.quote
        + pending_funding(position, market)
        + market.notional(position.size, _mark(market, mark))
    )


def initial_requirement(position: Position, market: Market, mark: int | None = None) -> int:
    """``ceil(|notional(size, mark)| * imf / 1e6)``."""
    notional = market.notional(position.size, _mark(market, mark))
    return arith.margin_requirement(notional, market.imf_ppm)


def maintenance_requirement(position: Position, market: Market, mark: int | None = None) -> int:
    """``ceil(|notional(size, mark)| * mmf / 1e6)`` (MMR)."""
    notional = market.notional(position.size, _mark(market, mark))
    return arith.margin_requirement(notional, market.mmf_ppm)


def margin_ratio(position: Position, market: Market, mark: int | None = None) -> int | None:
    """``floor(equity * 1e6 / MMR)`` (1e6 = exactly at maintenance; below it: liquidatable), or
    None when MMR is 0 (flat, or a zero maintenance fraction)."""
    mmr = maintenance_requirement(position, market, mark)
    if mmr == 0:
        return None
    return equity(position, market, mark) * PPM // mmr


def is_liquidatable(position: Position, market: Market, mark: int | None = None) -> bool:
    """``MMR > 0 and equity < MMR`` (dYdX)."""
    mmr = maintenance_requirement(position, market, mark)
    return mmr > 0 and equity(position, market, mark) < mmr


def is_bankrupt(position: Position, market: Market, mark: int | None = None) -> bool:
    """An open position whose equity is negative: closing it at the mark cannot pay its losses."""
    return position.size != 0 and equity(position, market, mark) < 0


def _scaled(value: int, notional_exp: int) -> tuple[int, int]:
    """``value / 10^-e`` as (numerator, denominator factor): for ``e >= 0`` the power goes into
    the denominator, for ``e < 0`` into the numerator."""
    if notional_exp >= 0:
        return value, 10**notional_exp
    return value * 10**-notional_exp, 1


def bankruptcy_price(position: Position, market: Market, *, on_tick: bool = False) -> int | None:
    """The price at which closing the whole position leaves its equity (with pending funding) at
    0: ``-Q / (size * 10^e)`` with ``Q = quote + pending funding``, rounded against the position
    (down for a long, which sells; up for a short, which buys back), so closing at it may leave
    up to one price unit of loss uncovered (at most ``|size| * 10^e`` micro-USDC, floored
    notionals aside). With ``on_tick`` it is rounded further to the market's price grid, the
    same way. Exactly: for a long, equity at the result is ``<= 0`` and at one unit above it
    ``>= 0``; for a short, ``<= 0`` at the result and ``> 0`` one unit below. May be ``<= 0`` (a
    long with a positive quote can sell at any price). None when flat."""
    size = position.size
    if size == 0:
        return None
    quote = position.quote + pending_funding(position, market)
    tick = market.price_tick
    if size > 0:
        numerator, factor = _scaled(-quote, market.notional_exp)
        price = arith.floor_div(numerator, size * factor)
        return arith.floor_div(price, tick) * tick if on_tick else price
    numerator, factor = _scaled(quote, market.notional_exp)
    price = arith.ceil_div(numerator, -size * factor)
    return arith.ceil_div(price, tick) * tick if on_tick else price


def liquidation_price(position: Position, market: Market) -> int | None:
    """The mark price at which equity (with pending funding) equals MMR, rounded against the
    trader: up for a long (liquidatable at every mark below it where MMR > 0), down for a short
    (liquidatable at every mark above it).

    Long: ``-Q / (s * 10^e * (1 - mmf))``; short: ``Q / (|s| * 10^e * (1 + mmf))`` with
    ``Q = quote + pending funding`` (dYdX's ``(e - s*p) / (|s|*MMF - s)``). None when flat, or
    for a long when ``mmf == 100%`` (then no price makes equity reach MMR). The value may be
    ``<= 0``: a long that can never be liquidated, or a short that is liquidatable at any price.
    """
    size = position.size
    quote = position.quote + pending_funding(position, market)
    if size > 0:
        if market.mmf_ppm == PPM:
            return None
        numerator, factor = _scaled(-quote * PPM, market.notional_exp)
        return arith.ceil_div(numerator, size * factor * (PPM - market.mmf_ppm))
    if size < 0:
        numerator, factor = _scaled(quote * PPM, market.notional_exp)
        return arith.floor_div(numerator, -size * factor * (PPM + market.mmf_ppm))
    return None


def escape_value(position: Position, market: Market) -> int:
    """What the position is worth in an escape: ``max(0, quote + pending funding +
    notional(size, mark))`` at the market's (finalized) mark, the escape contract's formula."""
    return max(0, equity(position, market))


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The position valued at a shocked mark price."""

    mark: int
    equity: int
    margin_ratio: int | None
    liquidatable: bool
    bankrupt: bool


def what_if(position: Position, market: Market, shock_ppm: int) -> WhatIf:
    """The position if the mark moved by ``shock_ppm`` (e.g. ``-200_000`` for -20%): new mark
    ``floor(mark * (1e6 + shock) / 1e6)``. ``shock_ppm >= -1e6``."""
    if type(shock_ppm) is not int or shock_ppm < -PPM:
        raise ValueError(f"shock_ppm must be an int >= -1e6, got {shock_ppm!r}")
    mark = market.mark_price * (PPM + shock_ppm) // PPM
    return WhatIf(
        mark=mark,
        equity=equity(position, market, mark),
        margin_ratio=margin_ratio(position, market, mark),
        liquidatable=is_liquidatable(position, market, mark),
        bankrupt=is_bankrupt(position, market, mark),
    )

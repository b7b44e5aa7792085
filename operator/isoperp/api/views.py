"""Ledger, journal and provider values as API models (shared by the routes and the feed)."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel

from isoperp.api.errors import ApiError
from isoperp.api.models import (
    AccountModel,
    BookLevel,
    BookView,
    CheckpointModel,
    ForcedRequestModel,
    MarketView,
    OrderModel,
    PositionModel,
    RequestModel,
    TradeModel,
)
from isoperp.api.state import CheckpointView, Depth, ForcedRequestView, TradeView
from isoperp.errors import ConfigError
from isoperp.exchange.instruments import by_id
from isoperp.ledger import risk
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.model import Account, Market, Position
from isoperp.ledger.transitions import CancelOrder, MarginTransfer, PlaceOrder, Withdraw
from isoperp.service.inbox import InboxEntry

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_ID = re.compile(r"(0|[1-9][0-9]{0,9})")


def payload(model: BaseModel) -> dict[str, Any]:
    """A model as the JSON object the API sends (camelCase)."""
    return model.model_dump(mode="json", by_alias=True)


# ------------------------------------------------------------------------------------ markets


def market_meta(market: Market) -> tuple[str, int, int]:
    """(symbol, price decimals, size decimals): the devnet instrument of that id when its symbol
    agrees (or the leaf has none), else the leaf's symbol with 0 decimals."""
    try:
        inst = by_id(market.market_id)
    except ConfigError:
        inst = None
    if inst is not None and market.symbol in ("", inst.symbol):
        return inst.symbol, inst.price_decimals, inst.size_decimals
    return market.symbol or f"MARKET-{market.market_id}", 0, 0


def symbol_of(ledger: Ledger, market_id: int) -> str:
    market = ledger.market(market_id)
    return market_meta(market)[0] if market is not None else f"MARKET-{market_id}"


def resolve_market(ledger: Ledger, text: str) -> Market:
    """A market by id (``"0"``) or symbol (``"BTC-USD"``, any case; ``"BTC"`` too)."""
    wanted = text.strip().upper()
    for market in ledger.markets:
        symbol = market_meta(market)[0].upper()
        if wanted in (str(market.market_id), symbol, symbol.split("-")[0]):
            return market
    raise ApiError("unknown_market", f"no market {text!r}")


def market_view(market: Market) -> MarketView:
    symbol, price_decimals, size_decimals = market_meta(market)
    return MarketView(
        market_id=market.market_id,
        symbol=symbol,
        price_decimals=price_decimals,
        size_decimals=size_decimals,
        mark_price=str(market.mark_price),
        mark_time=market.mark_time,
        funding_index=str(market.funding_index),
        funding_time=market.funding_time,
        imf_ppm=market.imf_ppm,
        mmf_ppm=market.mmf_ppm,
        notional_exp=market.notional_exp,
        maker_fee_ppm=market.maker_fee_ppm,
        taker_fee_ppm=market.taker_fee_ppm,
        min_size=str(market.min_size),
        size_step=str(market.size_step),
        price_tick=str(market.price_tick),
        open_interest=str(market.open_interest),
    )


def book_view(market: Market, depth: Depth, levels: int, now: int) -> BookView:
    bids, asks = depth
    return BookView(
        market_id=market.market_id,
        symbol=market_meta(market)[0],
        mark_price=str(market.mark_price),
        bids=[BookLevel(price=str(p), size=str(s)) for p, s in bids[:levels]],
        asks=[BookLevel(price=str(p), size=str(s)) for p, s in asks[:levels]],
        time=now,
    )


def trade_view(ledger: Ledger, t: TradeView) -> TradeModel:
    side: Literal["buy", "sell"] | None = None
    if t.taker_is_buy is not None:
        side = "buy" if t.taker_is_buy else "sell"
    return TradeModel(
        market_id=t.market_id,
        symbol=symbol_of(ledger, t.market_id),
        price=str(t.price),
        size=str(t.size),
        side=side,
        maker_account_id=t.maker_account,
        taker_account_id=t.taker_account,
        timestamp=t.timestamp,
        seq=t.seq,
        liquidation=t.liquidation,
    )


# ----------------------------------------------------------------------------------- accounts


def resolve_account(ledger: Ledger, text: str) -> Account:
    """An account by id (``"3"``) or owner address (any case)."""
    if _ADDRESS.fullmatch(text):
        account_id = ledger.account_id_of(text)
        account = None if account_id is None else ledger.account(account_id)
    elif _ID.fullmatch(text):
        account = ledger.account(int(text))
    else:
        raise ApiError("validation", f"{text!r} is neither an account id nor a 0x address")
    if account is None:
        raise ApiError("unknown_account", f"no account {text}")
    return account


def account_view(
    account: Account,
    *,
    available: int,
    next_nonce: int,
    next_order_nonce: int | None,
    pending: int,
) -> AccountModel:
    return AccountModel(
        account_id=account.account_id,
        owner=account.owner,
        collateral=str(account.collateral),
        available=str(available),
        nonce=str(account.nonce),
        next_nonce=str(next_nonce),
        next_order_nonce=None if next_order_nonce is None else str(next_order_nonce),
        pending_requests=pending,
    )


def _entry_price(position: Position, market: Market) -> int | None:
    if position.size == 0:
        return None
    e = market.notional_exp
    if e >= 0:
        return round(Fraction(position.basis, position.size * 10**e))
    return round(Fraction(position.basis * 10**-e, position.size))


def _opt(value: int | None) -> str | None:
    return None if value is None else str(value)


def position_view(position: Position, market: Market) -> PositionModel:
    notional = market.notional(position.size, market.mark_price)
    return PositionModel(
        market_id=market.market_id,
        symbol=market_meta(market)[0],
        size=str(position.size),
        quote=str(position.quote),
        basis=str(position.basis),
        entry_price=_opt(_entry_price(position, market)),
        mark_price=str(market.mark_price),
        pending_funding=str(risk.pending_funding(position, market)),
        equity=str(risk.equity(position, market)),
        unrealized_pnl=str(notional - position.basis),
        initial_margin=str(risk.initial_requirement(position, market)),
        maintenance_margin=str(risk.maintenance_requirement(position, market)),
        margin_ratio_ppm=_opt(risk.margin_ratio(position, market)),
        liquidation_price=_opt(risk.liquidation_price(position, market)),
        bankruptcy_price=_opt(risk.bankruptcy_price(position, market)),
        liquidatable=risk.is_liquidatable(position, market),
    )


def order_view(ledger: Ledger, entry: InboxEntry) -> OrderModel:
    o: PlaceOrder = entry.request
    return OrderModel(
        request_id=entry.id,
        nonce=str(o.nonce),
        market_id=o.market_id,
        symbol=symbol_of(ledger, o.market_id),
        is_buy=o.is_buy,
        price=str(o.price),
        size=str(o.size),
        filled=str(entry.filled),
        time_in_force=o.time_in_force,
        flags=o.flags,
        expiry=str(o.expiry),
        status=entry.status,
        reason=entry.reason,
        seq=entry.seq,
    )


def request_view(entry: InboxEntry) -> RequestModel:
    r = entry.request
    kind = {
        PlaceOrder: "order",
        CancelOrder: "cancel",
        Withdraw: "withdrawal",
        MarginTransfer: "margin",
    }.get(type(r), "other")
    nonce = getattr(r, "nonce", None)
    market_id = getattr(r, "market_id", None)
    amount = r.amount if isinstance(r, Withdraw | MarginTransfer) else None
    return RequestModel(
        request_id=entry.id,
        kind=kind,  # type: ignore[arg-type]  # one of the literals
        nonce=_opt(nonce),
        market_id=market_id,
        amount=_opt(amount),
        status=entry.status,
        reason=entry.reason,
        seq=entry.seq,
        slot=entry.slot,
    )


# -------------------------------------------------------------------------------- checkpoints


def checkpoint_view(cp: CheckpointView, now: int) -> CheckpointModel:
    return CheckpointModel(
        seq=cp.seq,
        state_root="0x" + cp.state_root.hex(),
        posted_at=cp.posted_at,
        finalizes_at=cp.finalizes_at,
        finalized=cp.finalized,
        status="finalized" if cp.finalized else "pending",
        seconds_to_finality=0 if cp.finalized else max(0, cp.finalizes_at - now),
        withdrawal_count=cp.withdrawal_count,
        tx_hash=cp.tx_hash,
    )


def forced_view(f: ForcedRequestView, now: int) -> ForcedRequestModel:
    if f.served:
        status = "served"
    elif f.deadline is not None and now > f.deadline:
        status = "overdue"
    else:
        status = "pending"
    return ForcedRequestModel(
        index=f.index,
        kind=f.kind,
        requester=f.requester,
        account_id=f.account_id,
        market_id=f.market_id,
        amount=str(f.amount),
        requested_at=f.requested_at,
        status=status,  # type: ignore[arg-type]  # one of the literals
        deadline=f.deadline,
    )

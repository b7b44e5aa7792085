"""`isoperp margin|order|book|positions|risk|oracle`: trading against the operator's journal."""

from __future__ import annotations

import time
from dataclasses import dataclass

import click
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from isoperp.batch.builder import BatchBuilder
from isoperp.chain.contracts import System
from isoperp.chain.l1 import latest_header, rebuild
from isoperp.cli.context import CliState, resolve_signer
from isoperp.cli.exchange_cmds import account_option, key_option
from isoperp.errors import ConfigError
from isoperp.exchange.engine import Engine, incoming_order
from isoperp.exchange.instruments import Instrument, by_id, instrument
from isoperp.ledger import risk
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.model import Account
from isoperp.ledger.transitions import CancelOrder, MarginTransfer, PlaceOrder, PriceUpdate
from isoperp.matching import OrderRejected
from isoperp.protocol.constants import (
    FLAG_POST_ONLY,
    FLAG_REDUCE_ONLY,
    ORDER_SLOTS,
    PPM,
    TIF_FOK,
    TIF_GTC,
    TIF_IOC,
)
from isoperp.protocol.signing import sign_request
from isoperp.service.inbox import Inbox
from isoperp.units import format_usdc, parse_units, parse_usdc

console = Console()
TIFS = {"gtc": TIF_GTC, "ioc": TIF_IOC, "fok": TIF_FOK}
DEVNET_ORACLE_INDEX = 9


@dataclass
class Trader:
    """A signer, its exchange account at the latest checkpoint, and the operator's journal."""

    signer: LocalAccount
    system: System
    ledger: Ledger
    account: Account
    inbox: Inbox

    def next_request_nonce(self) -> int:
        """Account nonce for withdrawals and margin moves, counting pending ones."""
        return self.inbox.next_request_nonce(self.account.account_id, self.account.nonce)

    def next_order_nonce(self) -> int:
        """The smallest nonce above every order nonce used so far whose slot holds no live order."""
        entries = [e for e in self.inbox.of_account(self.account.account_id)]
        used = [e.request.nonce for e in entries if isinstance(e.request, PlaceOrder)]
        used += [o.nonce for o in self.ledger.orders(account_id=self.account.account_id)]
        live_slots = {
            e.request.nonce % ORDER_SLOTS
            for e in entries
            if isinstance(e.request, PlaceOrder) and e.status in ("pending", "open")
        }
        nonce = max(used, default=0) + 1
        for candidate in range(nonce, nonce + ORDER_SLOTS):
            if candidate % ORDER_SLOTS not in live_slots:
                return candidate
        raise ConfigError(
            "all 64 order slots hold live orders: cancel one first", code="slots_full"
        )


def trader(state: CliState, account_index: int | None, key: str | None) -> Trader:
    signer = resolve_signer(account_index, key, default_index=1)
    system = state.system()
    ledger, _ = rebuild(system)
    account_id = ledger.account_id_of(signer.address)
    if account_id is None:
        raise ConfigError(
            f"{signer.address} has no exchange account yet (deposit first)", code="unknown_account"
        )
    account = ledger.account(account_id)
    assert account is not None
    return Trader(signer, system, ledger, account, state.inbox())


def _submit(t: Trader, signed: object, what: str) -> int:
    request_id = t.inbox.submit(signed)
    console.print(f"{what} (request {request_id}); the operator applies it in its next cycle")
    return request_id


# ------------------------------------------------------------------ margin


@click.group()
def margin() -> None:
    """Move free collateral into an isolated position (add) or back out of it (remove)."""


def _margin(
    state: CliState, market: str, amount: str, sign: int, account_index: int | None, key: str | None
) -> None:
    inst = instrument(market)
    value = parse_usdc(amount)
    if value == 0:
        raise ConfigError("the amount must be positive", code="bad_amount")
    t = trader(state, account_index, key)
    if sign > 0 and value > t.account.collateral:
        raise ConfigError(
            f"free collateral is {format_usdc(t.account.collateral)}; cannot move "
            f"{format_usdc(value)} into {inst.symbol}",
            code="insufficient_collateral",
        )
    request = MarginTransfer(
        t.account.account_id, inst.market_id, sign * value, t.next_request_nonce(), b""
    )
    direction = "into" if sign > 0 else "out of"
    signed = sign_request(bytes(t.signer.key), t.system.domain, request)
    _submit(t, signed, f"moving {format_usdc(value)} {direction} {inst.symbol}")


@margin.command("add")
@click.argument("market")
@click.argument("amount")
@account_option
@key_option
@click.pass_obj
def margin_add(
    state: CliState, market: str, amount: str, account_index: int | None, key: str | None
) -> None:
    """Move AMOUNT USDC of free collateral into the MARKET position."""
    _margin(state, market, amount, 1, account_index, key)


@margin.command("remove")
@click.argument("market")
@click.argument("amount")
@account_option
@key_option
@click.pass_obj
def margin_remove(
    state: CliState, market: str, amount: str, account_index: int | None, key: str | None
) -> None:
    """Move AMOUNT USDC out of the MARKET position (it must keep its initial margin)."""
    _margin(state, market, amount, -1, account_index, key)


# ------------------------------------------------------------------ orders


@click.group()
def order() -> None:
    """Place, cancel and list signed orders."""


def _market_price(inst: Instrument, ledger: Ledger, is_buy: bool, slippage: str) -> int:
    market = ledger.market(inst.market_id)
    assert market is not None
    ppm = parse_units(slippage.rstrip("%"), 4, what="slippage")  # percent, 4 decimals == ppm
    bound = market.mark_price * (PPM + ppm if is_buy else PPM - ppm) // PPM
    tick = market.price_tick
    return (bound // tick) * tick if not is_buy else -(-bound // tick) * tick


@order.command("place")
@click.argument("market")
@click.argument("side", type=click.Choice(["buy", "sell"], case_sensitive=False))
@click.argument("size")
@click.option("--price", default=None, help="Limit price (e.g. 60000.5). Omit with --market.")
@click.option(
    "--market",
    "market_order",
    is_flag=True,
    help="Market order: IOC bounded by the mark price +/- --slippage.",
)
@click.option("--slippage", default="1%", show_default=True, help="Worst price for --market.")
@click.option("--tif", type=click.Choice(list(TIFS)), default="gtc", show_default=True)
@click.option("--post-only", is_flag=True, help="Reject instead of taking liquidity.")
@click.option("--reduce-only", is_flag=True, help="Only reduce the position, never flip it.")
@click.option(
    "--expires-in",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds until the order expires (default: never).",
)
@account_option
@key_option
@click.pass_obj
def order_place(
    state: CliState,
    market: str,
    side: str,
    size: str,
    price: str | None,
    market_order: bool,
    slippage: str,
    tif: str,
    post_only: bool,
    reduce_only: bool,
    expires_in: int | None,
    account_index: int | None,
    key: str | None,
) -> None:
    """Place a signed order: MARKET (BTC-USD, ETH-USD) SIDE (buy/sell) SIZE (e.g. 0.1)."""
    inst = instrument(market)
    is_buy = side.lower() == "buy"
    if (price is None) == (not market_order):
        raise click.UsageError("give exactly one of --price or --market")
    t = trader(state, account_index, key)
    if market_order:
        ticks, tif = _market_price(inst, t.ledger, is_buy, slippage), "ioc"
    else:
        assert price is not None
        ticks = inst.ticks(price)
    flags = (FLAG_POST_ONLY if post_only else 0) | (FLAG_REDUCE_ONLY if reduce_only else 0)
    expiry = int(time.time()) + expires_in if expires_in else 0
    request = PlaceOrder(
        t.account.account_id,
        inst.market_id,
        is_buy,
        ticks,
        inst.lots(size),
        TIFS[tif],
        flags,
        t.next_order_nonce(),
        expiry,
        b"",
    )
    signed = sign_request(bytes(t.signer.key), t.system.domain, request)
    _precheck(t, signed)
    _submit(
        t,
        signed,
        f"order {request.nonce}: {side} {size} {inst.symbol} @ {inst.price(ticks)} {tif.upper()}",
    )


def _precheck(t: Trader, signed: PlaceOrder) -> None:
    """The engine's checks against the latest checkpoint: off-tick, size, margin, signature..."""
    work = t.ledger.copy()
    header = latest_header(t.system, [])
    engine = Engine(work, BatchBuilder(work, header), t.system.domain, now=int(time.time()))
    engine.check_order(signed)
    book = engine.books[signed.market_id]
    try:
        position = work.position(signed.account_id, signed.market_id)
        book.place(  # the book's grid, size and reduce-only checks, on an empty book
            incoming_order(signed), now=engine.now, position=position.size if position else 0
        )
    except OrderRejected as exc:
        if exc.reason != "post_only_would_cross":
            raise


@order.command("cancel")
@click.argument("nonce", type=click.IntRange(min=0))
@account_option
@key_option
@click.pass_obj
def order_cancel(state: CliState, nonce: int, account_index: int | None, key: str | None) -> None:
    """Cancel your order NONCE (see `isoperp order list`)."""
    t = trader(state, account_index, key)
    cancel = CancelOrder(t.account.account_id, nonce, b"")
    _submit(t, sign_request(bytes(t.signer.key), t.system.domain, cancel), f"cancel of {nonce}")


@order.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include filled, cancelled and rejected.")
@account_option
@key_option
@click.pass_obj
def order_list(state: CliState, show_all: bool, account_index: int | None, key: str | None) -> None:
    """Your orders as the operator's journal has them."""
    t = trader(state, account_index, key)
    table = Table("nonce", "market", "side", "price", "size", "filled", "tif", "status", "reason")
    for e in t.inbox.of_account(t.account.account_id):
        o = e.request
        if not isinstance(o, PlaceOrder):
            continue
        if not show_all and e.status not in ("pending", "open"):
            continue
        inst = by_id(o.market_id)
        tif = {v: k for k, v in TIFS.items()}.get(o.time_in_force, "?").upper()
        table.add_row(
            str(o.nonce),
            inst.symbol,
            "buy" if o.is_buy else "sell",
            inst.price(o.price),
            inst.size(o.size),
            inst.size(e.filled),
            tif,
            e.status,
            e.reason or "",
        )
    console.print(table)


# ------------------------------------------------------------------ book, positions, risk


@click.command()
@click.argument("market")
@click.option("--depth", type=click.IntRange(1, 100), default=10, show_default=True)
@click.pass_obj
def book(state: CliState, market: str, depth: int) -> None:
    """The order book of MARKET: resting orders of the journal over the latest checkpoint."""
    inst = instrument(market)
    system = state.system()
    ledger, checkpoints = rebuild(system)
    work = ledger.copy()
    engine = Engine(
        work,
        BatchBuilder(work, latest_header(system, checkpoints)),
        system.domain,
        now=int(time.time()),
    )
    for entry in state.inbox().open_orders():
        engine.restore(entry.request)
    bids, asks = engine.books[inst.market_id].depth(depth)
    mkt = ledger.market(inst.market_id)
    assert mkt is not None
    table = Table(
        "bid size",
        "bid",
        "ask",
        "ask size",
        title=f"{inst.symbol} (mark {inst.price(mkt.mark_price)})",
    )
    for i in range(max(len(bids), len(asks), 1)):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        table.add_row(
            inst.size(b[1]) if b else "",
            inst.price(b[0]) if b else "",
            inst.price(a[0]) if a else "",
            inst.size(a[1]) if a else "",
        )
    console.print(table)


@click.command()
@account_option
@key_option
@click.pass_obj
def positions(state: CliState, account_index: int | None, key: str | None) -> None:
    """Your isolated positions at the latest checkpoint: equity, margin ratio, liquidation price."""
    t = trader(state, account_index, key)
    table = Table(
        "market",
        "size",
        "entry",
        "mark",
        "margin (quote)",
        "equity",
        "margin ratio",
        "liq. price",
        title=f"account #{t.account.account_id}",
    )
    for p in t.ledger.positions(account_id=t.account.account_id):
        m = t.ledger.market(p.market_id)
        assert m is not None
        inst = by_id(p.market_id)
        entry = inst.price(abs(p.basis) // abs(p.size)) if p.size else "-"
        ratio = risk.margin_ratio(p, m)
        liq = risk.liquidation_price(p, m)
        table.add_row(
            inst.symbol,
            inst.size(p.size),
            entry,
            inst.price(m.mark_price),
            format_usdc(p.quote),
            format_usdc(risk.equity(p, m)),
            "-" if ratio is None else f"{ratio / 10_000:.2f}%".replace(".00%", "%"),
            "-" if liq is None else inst.price(liq),
        )
    console.print(table)
    console.print(f"free collateral {format_usdc(t.account.collateral)}")


@click.group()
def risk_group() -> None:
    """Risk views of your positions."""


@risk_group.command("preview")
@click.option("--shock", required=True, help="Mark price move, e.g. -20% or 5%.")
@account_option
@key_option
@click.pass_obj
def risk_preview(state: CliState, shock: str, account_index: int | None, key: str | None) -> None:
    """Your positions if every mark moved by --shock: equity, margin ratio, liquidatable?"""
    text = shock.strip().rstrip("%")
    negative = text.startswith("-")
    ppm = parse_units(text.lstrip("+-"), 4, what="shock") * (-1 if negative else 1)  # == ppm
    if ppm < -PPM:
        raise ConfigError("a shock below -100% is not a price", code="bad_amount")
    t = trader(state, account_index, key)
    table = Table(
        "market",
        "size",
        "mark now",
        "mark after",
        "equity after",
        "margin ratio",
        "liquidatable",
        title=f"shock {shock}",
    )
    for p in t.ledger.positions(account_id=t.account.account_id):
        m = t.ledger.market(p.market_id)
        assert m is not None
        inst = by_id(p.market_id)
        w = risk.what_if(p, m, ppm)
        table.add_row(
            inst.symbol,
            inst.size(p.size),
            inst.price(m.mark_price),
            inst.price(w.mark),
            format_usdc(w.equity),
            "-" if w.margin_ratio is None else f"{w.margin_ratio / 10_000:.2f}%",
            "[red]yes[/]" if w.liquidatable else "no",
        )
    console.print(table)


@click.group()
def oracle() -> None:
    """The price oracle (devnet: test account 9 holds the oracle key)."""


@oracle.command("push")
@click.argument("market")
@click.argument("price")
@click.option(
    "--key",
    default=None,
    envvar="ISOPERP_ORACLE_KEY",
    show_envvar=True,
    help="Oracle private key (default on the devnet: test account 9).",
)
@click.pass_obj
def oracle_push(state: CliState, market: str, price: str, key: str | None) -> None:
    """Sign a mark price for MARKET and hand it to the operator."""
    inst = instrument(market)
    signer = resolve_signer(None, key, default_index=DEVNET_ORACLE_INDEX)
    system = state.system()
    ledger, _ = rebuild(system)
    mkt = ledger.market(inst.market_id)
    assert mkt is not None
    now = int(system.client.w3.eth.get_block("latest")["timestamp"])
    update = PriceUpdate(inst.market_id, inst.ticks(price), max(now, mkt.mark_time + 1), b"")
    signed = sign_request(bytes(signer.key), system.domain, update)
    request_id = state.inbox().submit(signed)
    console.print(f"{inst.symbol} mark {price} signed by {signer.address} (request {request_id})")

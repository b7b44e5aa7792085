"""`make demo` in full: the story of ``isoperp.demo``, then a live market, on one fresh anvil.

1. Deploy; deposit -> checkpoint -> withdrawal -> finality -> claim (``run_story``).
2. The operator loop on a background thread (a cycle every second, the API bridge refreshed after
   each) and the HTTP API on a free local port; the market simulator trades through the API for
   ``seconds`` with a flash crash at about two thirds of the run.
3. The loop stops after one last cycle; devnet time travel past the challenge window; the latest
   checkpoint (so every one) is final on L1.
4. An audit from L1 alone: every checkpoint's calldata replayed from genesis must give the
   operator's state root, the ledger invariants and the vault's solvency; the figures of the run.

Every claim is checked (``DemoFailed`` otherwise) and everything started here is stopped, also on
Ctrl-C (the KeyboardInterrupt propagates after the teardown). No printing: the caller passes a
``Narrator`` and a ``ProgressView``; ``isoperp.demo_report`` writes the JSON and PNG report.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import httpx
import requests

from isoperp.api.app import create_app
from isoperp.api.bridge import OperatorBridge
from isoperp.api.server import ApiServer
from isoperp.chain.client import ChainClient, Web3Deployer, connect
from isoperp.chain.contracts import System
from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.chain.l1 import genesis_ledger, read_checkpoints, read_deposits, replay
from isoperp.demo import (
    DemoFailed,
    DemoSummary,
    Narrator,
    check,
    local_devnet,
    run_story,
    shielded,
)
from isoperp.devnet import advance_time, devnet_account
from isoperp.errors import TransientChainError
from isoperp.exchange.instruments import by_id
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.transitions import (
    Backstop,
    Deleverage,
    Fill,
    ForcedWithdraw,
    Liquidate,
    MarginTransfer,
    Withdraw,
)
from isoperp.protocol.constants import TIF_IOC
from isoperp.service.inbox import Inbox
from isoperp.service.operator import CycleReport, OperatorService
from isoperp.sim import runner
from isoperp.sim.market import SimConfig, SimStats, Trader
from isoperp.units import format_usdc

logger = logging.getLogger(__name__)

USDC = 10**6
BTC = 0
MAKERS = (7, 8)  # devnet accounts; 1 and 2 are the story's alice and bob, 9 is the oracle
TAKERS = (3, 4, 5, 6)
TAKER_MARGIN_USDC = 2_500  # the simulator moves this much into BTC-USD for every trader
MAKER_TOP_UP_USDC = 17_500  # and the makers add this: they carry the takers' inventory
ALICE = 1
ALICE_MARGIN_USDC = 1_000
ALICE_SIZE = 10_000  # lots: 0.1 BTC, about 6x on 1,000 USDC
ALICE_BOUND_TICKS = 2_000  # her IOC buy pays up to $200 above the mark
STOP_TIMEOUT_S = 60.0
REFILL_TIMEOUT_S = 10.0  # a margin move not included by then is given up (and sent again)
INCLUDED_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class MarketOptions:
    seconds: int = 60
    crash_pct: int = 30
    seed: int = 1
    interval_s: float = 1.0

    @property
    def crash_step(self) -> int:
        """The simulator step (0-based) whose oracle price is the crash: about 2/3 of the run."""
        return max(2, self.seconds * 2 // 3)

    @property
    def alice_step(self) -> int:
        """Alice buys after this many steps: a few seconds before the crash."""
        return max(1, self.crash_step - 3)


@dataclass(frozen=True)
class LiveFigures:
    """What the progress display shows after each simulator step."""

    step: int
    seconds: int
    elapsed_s: float
    mark: int  # ticks
    orders: int
    cancels: int
    accepted: int
    rejected: int  # by the API or, later, by the operator's cycle
    fills: int
    checkpoints: int
    liquidations: int
    backstops: int
    deleverages: int
    crashed: bool


class ProgressView(Protocol):
    def start(self, seconds: int, crash_step: int) -> None: ...

    def update(self, figures: LiveFigures) -> None: ...

    def stop(self) -> None: ...


class NoProgress:
    def start(self, seconds: int, crash_step: int) -> None:
        pass

    def update(self, figures: LiveFigures) -> None:
        pass

    def stop(self) -> None:
        pass


# ---------------------------------------------------------------------------- the operator loop


@dataclass
class LoopTotals:
    cycles: int = 0
    checkpoints: int = 0
    fills: int = 0
    liquidations: int = 0
    backstops: int = 0
    deleverages: int = 0
    gas: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by the operator's cycle, by reason
    transient_errors: int = 0


class OperatorLoop:
    """The operator on a background thread: ``run_once`` every ``interval_s``, the API bridge
    refreshed after each cycle, until ``stop``. The thread owns its journal connection (SQLite
    connections stay on their thread) and so also runs ``bridge.refresh``."""

    def __init__(self, system: System, journal: Path, *, interval_s: float = 1.0) -> None:
        self.system = system
        self.journal = journal
        self.interval_s = interval_s
        self.bridge: OperatorBridge | None = None
        self.service: OperatorService | None = None
        self.reports: list[CycleReport] = []
        self.error: Exception | None = None
        self._totals = LoopTotals()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._final_cycle = False
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> OperatorBridge:
        self._thread = threading.Thread(target=self._main, name="isoperp-operator", daemon=True)
        self._thread.start()
        self._ready.wait(timeout_s)
        self.raise_if_failed()
        check(self.bridge is not None, f"the operator did not start within {timeout_s:.0f}s")
        assert self.bridge is not None
        return self.bridge

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def totals(self) -> LoopTotals:
        with self._lock:
            return replace(self._totals, rejected=Counter(self._totals.rejected))

    def raise_if_failed(self) -> None:
        if self.error is not None:
            exc = self.error
            message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
            raise DemoFailed(f"the operator loop failed: {message}") from exc

    def stop(self, *, final_cycle: bool, quiet: bool = False) -> None:
        """Stops the loop; with ``final_cycle`` it first runs one more cycle (what the last
        simulator step sent goes into a checkpoint). Waits for the thread; ``quiet`` (teardown
        after another error) raises nothing."""
        if self._thread is None:
            return
        self._final_cycle = final_cycle
        self._stop.set()
        self._thread.join(STOP_TIMEOUT_S)
        alive = self._thread.is_alive()
        self._thread = None
        if quiet:
            return
        check(not alive, f"the operator thread did not stop within {STOP_TIMEOUT_S:.0f}s")
        self.raise_if_failed()

    def _main(self) -> None:
        inbox = Inbox(self.journal)
        try:
            service = OperatorService(self.system, inbox)
            service.sync()
            bridge = OperatorBridge.for_system(service, self.system)
            bridge.refresh()
            self.service, self.bridge = service, bridge
            self._ready.set()
            while not self._stop.is_set():
                self._cycle(service, bridge, retry_transient=True)
                self._stop.wait(self.interval_s)
            if self._final_cycle:
                self._cycle(service, bridge, retry_transient=False)
        except Exception as exc:  # reported to the main thread by raise_if_failed
            logger.exception("operator loop failed")
            self.error = exc
        finally:
            self._ready.set()
            inbox.close()

    def _cycle(
        self, service: OperatorService, bridge: OperatorBridge, *, retry_transient: bool
    ) -> None:
        try:
            report = service.run_once()
        except (TransientChainError, requests.ConnectionError, requests.Timeout) as exc:
            if not retry_transient:
                raise
            logger.warning("operator cycle: chain unavailable (%s); next cycle retries", exc)
            with self._lock:
                self._totals.transient_errors += 1
            return
        bridge.refresh()
        self._record(report)

    def _record(self, report: CycleReport) -> None:
        with self._lock:
            self.reports.append(report)
            t = self._totals
            t.cycles += 1
            t.rejected.update(reason for _, reason in report.rejected)
            if report.posted is None:
                return
            t.checkpoints += 1
            t.gas += report.gas_used
            kinds = Counter(type(x) for x in report.posted.transitions)
            t.fills += kinds[Fill]
            t.liquidations += kinds[Liquidate]
            t.backstops += kinds[Backstop]
            t.deleverages += kinds[Deleverage]


# ------------------------------------------------------------------------------- the market run


@dataclass
class MarketRun:
    """What the simulator phase produced (the L1 figures come from ``audit``)."""

    api_url: str = ""
    stats: SimStats = field(default_factory=SimStats)
    progress: list[LiveFigures] = field(default_factory=list)
    totals: LoopTotals = field(default_factory=LoopTotals)
    crash_time: int = 0  # chain time of the crash price
    crash_from: int = 0  # ticks
    crash_to: int = 0
    wall_s: float = 0.0
    alice_id: int | None = None
    refills: int = 0  # margin moves of traders whose position had closed flat
    operator_root: bytes = b""  # the operator's state root after its last cycle


class _Alice:
    """The story's alice turns trader: margin in BTC-USD, then a leveraged IOC buy shortly before
    the crash, both signed requests through the API."""

    def __init__(self, system: System, http: httpx.Client, stats: SimStats) -> None:
        account = http.get(f"/v1/accounts/{devnet_account(ALICE).address}").json()
        self.trader = Trader(ALICE, int(account["accountId"]), system.domain, http)
        self.trader.nonce = int(account["nextOrderNonce"]) - 1
        self.next_nonce = int(account["nextNonce"])
        self.stats = stats

    def fund(self) -> int:
        """Moves her margin in; the nonce of that request."""
        nonce = self.next_nonce
        request = MarginTransfer(self.trader.account_id, BTC, ALICE_MARGIN_USDC * USDC, nonce, b"")
        check(
            self.trader.post("margin", request, self.stats),
            f"alice's margin move was refused: {dict(self.stats.rejected)}",
        )
        return nonce

    def buy(self, mark: int) -> bool:
        bound = mark + ALICE_BOUND_TICKS
        return self.trader.order(True, bound, ALICE_SIZE, TIF_IOC, 0, self.stats) is not None


class _Margins:
    """The simulated traders' margin moves (signed, through the API).

    Isolated margin goes back to free collateral when a position closes flat (the ledger deletes
    the leaf), and the simulator's traders never move margin in again: a trader that went flat
    would only collect ``no_position`` refusals, and with both makers flat the book would be
    empty. So after every step each trader without a BTC-USD position, and without a margin move
    in flight, moves its margin in again (``refill``)."""

    def __init__(self, bridge: OperatorBridge, prepared: runner.SimRun) -> None:
        self.bridge = bridge
        self.stats = prepared.stats
        sim = prepared.sim
        self.traders = {t.account_id: t for t in [*sim.makers, *sim.takers]}
        self.amount = {t.account_id: TAKER_MARGIN_USDC for t in sim.takers} | {
            m.account_id: TAKER_MARGIN_USDC + MAKER_TOP_UP_USDC for m in sim.makers
        }
        # account -> (nonce, monotonic time sent): the simulator's margin moves carry nonce 0
        self.in_flight = {a: (0, time.monotonic()) for a in self.traders}
        self.refills = 0

    def top_up_makers(self) -> None:
        """A second margin move for the makers (account nonce 1, after the simulator's 0)."""
        for maker in self.traders.values():
            if self.amount[maker.account_id] > TAKER_MARGIN_USDC:
                request = MarginTransfer(maker.account_id, BTC, MAKER_TOP_UP_USDC * USDC, 1, b"")
                check(
                    maker.post("margin", request, self.stats),
                    f"maker {maker.account_id}'s margin move was refused: "
                    f"{dict(self.stats.rejected)}",
                )
                self.in_flight[maker.account_id] = (1, time.monotonic())

    def wait_included(self, loop: OperatorLoop, extra: dict[int, int], timeout_s: float) -> int:
        """Waits until the operator included every margin move in flight (and ``extra``: account
        -> nonce); the latest checkpoint seq then."""
        wanted = {a: n for a, (n, _) in self.in_flight.items()} | extra
        deadline = time.monotonic() + timeout_s
        while True:
            loop.raise_if_failed()
            ledger = self.bridge.ledger()
            late = [a for a, n in wanted.items() if _nonce(ledger, a) <= n]
            if not late:
                self.in_flight.clear()
                checkpoints = self.bridge.checkpoints()
                return checkpoints[-1].seq if checkpoints else 0
            check(
                time.monotonic() < deadline,
                f"margin moves of accounts {late} not included within {timeout_s:.0f}s",
            )
            time.sleep(0.2)

    def refill(self) -> None:
        ledger = self.bridge.ledger()
        now = time.monotonic()
        for account_id, trader in self.traders.items():
            nonce = _nonce(ledger, account_id)
            sent = self.in_flight.get(account_id)
            if sent is not None:
                if nonce <= sent[0] and now - sent[1] < REFILL_TIMEOUT_S:
                    continue  # not in a checkpoint yet
                del self.in_flight[account_id]
            if nonce < 0 or ledger.position(account_id, BTC) is not None:
                continue
            amount = self.amount[account_id] * USDC
            request = MarginTransfer(account_id, BTC, amount, nonce, b"")
            if trader.post("margin", request, self.stats):
                self.in_flight[account_id] = (nonce, now)
                self.refills += 1


def _nonce(ledger: Ledger, account_id: int) -> int:
    account = ledger.account(account_id)
    return -1 if account is None else account.nonce


def run_market(
    system: System,
    journal: Path,
    say: Narrator,
    view: ProgressView,
    options: MarketOptions,
) -> MarketRun:
    """Operator loop + API + simulator on an already deployed system; everything it starts is
    stopped before it returns or raises."""
    result = MarketRun()
    loop = OperatorLoop(system, journal, interval_s=options.interval_s)
    server: ApiServer | None = None
    prepared: runner.SimRun | None = None
    try:
        bridge = loop.start()
        server = ApiServer(create_app(bridge.api_state(lambda: Inbox(journal))), port=0).start()
        result.api_url = server.url
        say.step(
            f"8. The operator goes live: a cycle every {options.interval_s:g}s; "
            f"HTTP API on {server.url} (OpenAPI at /docs)"
        )
        prepared = _prepare(system, server.url, journal, say, options)
        _trade(system, bridge, prepared, say, view, loop, options, result)
        say.step("11. The operator stops after one last cycle")
        loop.stop(final_cycle=True)
        result.totals = loop.totals()
        assert loop.service is not None
        result.operator_root = loop.service.ledger.state_root
        say.ok(
            f"{result.totals.cycles} cycles, {result.totals.checkpoints} checkpoints posted in "
            f"the market phase"
        )
        return result
    finally:
        with shielded():
            loop.stop(final_cycle=False, quiet=True)
            if server is not None:
                server.stop()
            if prepared is not None:
                prepared.sim.http.close()


def _prepare(
    system: System, api_url: str, journal: Path, say: Narrator, options: MarketOptions
) -> runner.SimRun:
    say.step("9. Simulated traders fund their accounts (on-chain deposits, margin through the API)")
    config = SimConfig(
        makers=MAKERS,
        takers=TAKERS,
        crash_at_step=options.crash_step,
        crash_ppm=options.crash_pct * 10_000,
        seed=options.seed,
    )
    prepared = runner.prepare(
        system, api_url, journal, config, margin_usdc=TAKER_MARGIN_USDC, timeout_s=30
    )
    funded = prepared.stats.accepted
    check(
        funded == len(MAKERS) + len(TAKERS),
        f"{funded} of the traders' margin moves accepted: {dict(prepared.stats.rejected)}",
    )
    say.info(
        f"makers (accounts {', '.join(map(str, MAKERS))}) quote both sides with "
        f"{format_usdc((TAKER_MARGIN_USDC + MAKER_TOP_UP_USDC) * USDC)} margin each; takers "
        f"(accounts {', '.join(map(str, TAKERS))}) trade at random sizes on "
        f"{format_usdc(TAKER_MARGIN_USDC * USDC)} each; a trader whose position closes flat "
        "(its margin goes back to free collateral) moves margin in again"
    )
    return prepared


def _trade(
    system: System,
    bridge: OperatorBridge,
    prepared: runner.SimRun,
    say: Narrator,
    view: ProgressView,
    loop: OperatorLoop,
    options: MarketOptions,
    result: MarketRun,
) -> None:
    stats = prepared.stats
    margins = _Margins(bridge, prepared)
    margins.top_up_makers()
    alice = _Alice(system, prepared.sim.http, stats)
    alice_nonce = alice.fund()
    result.alice_id = alice.trader.account_id
    seq = margins.wait_included(loop, {alice.trader.account_id: alice_nonce}, INCLUDED_TIMEOUT_S)
    say.ok(
        f"{len(MAKERS) + len(TAKERS)} traders and alice have margin in BTC-USD "
        f"(included by checkpoint #{seq})"
    )
    instrument = by_id(BTC)
    say.step(
        f"10. Trading for {options.seconds}s: oracle random walk, BTC-USD crashes "
        f"{options.crash_pct}% at t={options.crash_step}s"
    )
    say.info(
        f"alice (with {format_usdc(ALICE_MARGIN_USDC * USDC)} of margin) buys "
        f"{instrument.size(ALICE_SIZE)} BTC at t={options.alice_step}s (about 6x)"
    )
    rpc_url = system.deployment.rpc_url
    started = time.monotonic()
    baseline = stats.accepted, sum(stats.rejected.values())

    def progress(s: SimStats) -> None:
        loop.raise_if_failed()
        margins.refill()
        if s.steps == options.alice_step:
            alice.buy(s.prices[-1][1])
        totals = loop.totals()
        figures = LiveFigures(
            step=s.steps,
            seconds=options.seconds,
            elapsed_s=time.monotonic() - started,
            mark=s.prices[-1][1],
            orders=s.orders,
            cancels=s.cancels,
            accepted=s.accepted - baseline[0],
            rejected=sum(s.rejected.values()) - baseline[1] + totals.rejected.total(),
            fills=totals.fills,
            checkpoints=totals.checkpoints,
            liquidations=totals.liquidations,
            backstops=totals.backstops,
            deleverages=totals.deleverages,
            crashed=s.steps > options.crash_step,
        )
        result.progress.append(figures)
        view.update(figures)

    view.start(options.seconds, options.crash_step)
    try:
        # The simulator stamps each oracle price with the chain time, the operator's cycle uses
        # the latest block's time as "now". Without a block in a while the two drift apart, and a
        # price stamped later than the operator's now makes the ledger refuse liquidations and
        # backstops ("mark ... is not within 60 s before now"). So each step mines a block first
        # (anvil otherwise mines only on transactions): a price is never newer than the next
        # cycle's now.
        runner.run(
            prepared,
            lambda: advance_time(rpc_url, 0),
            steps=options.seconds,
            step_s=options.interval_s,
            progress=progress,
        )
    finally:
        view.stop()
    result.wall_s = time.monotonic() - started
    result.stats = stats
    result.refills = margins.refills
    before, after = stats.prices[options.crash_step - 1], stats.prices[options.crash_step]
    result.crash_time, result.crash_from, result.crash_to = after[0], before[1], after[1]
    say.ok(
        f"{stats.orders} orders, {stats.cancels} cancels sent in {result.wall_s:.0f}s; "
        f"crash at t={options.crash_step}s: mark ${instrument.price(before[1])} -> "
        f"${instrument.price(after[1])}"
    )


# --------------------------------------------------------------------------- finality and audit


@dataclass(frozen=True)
class CheckpointRecord:
    seq: int
    posted_at: int
    finalizes_at: int
    transitions: int
    fills: int
    fill_volume: int  # lots
    liquidations: int
    backstops: int
    deleverages: int
    withdrawals: int
    gas: int
    calldata_bytes: int
    mark: int  # ticks, BTC-USD after the checkpoint
    open_interest: int  # lots
    insurance_fund: int
    tx_hash: str


@dataclass(frozen=True)
class RiskEvent:
    kind: str  # liquidation, backstop, deleverage
    seq: int
    timestamp: int
    account_id: int
    size: int | None
    price: int  # the fill price of a liquidation, else the mark after the checkpoint


@dataclass
class Audit:
    ledger: Ledger
    checkpoints: list[CheckpointRecord]
    events: list[RiskEvent]
    net_deposits: int


def _events_of(seq: int, transitions: tuple[object, ...], mark: int) -> list[RiskEvent]:
    out = []
    for t in transitions:
        if isinstance(t, Liquidate):
            out.append(RiskEvent("liquidation", seq, t.timestamp, t.account_id, t.size, t.price))
        elif isinstance(t, Backstop):
            out.append(RiskEvent("backstop", seq, t.timestamp, t.account_id, None, mark))
        elif isinstance(t, Deleverage):
            out.append(RiskEvent("deleverage", seq, t.timestamp, t.account_id, t.size, mark))
    return out


def audit(system: System) -> Audit:
    """Every checkpoint's calldata read back from L1 and replayed from genesis (no operator state
    involved), with the figures after each checkpoint and the gas of its postCheckpoint."""
    ledger = genesis_ledger(system)
    records: list[CheckpointRecord] = []
    events: list[RiskEvent] = []
    withdrawn = 0
    w3 = system.client.w3
    for posted in read_checkpoints(system):
        cp = replay(ledger, posted)
        market = ledger.market(BTC)
        assert market is not None
        kinds = Counter(type(t) for t in cp.transitions)
        withdrawn += sum(t.amount for t in cp.transitions if isinstance(t, Withdraw))
        check(kinds[ForcedWithdraw] == 0, "the demo does not expect forced withdrawals")
        receipt = w3.eth.get_transaction_receipt(cp.tx_hash)  # type: ignore[arg-type]
        records.append(
            CheckpointRecord(
                seq=cp.header.seq,
                posted_at=cp.header.timestamp,
                finalizes_at=cp.finalizes_at,
                transitions=len(cp.transitions),
                fills=kinds[Fill],
                fill_volume=sum(t.size for t in cp.transitions if isinstance(t, Fill)),
                liquidations=kinds[Liquidate],
                backstops=kinds[Backstop],
                deleverages=kinds[Deleverage],
                withdrawals=cp.header.withdrawal_count,
                gas=int(receipt["gasUsed"]),
                calldata_bytes=len(cp.data),
                mark=market.mark_price,
                open_interest=market.open_interest,
                insurance_fund=ledger.exchange.insurance_fund,
                tx_hash=cp.tx_hash,
            )
        )
        events.extend(_events_of(cp.header.seq, cp.transitions, market.mark_price))
    deposited = sum(d.amount for d in read_deposits(system)[: ledger.exchange.deposit_cursor])
    return Audit(ledger, records, events, deposited - withdrawn)


@dataclass
class Finality:
    latest_seq: int = 0
    advanced_s: int = 0
    chain_time: int = 0  # after the time travel
    last_finalized_seq: int = 0


def finalize_all(system: System, say: Narrator) -> Finality:
    """Time travel past the challenge window of the latest checkpoint; checks that it is final."""
    settlement = system.settlement.functions
    latest = read_checkpoints(system)[-1]
    seq = latest.header.seq
    now = int(system.client.w3.eth.get_block("latest")["timestamp"])
    check(not settlement.isFinalized(seq).call(), f"checkpoint #{seq} is final too early")
    advance = max(0, latest.finalizes_at - now) + 1
    say.step(f"12. Time travel: {advance}s later every checkpoint is final")
    chain_time = advance_time(system.deployment.rpc_url, advance)
    check(bool(settlement.isFinalized(seq).call()), f"checkpoint #{seq} is not final")
    last = int(settlement.lastFinalizedSeq().call())
    check(last == seq, f"lastFinalizedSeq is {last}, not the latest checkpoint #{seq}")
    say.ok(f"checkpoint #{seq} finalized on L1 (isFinalized, lastFinalizedSeq = {last})")
    return Finality(seq, advance, chain_time, last)


# -------------------------------------------------------------------------------- the figures


@dataclass
class DemoResult:
    """Everything the summary and the report show."""

    rpc_url: str
    deployment: dict[str, str]
    challenge_window: int
    options: MarketOptions
    story: DemoSummary
    market: MarketRun
    audit: Audit
    finality: Finality
    vault_balance: int
    checks: list[str]
    started_at: float
    duration_s: float = 0.0

    @property
    def market_checkpoints(self) -> list[CheckpointRecord]:
        return [c for c in self.audit.checkpoints if c.seq > self.story.checkpoints]

    @property
    def fills(self) -> int:
        return sum(c.fills for c in self.audit.checkpoints)

    @property
    def fill_volume(self) -> int:
        return sum(c.fill_volume for c in self.audit.checkpoints)

    @property
    def gas_fill_checkpoints(self) -> int:
        return sum(c.gas for c in self.audit.checkpoints if c.fills)

    @property
    def gas_per_fill(self) -> int:
        return self.gas_fill_checkpoints // self.fills if self.fills else 0

    def count(self, kind: str) -> int:
        return sum(1 for e in self.audit.events if e.kind == kind)

    @property
    def insurance_fund(self) -> int:
        return self.audit.ledger.exchange.insurance_fund

    @property
    def liabilities(self) -> int:
        return self.audit.ledger.total_liabilities()

    @property
    def rejected(self) -> dict[str, int]:
        """Requests the API refused (4xx), by reason."""
        return dict(self.market.stats.rejected.most_common())

    @property
    def operator_rejected(self) -> dict[str, int]:
        """Requests the API accepted and the operator's cycle then rejected, by reason."""
        return dict(self.market.totals.rejected.most_common())


class _Recorder:
    """A Narrator that passes everything on and keeps the checked claims (``ok``) for the
    report."""

    def __init__(self, say: Narrator) -> None:
        self.say = say
        self.claims: list[str] = []

    def step(self, title: str) -> None:
        self.say.step(title)

    def info(self, text: str) -> None:
        self.say.info(text)

    def ok(self, text: str) -> None:
        self.claims.append(text)
        self.say.ok(text)


def _checks(say: Narrator) -> Callable[[bool, str, str], None]:
    """``checks(condition, claim, failure)``: raises DemoFailed(failure), else narrates claim."""

    def checks(condition: bool, claim: str, failure: str) -> None:
        check(condition, failure)
        say.ok(claim)

    return checks


def _verify(system: System, say: Narrator, market: MarketRun, found: Audit) -> int:
    """The claims about the run, checked against L1; returns the vault's balance."""
    checks = _checks(say)
    say.step("13. Audit from L1 alone: replay every checkpoint's calldata from genesis")
    ledger, records = found.ledger, found.checkpoints
    root, operator_root = ledger.state_root, market.operator_root
    checks(
        root == operator_root,
        f"{len(records)} checkpoints replayed: state root 0x{root.hex()[:16]}… = the operator's",
        f"the replayed root 0x{root.hex()} is not the operator's 0x{operator_root.hex()}",
    )
    fills = sum(c.fills for c in records)
    checks(fills > 0, f"{fills} fills settled on L1", "no fill reached L1")
    after = [e for e in found.events if e.timestamp >= market.crash_time]
    kinds = Counter(e.kind for e in after)
    checks(
        bool(after),
        "after the crash: "
        + ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(kinds.items())),
        "the crash liquidated nobody (no liquidation, backstop or deleverage after it)",
    )
    try:
        ledger.check_invariants(found.net_deposits)
        broken = ""
    except Exception as exc:  # InvariantViolation: a bug; reported as the demo's failure
        broken = str(exc)
    checks(
        not broken,
        "ledger invariants hold (conservation incl. funding, no negative balance, sizes sum to "
        "zero, open interest = longs)",
        f"ledger invariant broken: {broken}",
    )
    vault = int(system.token.functions.balanceOf(system.deployment.vault).call())
    liabilities = ledger.total_liabilities()
    checks(
        vault >= liabilities,
        f"vault {format_usdc(vault)} >= total liabilities {format_usdc(liabilities)}",
        f"vault {format_usdc(vault)} < liabilities {format_usdc(liabilities)}",
    )
    return vault


def run_demo(
    say: Narrator,
    *,
    port: int = 8545,
    options: MarketOptions | None = None,
    view: ProgressView | None = None,
) -> DemoResult:
    """Fresh anvil in a temporary state directory; deploy; the story; the market; finality; the
    audit. Anvil, the API and the operator thread are stopped however this ends."""
    options = options or MarketOptions()
    say = recorder = _Recorder(say)
    started_at = time.time()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="isoperp-demo-") as tmp,
        local_devnet(Path(tmp), port) as net,
    ):
        say.step(f"0. Devnet up at {net.url}; deploying")
        client = ChainClient(connect(net.url), devnet_account(0))
        deployment = deploy_system(Web3Deployer(client), DeployParams(), rpc_url=net.url)
        say.info(
            f"Settlement {deployment.settlement}, vault {deployment.vault}, "
            f"MockUSDC {deployment.token}"
        )
        say.info(f"challenge window {deployment.challenge_window}s, operator bond 1 ETH")
        system = System(client, deployment)
        journal = Path(tmp) / "inbox.sqlite"
        inbox = Inbox(journal)
        try:
            story = run_story(system, inbox, say)
        finally:
            inbox.close()
        market = run_market(system, journal, say, view or NoProgress(), options)
        finality = finalize_all(system, say)
        found = audit(system)
        vault = _verify(system, say, market, found)
        return DemoResult(
            rpc_url=net.url,
            deployment={
                "settlement": deployment.settlement,
                "vault": deployment.vault,
                "token": deployment.token,
            },
            challenge_window=int(deployment.challenge_window),
            options=options,
            story=story,
            market=market,
            audit=found,
            finality=finality,
            vault_balance=vault,
            checks=recorder.claims,
            started_at=started_at,
            duration_s=time.monotonic() - started,
        )

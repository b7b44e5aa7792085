"""`isoperp operator run`."""

from __future__ import annotations

import logging
import time

import click
import requests
from rich.console import Console

from isoperp.api.app import create_app
from isoperp.api.bridge import OperatorBridge
from isoperp.api.server import DEFAULT_HOST, DEFAULT_PORT, ApiServer
from isoperp.cli.context import CliState, resolve_signer
from isoperp.errors import ConfigError, TransientChainError
from isoperp.service.cadence import Cadence
from isoperp.service.inbox import Inbox
from isoperp.service.operator import FEE_THRESHOLD, CycleReport, OperatorService
from isoperp.units import format_usdc, parse_usdc

console = Console(soft_wrap=True)
logger = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0
REFRESH_S = 1.0


@click.group()
def operator() -> None:
    """Run the operator: batch deposits and requests, post checkpoints."""


def _show(report: CycleReport, *, quiet_idle: bool = False) -> None:
    if report.deferred:
        return  # rebuilt from the same journal next time: its rejections are not final yet
    for request_id, reason in report.rejected:
        console.print(f"request {request_id} rejected: {reason}")
    if report.posted is None:
        if not quiet_idle:
            console.print("nothing to post")
        return
    h = report.posted.header
    console.print(
        f"posted checkpoint [bold]#{h.seq}[/]: {report.deposits} deposit(s), "
        f"{report.forced} forced request(s), {report.requests} request(s), "
        f"{report.fills} fill(s), {len(report.posted.withdrawals)} withdrawal(s), "
        f"{len(report.posted.data)} bytes, gas {report.gas_used}, root 0x{h.state_root.hex()[:16]}…"
    )
    if report.deposits_rejected:
        console.print(f"{report.deposits_rejected} deposit(s) could not be credited: refunded")
    if report.fees_collected:
        console.print(f"collected {format_usdc(report.fees_collected)} of fees")


def _fee_threshold(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_usdc(value)
    except ConfigError as exc:
        raise click.BadParameter(exc.message) from exc


@operator.command()
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds between cycles (runs until Ctrl-C).",
)
@click.option(
    "--batch-fills",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With --interval T: post as soon as N fills are waiting, else every T seconds.",
)
@click.option("--post-empty", is_flag=True, help="Post a checkpoint even with nothing to include.")
@click.option(
    "--fee-threshold",
    default=str(FEE_THRESHOLD // 10**6),
    show_default=True,
    callback=_fee_threshold,
    metavar="USDC",
    help="Collect the fees (FEE_COLLECT: 20% to the insurance fund) once they exceed this.",
)
@click.option(
    "--api/--no-api",
    "serve_api",
    default=True,
    show_default=True,
    help="With --interval: serve the HTTP/WebSocket API (OpenAPI at /docs).",
)
@click.option("--api-host", default=DEFAULT_HOST, show_default=True)
@click.option("--api-port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option(
    "--account",
    "account_index",
    type=int,
    default=None,
    help="Devnet account index of the operator (default 0).",
)
@click.option(
    "--key",
    default=None,
    envvar="ISOPERP_OPERATOR_KEY",
    show_envvar=True,
    help="Operator private key (hex).",
)
@click.pass_obj
def run(
    state: CliState,
    once: bool,
    interval: float | None,
    batch_fills: int | None,
    post_empty: bool,
    fee_threshold: int,
    serve_api: bool,
    api_host: str,
    api_port: int,
    account_index: int | None,
    key: str | None,
) -> None:
    """Rebuild state from L1, then batch and post checkpoints (--once, or every --interval S).

    With --batch-fills N the cadence is "every N fills or S seconds": the operator looks every
    0.2 s and posts as soon as the waiting orders make N fills (or a forced request waits, or the
    batch is full), otherwise S seconds after the batch opened. The chain is followed block by
    block; a reorg that takes checkpoints away rolls the state back and posts their requests
    again; a transaction not mined in 15 s is replaced with higher fees (docs/OPERATIONS.md)."""
    if once == (interval is not None):
        raise click.UsageError("give exactly one of --once or --interval S")
    if batch_fills is not None and once:
        raise click.UsageError("--batch-fills needs --interval S")
    signer = resolve_signer(account_index, key, default_index=0)
    system = state.system(signer)
    service = OperatorService(system, state.inbox(), fee_threshold=fee_threshold)
    if once:
        _show(service.run_once(post_empty=post_empty))
        return
    assert interval is not None
    service.sync()
    bridge = OperatorBridge.for_system(service, system)
    server = None
    if serve_api:
        journal = state.state_dir / "inbox.sqlite"
        app = create_app(bridge.api_state(lambda: Inbox(journal)))
        server = ApiServer(app, host=api_host, port=api_port).start()
        console.print(f"API on {server.url} (OpenAPI: {server.url}/docs)")
    bridge.refresh()
    cadence = Cadence(interval, batch_fills, post_empty)
    announced = False
    refreshed = time.monotonic()
    backoff = interval
    try:
        while True:
            try:
                plan = cadence.plan()
                report = service.run_once(post_empty=plan.post_empty, min_fills=plan.min_fills)
                cadence.record(report)
                _show(report, quiet_idle=True)
                if report.posted is not None or time.monotonic() - refreshed >= REFRESH_S:
                    bridge.refresh()  # the API's snapshot: after a post, else once a second
                    refreshed = time.monotonic()
                if not announced:  # after the first cycle: it posted what waited for a restart
                    console.print(
                        f"operator running: a checkpoint {cadence.describe()} (Ctrl-C to stop)"
                    )
                    announced = True
                backoff = interval
            except (TransientChainError, requests.ConnectionError, requests.Timeout) as exc:
                # Only transient failures are retried; everything else stops the operator.
                backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_S)
                console.print(
                    f"[yellow]chain unavailable ({exc.__class__.__name__}); "
                    f"retrying in {backoff:.0f}s[/]"
                )
                logger.warning("chain unavailable, retrying in %.1fs: %s", backoff, exc)
                time.sleep(backoff)
                continue
            time.sleep(cadence.tick)
    except KeyboardInterrupt:
        console.print("operator stopped")
    finally:
        if server is not None:
            server.stop()

"""`isoperp demo` (what `make demo` runs)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from isoperp.demo_market import BTC, DemoResult, LiveFigures, MarketOptions, run_demo
from isoperp.exchange.instruments import by_id
from isoperp.units import format_usdc

console = Console()
err_console = Console(stderr=True)
PLAIN_EVERY_S = 10  # without a terminal: one progress line every so many simulated seconds


class RichNarrator:
    def step(self, title: str) -> None:
        console.print(f"\n[bold cyan]{title}[/]", soft_wrap=True)

    def info(self, text: str) -> None:
        console.print(f"   {text}", highlight=False, soft_wrap=True)

    def ok(self, text: str) -> None:
        console.print(f"   [green]✓[/] {text}", highlight=False, soft_wrap=True)


def _figures(f: LiveFigures | None) -> Padding:
    return Padding(_figures_table(f), (0, 0, 0, 3))


def _figures_table(f: LiveFigures | None) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    for name in ("mark", "orders", "accepted", "rejected", "fills", "checkpoints", "liq/bs/dl"):
        table.add_column(name, justify="right")
    if f is None:
        table.add_row(*["-"] * 7)
        return table
    mark = f"${by_id(BTC).price(f.mark)}"
    table.add_row(
        f"[red]{mark}[/]" if f.crashed else mark,
        f"{f.orders:,}",
        f"{f.accepted:,}",
        f"{f.rejected:,}",
        f"{f.fills:,}",
        f"{f.checkpoints:,}",
        f"{f.liquidations}/{f.backstops}/{f.deleverages}",
    )
    return table


def _plain_line(f: LiveFigures) -> str:
    return (
        f"   t={f.step:>3}s ({f.elapsed_s:4.0f}s) mark ${by_id(BTC).price(f.mark)} "
        f"orders {f.orders} (requests accepted {f.accepted}, rejected {f.rejected}) "
        f"fills {f.fills} checkpoints {f.checkpoints} liquidations {f.liquidations} "
        f"backstops {f.backstops} deleverages {f.deleverages}"
    )


class LiveProgress:
    """The simulator phase on screen: a rich Live display (progress bar, elapsed time and the
    figures) on a terminal, a plain line every ``PLAIN_EVERY_S`` seconds otherwise."""

    def __init__(self) -> None:
        self.live: Live | None = None
        self.bar = Progress(
            TextColumn("   [bold]trading[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("s"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.bar.add_task("trading", total=1)
        self.crash_step = 0

    def start(self, seconds: int, crash_step: int) -> None:
        self.crash_step = crash_step
        self.bar.update(self.task, total=seconds, completed=0)
        if console.is_terminal:
            self.live = Live(Group(self.bar, _figures(None)), console=console, refresh_per_second=4)
            self.live.start()

    def update(self, figures: LiveFigures) -> None:
        self.bar.update(self.task, completed=figures.step)
        if self.live is not None:
            self.live.update(Group(self.bar, _figures(figures)))
        elif (
            figures.step % PLAIN_EVERY_S == 0
            or figures.step in (1, self.crash_step + 1)
            or figures.step == figures.seconds
        ):
            console.print(_plain_line(figures), highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise click.ClickException("no free TCP port")


def summary_table(result: DemoResult) -> Table:
    inst = by_id(BTC)
    table = Table("measure", "value", title="demo summary")
    table.add_row("fills", f"{result.fills:,} ({inst.size(result.fill_volume)} BTC)")
    table.add_row(
        "checkpoints",
        f"{len(result.audit.checkpoints)} posted, all final "
        f"({len(result.market_checkpoints)} in the market phase)",
    )
    table.add_row(
        "gas per fill",
        f"{result.gas_per_fill:,} ({result.gas_fill_checkpoints:,} gas of postCheckpoint "
        f"in {sum(1 for c in result.audit.checkpoints if c.fills)} checkpoints with fills)",
    )
    table.add_row("liquidations", str(result.count("liquidation")))
    table.add_row("backstops", str(result.count("backstop")))
    table.add_row("deleverages", str(result.count("deleverage")))
    table.add_row("insurance fund", format_usdc(result.insurance_fund))
    table.add_row(
        "vault / liabilities",
        f"{format_usdc(result.vault_balance)} / {format_usdc(result.liabilities)}",
    )
    stats = result.market.stats
    table.add_row(
        "requests",
        f"{stats.orders:,} orders, {stats.cancels:,} cancels, {stats.accepted:,} accepted",
    )
    table.add_row("margin refills", f"{result.market.refills} (positions that had closed flat)")
    for stage, reasons in (("API", result.rejected), ("operator", result.operator_rejected)):
        text = ", ".join(f"{k} {n:,}" for k, n in reasons.items()) or "none"
        table.add_row(f"rejected by the {stage}", text)
    for name, gas in result.story.gas.items():
        table.add_row(f"gas: {name}", f"{gas:,}")
    table.add_row("withdrawal claimed", format_usdc(result.story.claimed))
    return table


@click.command()
@click.option(
    "--port",
    type=int,
    default=8545,
    show_default=True,
    help="Port for the demo's own anvil (another free port if taken).",
)
@click.option(
    "--seconds",
    type=click.IntRange(6, 3600),
    default=60,
    show_default=True,
    help="How long the simulator trades (the crash comes at about 2/3).",
)
@click.option("--crash-pct", type=click.IntRange(1, 99), default=30, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="The simulator's seed.")
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-report"),
    show_default=True,
    help="Where report.json and report.png go.",
)
def demo(port: int, seconds: int, crash_pct: int, seed: int, report_dir: Path) -> None:
    """On a fresh local devnet: deposit -> checkpoint -> withdrawal -> finality -> claim, then the
    operator and its API with simulated traders and a flash crash, finality by time travel, an
    audit from L1, a summary and a report. Stops everything it started, also on Ctrl-C."""
    from isoperp.demo_report import write_report  # matplotlib: only for the demo

    options = MarketOptions(seconds=seconds, crash_pct=crash_pct, seed=seed)
    view = LiveProgress()
    try:
        result = run_demo(RichNarrator(), port=free_port(port), options=options, view=view)
    except KeyboardInterrupt:
        view.stop()
        err_console.print(
            "[bold red]demo interrupted[/]: stopped the operator, the API and anvil",
            highlight=False,
        )
        sys.exit(130)
    console.print()
    console.print(summary_table(result))
    json_path, png_path = write_report(result, report_dir)
    console.print(f"report: {json_path}", highlight=False, soft_wrap=True)
    console.print(f"chart:  {png_path}", highlight=False, soft_wrap=True)
    console.print(f"[bold green]demo finished in {result.duration_s:.0f}s: every check passed[/]")

"""`isoperp bench ...`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from isoperp.bench.e2e import run_e2e_bench
from isoperp.bench.gas import run_gas_bench
from isoperp.bench.ingest import run_ingest_bench
from isoperp.bench.matching import run_matching_bench
from isoperp.bench.tree import run_tree_bench
from isoperp.chain.genesis import DEFAULT_MARKETS, load_markets
from isoperp.cli.demo_cmd import free_port

console = Console()


@click.group()
def bench() -> None:
    """Benchmarks: measured figures, printed (never asserted)."""


@bench.command()
@click.option(
    "--sizes",
    default="1,10,100,1000",
    show_default=True,
    help="Comma-separated numbers of fills per checkpoint.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--port",
    type=int,
    default=8547,
    show_default=True,
    help="Port for the benchmark's own anvil (another free port if taken).",
)
def gas(sizes: str, as_json: bool, port: int) -> None:
    """Gas of deposit, checkpoint posts with 1/10/100/1000 real fills, and claim."""
    try:
        parsed = tuple(int(s) for s in sizes.split(",") if s.strip())
    except ValueError as exc:
        raise click.BadParameter("sizes must be integers, e.g. 1,10,100") from exc
    if not parsed or min(parsed) < 1:
        raise click.BadParameter("sizes must be positive")
    with console.status("measuring on a throwaway anvil..."):
        report = run_gas_bench(parsed, port=free_port(port))
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    table = Table(
        "operation", "gas", "batch bytes", "gas per fill", "bytes per fill", title="settlement gas"
    )
    table.add_row("deposit", f"{report.deposit:,}", "", "", "")
    table.add_row("postCheckpoint (empty)", f"{report.checkpoint_empty:,}", "5", "", "")
    for n, row in report.checkpoints.items():
        table.add_row(
            f"postCheckpoint ({n} fills)",
            f"{row['gas']:,}",
            f"{row['batch_bytes']:,}",
            f"{row['gas_per_fill']:,}",
            f"{row['bytes_per_fill']:,}",
        )
    table.add_row("claimWithdrawal", f"{report.claim_withdrawal:,}", "", "", "")
    console.print(table)


@bench.command()
@click.option(
    "--ops",
    type=click.IntRange(min=1),
    default=200_000,
    show_default=True,
    help="Timed operations (places, cancels, expiries).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=20_000,
    show_default=True,
    help="Passive orders placed before timing starts.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Workload seed.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Throughput passes; ops_per_s is their median.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def matching(ops: int, warmup: int, seed: int, repeat: int, as_json: bool) -> None:
    """Order book throughput and per-operation latency on a seeded mixed workload."""
    with console.status(f"matching {ops:,} operations..."):
        report = run_matching_bench(ops=ops, warmup=warmup, seed=seed, repeat=repeat)
    _print_figures(report, "order book (one core, pure Python)", as_json)


def _print_figures(report: dict[str, object], title: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report))
        return
    table = Table("figure", "value", title=title)
    for name, value in report.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        table.add_row(name, str(shown))
    console.print(table)


@bench.command()
@click.option(
    "--ops",
    type=click.IntRange(min=100),
    default=20_000,
    show_default=True,
    help="Signed orders and cancels in the timed run.",
)
@click.option("--accounts", type=click.IntRange(min=2), default=500, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Workload seed.")
@click.option(
    "--markets",
    "markets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Genesis market file (as for `isoperp deploy`); the bench trades its first market.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def ingest(
    ops: int, accounts: int, seed: int, markets_file: Path | None, as_json: bool
) -> None:
    """Signed orders through verification, matching, the ledger and the batch (one core)."""
    markets = DEFAULT_MARKETS if markets_file is None else load_markets(markets_file)
    with console.status("signing the workload...") as status:
        report = run_ingest_bench(
            ops=ops,
            accounts=accounts,
            seed=seed,
            progress=lambda done: status.update(f"ingesting: {done:,}/{ops:,}"),
            markets=markets,
        )
    _print_figures(report.as_dict(), "signed-order ingest (one core)", as_json)


@bench.command()
@click.option("--fills", type=click.IntRange(min=100), default=20_000, show_default=True)
@click.option("--accounts", type=click.IntRange(min=2), default=1_000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Workload seed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tree(fills: int, accounts: int, seed: int, as_json: bool) -> None:
    """Fills applied to the ledger with the state root recomputed after each (one core)."""
    with console.status(f"applying {fills:,} fills..."):
        report = run_tree_bench(fills=fills, accounts=accounts, seed=seed)
    _print_figures(report.as_dict(), "state-root updates per fill (one core)", as_json)


@bench.command()
@click.option("--seconds", type=click.FloatRange(1, 600), default=15, show_default=True)
@click.option(
    "--clients",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Client threads posting signed orders.",
)
@click.option(
    "--cycle",
    "cycle_s",
    type=click.FloatRange(0.1, 60),
    default=1.0,
    show_default=True,
    help="Seconds between operator cycles (checkpoints).",
)
@click.option(
    "--port",
    type=int,
    default=8557,
    show_default=True,
    help="Port for the benchmark's own anvil (another free port if taken).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def e2e(seconds: float, clients: int, cycle_s: float, port: int, as_json: bool) -> None:
    """Signed orders over the API into a running operator posting checkpoints to anvil."""
    with console.status(f"running the operator and {clients} clients for {seconds:g}s..."):
        report = run_e2e_bench(
            seconds=seconds, clients=clients, cycle_s=cycle_s, port=free_port(port)
        )
    _print_figures(report.as_dict(), "end to end: API -> journal -> matching -> L1", as_json)

"""`isoperp drill NAME|all`: fresh devnet scenarios that exit non-zero if a property breaks."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from isoperp.cli.demo_cmd import free_port
from isoperp.drills import DRILLS, DrillResult, run_drill

console = Console()


def _say(offset: int, text: str) -> None:
    style = "red" if text.startswith("FAILED") else ("green" if text.startswith("ok:") else "")
    stamp = escape(f"[t+{offset:>5}s]")
    body = escape(text)
    line = f"[dim]{stamp}[/] " + (f"[{style}]{body}[/]" if style else body)
    console.print(line, highlight=False)


def _run(name: str, port: int, verbose: bool) -> DrillResult:
    scenario, what = DRILLS[name]
    if verbose:
        console.print(f"\n[bold cyan]drill {name}[/]: {what}")
    return run_drill(name, scenario, port=free_port(port), say=_say if verbose else None)


@click.command()
@click.argument("name", type=click.Choice([*DRILLS, "all"]))
@click.option(
    "--port",
    type=int,
    default=8555,
    show_default=True,
    help="Port for the drill's own anvil (another free port if taken).",
)
def drill(name: str, port: int) -> None:
    """Run a drill (or all of them) on a fresh devnet; print its timeline; exit 1 on failure.

    \b
    operator-offline    operator stops; forced request expires; freeze; exact escapes
    censorship          a skipped forced request: rejected checkpoints, freeze at the deadline
    stale-proof         escapes against pending/older roots and tampered proofs revert
    double-escape       same leaf twice, aliased index, internal node as leaf revert
    bad-debt            negative-equity position pays 0; haircut; order-independent payouts
    unincluded-deposit  deposits never included are refunded once, and only those
    censored-deposit    one deposit censored: freeze (reason 3) at its deadline, full refund
    escape-claim-window haircut from registered claims, order-independent, late claims
    flash-crash         -30% in one tick: losses isolated, bystanders untouched
    """
    names = list(DRILLS) if name == "all" else [name]
    results = [_run(n, port, verbose=len(names) == 1) for n in names]
    if len(names) > 1:
        table = Table("drill", "result", "seconds", "property", title="drills")
        for r in results:
            verdict = "[green]pass[/]" if r.passed else f"[red]FAIL[/] {r.error}"
            table.add_row(r.name, verdict, f"{r.seconds:.1f}", DRILLS[r.name][1])
        console.print(table)
    else:
        r = results[0]
        console.print(
            f"[bold green]drill {r.name} passed[/] ({r.seconds:.1f}s)"
            if r.passed
            else f"[bold red]drill {r.name} FAILED[/]: {r.error}"
        )
    if not all(r.passed for r in results):
        sys.exit(1)

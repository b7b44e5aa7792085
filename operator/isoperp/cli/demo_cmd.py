"""`isoperp demo`."""

from __future__ import annotations

import socket

import click
from rich.console import Console
from rich.table import Table

from isoperp.demo import run_demo
from isoperp.units import format_usdc

console = Console()


class RichNarrator:
    def step(self, title: str) -> None:
        console.print(f"\n[bold cyan]{title}[/]")

    def info(self, text: str) -> None:
        console.print(f"   {text}", highlight=False)

    def ok(self, text: str) -> None:
        console.print(f"   [green]✓[/] {text}", highlight=False)


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise click.ClickException("no free TCP port")


@click.command()
@click.option(
    "--port",
    type=int,
    default=8545,
    show_default=True,
    help="Port for the demo's own anvil (another free port if taken).",
)
def demo(port: int) -> None:
    """Run the end-to-end story on a fresh local devnet, then stop it."""
    summary = run_demo(RichNarrator(), port=free_port(port))
    table = Table("measure", "value", title="demo summary")
    table.add_row("checkpoints posted", str(summary.checkpoints))
    for name, gas in summary.gas.items():
        table.add_row(f"gas: {name}", f"{gas:,}")
    table.add_row("vault balance", format_usdc(summary.vault_balance))
    table.add_row("claimed", format_usdc(summary.claimed))
    console.print()
    console.print(table)
    console.print("[bold green]demo finished: every check passed[/]")

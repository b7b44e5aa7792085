"""`isoperp devnet up|down|advance|accounts`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from isoperp.cli.context import CliState
from isoperp.devnet import DEFAULT_HOST, DEFAULT_PORT, Devnet, advance_time, devnet_account

console = Console()


@click.group()
def devnet() -> None:
    """Run a local anvil devnet (chain 31337, anvil's test mnemonic)."""


@devnet.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--block-time", type=int, default=None, help="Mine every N seconds (default: on demand)."
)
@click.pass_obj
def up(state: CliState, host: str, port: int, block_time: int | None) -> None:
    """Start anvil in the background (log and pid file in the state directory)."""
    net = Devnet(host, port, state.state_dir)
    pid = net.up(block_time=block_time)
    console.print(f"devnet up at [bold]{net.url}[/] (anvil pid {pid}, log {net.logfile})")


@devnet.command()
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.pass_obj
def down(state: CliState, port: int) -> None:
    """Stop the anvil that `devnet up` started."""
    net = Devnet(DEFAULT_HOST, port, state.state_dir)
    if net.down():
        console.print("devnet stopped")
    else:
        console.print("no devnet was running")


@devnet.command()
@click.argument("seconds", type=click.IntRange(min=0))
@click.option("--url", default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}", show_default=True)
def advance(seconds: int, url: str) -> None:
    """Time travel: move the devnet clock forward SECONDS and mine a block."""
    ts = advance_time(url, seconds)
    console.print(f"devnet time is now {ts} (+{seconds}s)")


@devnet.command()
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 100))
def accounts(count: int) -> None:
    """List the devnet test accounts (0 deploys and operates; 1.. are traders)."""
    table = Table("index", "address", "role")
    for i in range(count):
        table.add_row(
            str(i), devnet_account(i).address, "deployer / operator" if i == 0 else "trader"
        )
    console.print(table)

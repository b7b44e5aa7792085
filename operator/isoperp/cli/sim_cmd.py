"""`isoperp sim`: a market simulator that trades through the operator's API."""

from __future__ import annotations

import click
from rich.console import Console

from isoperp.api.server import DEFAULT_PORT
from isoperp.cli.context import CliState, require_devnet
from isoperp.devnet import devnet_account
from isoperp.sim import runner
from isoperp.sim.market import SimConfig, SimStats

console = Console()


@click.command()
@click.option(
    "--api",
    "api_url",
    default=f"http://127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    help="The operator's API (`isoperp operator run --interval 1`).",
)
@click.option("--seconds", type=click.IntRange(1, 3600), default=60, show_default=True)
@click.option(
    "--crash-at",
    type=click.IntRange(min=0),
    default=None,
    help="Second at which the oracle drops the price by --crash-pct.",
)
@click.option("--crash-pct", type=click.IntRange(1, 99), default=30, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.pass_obj
def sim(
    state: CliState, api_url: str, seconds: int, crash_at: int | None, crash_pct: int, seed: int
) -> None:
    """Oracle random walk (optional flash crash), market makers quoting both sides, takers with
    random sizes and leverage: all signed requests through the operator's API (devnet)."""
    system = state.system(devnet_account(0))
    require_devnet(system, "the simulator")
    config = SimConfig(crash_at_step=crash_at, crash_ppm=crash_pct * 10_000, seed=seed)
    with console.status("funding the simulated traders..."):
        prepared = runner.prepare(system, api_url, state.state_dir / "inbox.sqlite", config)
    w3 = system.client.w3

    def show(stats: SimStats) -> None:
        rejected = sum(stats.rejected.values())
        console.print(
            f"t={stats.steps:>3}s mark {stats.prices[-1][1] / 10:,.1f} orders {stats.orders} "
            f"cancels {stats.cancels} accepted {stats.accepted} rejected {rejected}",
            highlight=False,
        )

    stats = runner.run(
        prepared, lambda: int(w3.eth.get_block("latest")["timestamp"]), steps=seconds, progress=show
    )
    console.print(f"rejections by reason: {dict(stats.rejected) or 'none'}")

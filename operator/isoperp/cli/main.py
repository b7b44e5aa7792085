"""`isoperp`: the command line. Every user error is one line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import httpx
import requests
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from isoperp.chain.deployment import DEFAULT_DEPLOYMENT
from isoperp.cli.context import CliState
from isoperp.errors import IsoperpError

err_console = Console(stderr=True)


class IsoperpGroup(click.Group):
    """Turns IsoperpError (and an unreachable RPC) into ``error[code]: message``, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IsoperpError as exc:
            _fail(exc.code, exc.message)
        except requests.ConnectionError as exc:
            _fail("chain_unavailable", f"cannot reach the RPC endpoint ({exc.__class__.__name__})")
        except httpx.TransportError as exc:
            where = exc.request.url if exc.__dict__.get("_request") else "the operator's API"
            _fail("api_unavailable", f"cannot reach {where} ({exc.__class__.__name__})")
        except KeyboardInterrupt:
            _fail("interrupted", "stopped by Ctrl-C")


def _fail(code: str, message: str) -> None:
    line = Text.assemble((f"error[{code}]", "bold red"), f": {message}")
    err_console.print(line, highlight=False, soft_wrap=True)
    sys.exit(1)


@click.group(cls=IsoperpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--deployment",
    "deployment_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_DEPLOYMENT,
    show_default=True,
    envvar="ISOPERP_DEPLOYMENT",
    help="Deployment file written by `isoperp deploy`.",
)
@click.option(
    "--rpc",
    "rpc_url",
    default=None,
    envvar="ISOPERP_RPC",
    help="RPC URL (default: the one in the deployment file).",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.version_option(package_name="isoperp")
@click.pass_context
def cli(ctx: click.Context, deployment_path: Path, rpc_url: str | None, verbose: int) -> None:
    """isoperp: an isolated-margin perpetual-futures exchange with an off-chain operator,
    on-chain settlement checkpoints and an escape hatch.

    \b
    Quick start on a local devnet:
      isoperp devnet up            start anvil on 127.0.0.1:8545
      isoperp deploy               deploy MockUSDC, Settlement (+ vault), post the operator bond
      isoperp deposit 1000         deposit 1,000 USDC (devnet: minted first) as test account 1
      isoperp operator run --once  batch and post a checkpoint
      isoperp withdraw 250         ask the operator for a withdrawal
      isoperp operator run --once  include it in the next checkpoint
      isoperp devnet advance 601   move past the challenge window (devnet time travel)
      isoperp claim                claim finalized withdrawals on L1
      isoperp status               checkpoints, finality, balances
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    ctx.obj = CliState(deployment_path=deployment_path, rpc_url=rpc_url, verbose=verbose)


def _register() -> None:
    from isoperp.cli import (
        bench_cmd,
        demo_cmd,
        devnet_cmd,
        drill_cmd,
        exchange_cmds,
        exit_cmds,
        operator_cmd,
        sim_cmd,
        trading_cmds,
    )

    cli.add_command(devnet_cmd.devnet)
    cli.add_command(exchange_cmds.deploy)
    cli.add_command(exchange_cmds.deposit)
    cli.add_command(exchange_cmds.withdraw)
    cli.add_command(exchange_cmds.claim)
    cli.add_command(exchange_cmds.status)
    cli.add_command(operator_cmd.operator)
    cli.add_command(demo_cmd.demo)
    cli.add_command(bench_cmd.bench)
    cli.add_command(trading_cmds.margin)
    cli.add_command(trading_cmds.order)
    cli.add_command(trading_cmds.book)
    cli.add_command(trading_cmds.positions)
    cli.add_command(trading_cmds.risk_group, name="risk")
    cli.add_command(trading_cmds.oracle)
    cli.add_command(exit_cmds.force_withdraw)
    cli.add_command(exit_cmds.force_exit)
    cli.add_command(exit_cmds.freeze)
    cli.add_command(exit_cmds.exits)
    cli.add_command(exit_cmds.escape)
    cli.add_command(drill_cmd.drill)
    cli.add_command(sim_cmd.sim)


_register()

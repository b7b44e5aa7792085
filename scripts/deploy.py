"""`ape run deploy`: deploy isoperp with ape (same code path as `isoperp deploy`).

    ape run deploy                               # throwaway local anvil, test account 0
    ape run deploy --network ethereum:local:node # attach to `isoperp devnet up`
    ape run deploy --network ethereum:sepolia:node --account ALIAS --challenge-window 604800
"""

from __future__ import annotations

from pathlib import Path

import click
from ape import accounts, chain, project
from ape.api import AccountAPI
from ape.cli import ConnectedProviderCommand, account_option

from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.chain.deployment import DEFAULT_DEPLOYMENT
from isoperp.chain.genesis import DEFAULT_MARKETS, load_markets
from isoperp.errors import ConfigError


class ApeDeployer:
    """The Deployer of isoperp.chain.deploy on top of an ape account."""

    def __init__(self, account: AccountAPI, chain_id: int) -> None:
        self.account = account
        self._chain_id = chain_id

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def chain_id(self) -> int:
        return self._chain_id

    def next_nonce(self) -> int:
        return int(self.account.nonce)

    def deploy_contract(self, name: str, *args: object) -> tuple[str, int]:
        instance = self.account.deploy(project.get_contract(name), *args)
        return str(instance.address), int(chain.blocks.height)  # automined in this block

    def call(self, address: str, name: str, fn: str, *args: object, value: int = 0) -> object:
        contract = project.get_contract(name).at(address)
        return getattr(contract, fn)(*args, sender=self.account, value=value)

    def read(self, address: str, name: str, fn: str, *args: object) -> object:
        return getattr(project.get_contract(name).at(address), fn)(*args)


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--challenge-window", type=int, default=600, show_default=True)
@click.option("--min-bond-wei", type=int, default=10**18, show_default=True)
@click.option("--token", default=None, help="Collateral token (default: deploy MockUSDC).")
@click.option(
    "--markets",
    "markets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Genesis markets: a .json or .toml market file (default: the devnet markets).",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=DEFAULT_DEPLOYMENT, show_default=True
)
def cli(
    provider: object,
    account: AccountAPI,
    challenge_window: int,
    min_bond_wei: int,
    token: str | None,
    markets_file: Path | None,
    out: Path,
) -> None:
    """Deploy MockUSDC (unless --token), Settlement (+ vault, hatch), DisputeGame, post the bond,
    write the file."""
    if account is None:  # pragma: no cover - ape always resolves one on local networks
        account = accounts.test_accounts[0]
    chain_id = int(provider.chain_id)  # type: ignore[attr-defined]
    try:
        markets = DEFAULT_MARKETS if markets_file is None else load_markets(markets_file)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    params = DeployParams(
        challenge_window=challenge_window,
        min_bond=min_bond_wei,
        bond=min_bond_wei,
        token=token,
        markets=markets,
    )
    rpc_url = str(getattr(provider, "uri", "") or getattr(provider, "http_uri", ""))
    deployment = deploy_system(ApeDeployer(account, chain_id), params, rpc_url=rpc_url)
    deployment.save(out)
    click.echo(
        f"Settlement {deployment.settlement}, vault {deployment.vault}, "
        f"escape hatch {deployment.escape_hatch}, disputes {deployment.disputes}"
    )
    click.echo(f"collateral token {deployment.token}")
    click.echo(f"deployment file written to {out}")

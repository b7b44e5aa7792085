"""What every command needs: the deployment, a connection, a signer, the operator's inbox."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from isoperp.chain.client import ChainClient, connect
from isoperp.chain.contracts import System
from isoperp.chain.deployment import Deployment
from isoperp.devnet import DEVNET_CHAIN_ID, devnet_account
from isoperp.errors import ConfigError
from isoperp.service.inbox import Inbox


@dataclass
class CliState:
    """Options of the top-level group."""

    deployment_path: Path
    rpc_url: str | None
    verbose: int

    @property
    def state_dir(self) -> Path:
        return self.deployment_path.parent

    def deployment(self) -> Deployment:
        return Deployment.load(self.deployment_path)

    def system(self, signer: LocalAccount | None = None) -> System:
        deployment = self.deployment()
        w3 = connect(self.rpc_url or deployment.rpc_url)
        chain_id = int(w3.eth.chain_id)
        if chain_id != deployment.chain_id:
            raise ConfigError(
                f"the RPC serves chain {chain_id}, the deployment is on {deployment.chain_id}",
                code="wrong_chain",
            )
        if not w3.eth.get_code(w3.to_checksum_address(deployment.settlement)):
            raise ConfigError(
                f"no Settlement contract at {deployment.settlement}: the devnet was restarted? "
                "run `isoperp deploy` again",
                code="no_contract",
            )
        return System(ChainClient(w3, signer), deployment)

    def inbox(self) -> Inbox:
        return Inbox(self.state_dir / "inbox.sqlite")


def resolve_signer(account: int | None, key: str | None, *, default_index: int) -> LocalAccount:
    """--key, else $ISOPERP_PRIVATE_KEY, else devnet test account --account (or the default)."""
    key = key or os.environ.get("ISOPERP_PRIVATE_KEY")
    if key:
        try:
            acct: LocalAccount = Account.from_key(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "the private key is not a 32-byte hex string", code="bad_key"
            ) from exc
        return acct
    return devnet_account(default_index if account is None else account)


def require_devnet(system: System, what: str) -> None:
    if system.deployment.chain_id != DEVNET_CHAIN_ID:
        raise ConfigError(f"{what} is only available on the devnet (chain {DEVNET_CHAIN_ID})")

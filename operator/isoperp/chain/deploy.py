"""Deploys the system: collateral token (devnet MockUSDC unless one is given), Settlement (which
creates the CollateralVault), and the operator's bond.

Used by `isoperp deploy` and by `ape run deploy`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from isoperp.chain.deployment import Deployment
from isoperp.devnet import devnet_account
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_ORACLE
from isoperp.protocol.signing import Domain

logger = logging.getLogger(__name__)

DEVNET_CHALLENGE_WINDOW = 600
PRODUCTION_CHALLENGE_WINDOW = 7 * 24 * 3600
DEVNET_MIN_BOND = 10**18
DEVNET_FORCED_DEADLINE = 300
PRODUCTION_FORCED_DEADLINE = 7 * 24 * 3600
DEVNET_LIVENESS_TIMEOUT = 1800
PRODUCTION_LIVENESS_TIMEOUT = 14 * 24 * 3600
DEVNET_FORCED_REQUEST_FEE = 10**15  # 0.001 ether
DEVNET_ORACLE_ACCOUNT = 9  # anvil test account whose key signs devnet prices


@dataclass(frozen=True, slots=True)
class DeployParams:
    challenge_window: int = DEVNET_CHALLENGE_WINDOW
    min_bond: int = DEVNET_MIN_BOND
    bond: int = DEVNET_MIN_BOND
    token: str | None = None  # None: deploy MockUSDC
    forced_deadline: int = DEVNET_FORCED_DEADLINE
    liveness_timeout: int = DEVNET_LIVENESS_TIMEOUT
    forced_request_fee: int = DEVNET_FORCED_REQUEST_FEE
    oracle: str | None = None  # None: devnet account 9


class Deployer(Protocol):
    """How contracts get deployed and called: web3.py (CLI) or ape (scripts)."""

    @property
    def address(self) -> str: ...

    @property
    def chain_id(self) -> int: ...

    def deploy_contract(self, name: str, *args: object) -> tuple[str, int]:
        """Deploys ``name``; returns (address, block number)."""
        ...

    def call(self, address: str, name: str, fn: str, *args: object, value: int = 0) -> object: ...

    def read(self, address: str, name: str, fn: str, *args: object) -> object: ...


def genesis_state_root() -> bytes:
    """The genesis root: devnet markets, the insurance account and the empty exchange (the domain,
    the oracle and the fee recipient do not enter it)."""
    ledger = Ledger.genesis(
        DEVNET_MARKETS, Domain(0, "0x" + "00" * 20), DEVNET_ORACLE, fee_recipient=DEVNET_ORACLE
    )
    return ledger.state_root


def deploy_system(
    deployer: Deployer, params: DeployParams, *, rpc_url: str, operator: str | None = None
) -> Deployment:
    """Deploys everything and returns the deployment (not yet saved)."""
    operator = operator or deployer.address
    token = params.token
    if token is None:
        token, _ = deployer.deploy_contract("MockUSDC")
        logger.info("MockUSDC deployed at %s", token)
    oracle = params.oracle or devnet_account(DEVNET_ORACLE_ACCOUNT).address
    root = genesis_state_root()
    settlement, block = deployer.deploy_contract(
        "Settlement",
        token,
        operator,
        oracle,
        params.min_bond,
        params.challenge_window,
        params.forced_deadline,
        params.liveness_timeout,
        params.forced_request_fee,
        root,
    )
    vault = str(deployer.read(settlement, "Settlement", "vault"))
    logger.info("Settlement at %s, vault at %s", settlement, vault)
    if params.bond and operator == deployer.address:
        deployer.call(settlement, "Settlement", "postBond", value=params.bond)
        logger.info("operator bond posted: %s wei", params.bond)
    return Deployment(
        chain_id=deployer.chain_id,
        rpc_url=rpc_url,
        settlement=settlement,
        vault=vault,
        token=token,
        operator=operator,
        deploy_block=block,
        challenge_window=params.challenge_window,
        min_bond=params.min_bond,
        genesis_state_root="0x" + root.hex(),
        oracle=oracle,
        forced_deadline=params.forced_deadline,
        liveness_timeout=params.liveness_timeout,
        forced_request_fee=params.forced_request_fee,
    )

"""Deploys the system: collateral token (devnet MockUSDC unless one is given), Settlement (which
creates the CollateralVault and the EscapeHatch, and publishes the genesis markets,
``isoperp.chain.genesis``), the DisputeGame (the Settlement's ``disputes``), and the operator's
bond.

The Settlement's immutable ``disputes`` must name the DisputeGame, which is deployed right after it
and takes the Settlement's address: its address is precomputed from the deployer's nonce
(``create_address``), and the DisputeGame's constructor checks that the Settlement names it.

Used by `isoperp deploy` and by `ape run deploy`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from eth_utils import to_checksum_address

from isoperp.chain.deployment import Deployment
from isoperp.chain.genesis import DEFAULT_MARKETS, constructor_args, genesis_state_root
from isoperp.devnet import devnet_account
from isoperp.errors import ChainError
from isoperp.hashing import keccak256
from isoperp.ledger.model import Market

logger = logging.getLogger(__name__)

DEVNET_CHALLENGE_WINDOW = 600
PRODUCTION_CHALLENGE_WINDOW = 7 * 24 * 3600
DEVNET_MIN_BOND = 10**18
DEVNET_FORCED_DEADLINE = 300
PRODUCTION_FORCED_DEADLINE = 5 * 24 * 3600  # below the challenge window (spec D7)
DEVNET_CLAIM_WINDOW = 600
PRODUCTION_CLAIM_WINDOW = 14 * 24 * 3600
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
    markets: tuple[Market, ...] = DEFAULT_MARKETS  # genesis markets (a market file, or devnet)
    claim_window: int = DEVNET_CLAIM_WINDOW


class Deployer(Protocol):
    """How contracts get deployed and called: web3.py (CLI) or ape (scripts)."""

    @property
    def address(self) -> str: ...

    @property
    def chain_id(self) -> int: ...

    def next_nonce(self) -> int:
        """The nonce of the deployer's next transaction."""
        ...

    def deploy_contract(self, name: str, *args: object) -> tuple[str, int]:
        """Deploys ``name``; returns (address, block number)."""
        ...

    def call(self, address: str, name: str, fn: str, *args: object, value: int = 0) -> object: ...

    def read(self, address: str, name: str, fn: str, *args: object) -> object: ...


def _rlp_uint(value: int) -> bytes:
    """RLP encoding of a non-negative integer (a nonce)."""
    if value == 0:
        return b"\x80"
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return raw if len(raw) == 1 and raw[0] < 0x80 else bytes([0x80 + len(raw)]) + raw


def create_address(sender: str, nonce: int) -> str:
    """The address a CREATE by ``sender`` at ``nonce`` deploys to:
    ``keccak256(rlp([sender, nonce]))[12:]``, checksummed."""
    if nonce < 0 or nonce >= 1 << 64:
        raise ValueError(f"nonce out of range: {nonce}")
    payload = b"\x94" + bytes.fromhex(sender.removeprefix("0x")) + _rlp_uint(nonce)
    # The list payload is at most 1 + 20 + 9 bytes, below RLP's 56-byte short-list limit.
    encoded = bytes([0xC0 + len(payload)]) + payload
    return to_checksum_address(keccak256(encoded)[12:])


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
    root = genesis_state_root(params.markets)
    leaves, symbols = constructor_args(params.markets)
    # The Settlement takes this nonce, the DisputeGame the next one.
    disputes = create_address(deployer.address, deployer.next_nonce() + 1)
    settlement, block = deployer.deploy_contract(
        "Settlement",
        token,
        operator,
        oracle,
        disputes,
        params.min_bond,
        (
            params.challenge_window,
            params.forced_deadline,
            params.liveness_timeout,
            params.claim_window,
        ),  # ISettlement.Periods
        params.forced_request_fee,
        root,
        leaves,
        symbols,
    )
    game, _ = deployer.deploy_contract("DisputeGame", settlement, [], [])  # no record verifiers yet
    if to_checksum_address(game) != disputes:  # the constructor's check makes this unreachable
        raise ChainError(f"DisputeGame deployed at {game}, the Settlement names {disputes}")
    vault = str(deployer.read(settlement, "Settlement", "vault"))
    hatch = str(deployer.read(settlement, "Settlement", "escapeHatch"))
    logger.info(
        "Settlement at %s, vault at %s, escape hatch at %s, disputes at %s; genesis: %d markets, "
        "root 0x%s",
        settlement, vault, hatch, disputes, len(params.markets), root.hex(),
    )
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
        escape_hatch=hatch,
        claim_window=params.claim_window,
        disputes=disputes,
    )

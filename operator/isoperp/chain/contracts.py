"""Typed access to the deployed contracts of one deployment."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from web3.contract import Contract

from isoperp.chain.artifacts import artifact
from isoperp.chain.client import ChainClient
from isoperp.chain.deployment import Deployment
from isoperp.protocol.signing import Domain


@dataclass
class System:
    """The Settlement, CollateralVault, EscapeHatch, DisputeGame and token contracts of a
    deployment, bound to a client."""

    client: ChainClient
    deployment: Deployment

    @cached_property
    def settlement(self) -> Contract:
        return self.client.contract(self.deployment.settlement, artifact("Settlement").abi)

    @cached_property
    def vault(self) -> Contract:
        return self.client.contract(self.deployment.vault, artifact("CollateralVault").abi)

    @cached_property
    def hatch(self) -> Contract:
        address = self.deployment.escape_hatch or str(
            self.settlement.functions.escapeHatch().call()
        )
        return self.client.contract(address, artifact("EscapeHatch").abi)

    @cached_property
    def disputes(self) -> Contract:
        """The DisputeGame: the only address the Settlement lets invalidate checkpoints."""
        address = self.deployment.disputes or str(self.settlement.functions.disputes().call())
        return self.client.contract(address, artifact("DisputeGame").abi)

    @cached_property
    def token(self) -> Contract:
        return self.client.contract(self.deployment.token, artifact("MockUSDC").abi)

    @property
    def domain(self) -> Domain:
        return Domain(self.deployment.chain_id, self.deployment.settlement)

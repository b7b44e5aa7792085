"""Every contract the system deploys fits EIP-170 (24,576 bytes of runtime code), read from the
chain after a real deployment (the Settlement creates the vault and the escape hatch; the deployer
then deploys the DisputeGame), and the Settlement's and DisputeGame's creation code fits EIP-3860
(49,152 bytes)."""

from __future__ import annotations

from typing import Any

EIP170 = 24_576
EIP3860 = 49_152


def test_deployed_runtime_sizes_within_eip170_succeeds(
    deploy_game: Any, usdc: Any, chain: Any
) -> None:
    settlement, game = deploy_game(usdc)
    addresses = {
        "Settlement": settlement.address,
        "CollateralVault": settlement.vault(),
        "EscapeHatch": settlement.escapeHatch(),
        "DisputeGame": game.address,
    }
    sizes = {name: len(chain.provider.get_code(a)) for name, a in addresses.items()}
    for name, size in sizes.items():
        assert 0 < size <= EIP170, f"{name}: {size} bytes of runtime code (EIP-170: {EIP170})"


def test_initcode_within_eip3860_succeeds(project: Any) -> None:
    for name in ("Settlement", "DisputeGame"):
        initcode = bytes(getattr(project, name).contract_type.deployment_bytecode.to_bytes())
        assert 0 < len(initcode) <= EIP3860, f"{name} initcode {len(initcode)} bytes"

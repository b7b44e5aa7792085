"""Every drill (`isoperp drill NAME`) on its own fresh devnet: each must pass, and a failing
property must fail the drill (checked by breaking one on purpose)."""

import socket

import pytest

from isoperp.drills import DRILLS, run_drill
from isoperp.drills.base import DrillContext


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name", sorted(DRILLS))
def test_drill_passes(name):
    scenario, _ = DRILLS[name]
    result = run_drill(name, scenario, port=free_port())
    assert result.passed, f"{name}: {result.error}\n" + "\n".join(t for _, t in result.timeline)


def test_broken_property_fails_the_drill():
    def broken(ctx: DrillContext) -> None:
        ctx.deposit(1, 10)
        ctx.cycle()
        ctx.check(ctx.vault_balance() == 0, "the vault is empty")  # false: it holds 10 USDC

    result = run_drill("broken", broken, port=free_port())
    assert not result.passed and "the vault is empty" in (result.error or "")

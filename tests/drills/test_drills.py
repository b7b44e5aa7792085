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


def test_censored_deposit_refunds_in_full_and_loses_nothing():
    scenario, _ = DRILLS["censored-deposit"]
    result = run_drill("censored-deposit", scenario, port=free_port())
    assert result.passed, result.error
    assert result.facts["payouts"] == {3: 700 * 10**6, 1: 5_000 * 10**6, 2: 3_000 * 10**6}
    lines = [t for _, t in result.timeline]
    assert any("EscapeHatch_DepositNotOverdue" in t for t in lines)
    assert "ok: the freeze reason is 3" in "\n".join(lines)


def test_escape_claim_window_pays_the_registered_haircut():
    scenario, _ = DRILLS["escape-claim-window"]
    result = run_drill("escape-claim-window", scenario, port=free_port())
    assert result.passed, result.error
    payouts = result.facts["payouts"]
    assert isinstance(payouts, dict) and sorted(payouts) == [1, 2, 3]
    # Pool 31,000 USDC against 31,398.8 registered: every claim is cut, none to zero.
    assert 0 < sum(payouts.values()) <= 31_000 * 10**6
    assert result.facts["late_credit"] == 0  # the registered claims took the whole pool

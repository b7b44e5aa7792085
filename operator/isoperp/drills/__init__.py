"""Drills (`isoperp drill NAME`): fresh devnet scenarios that fail if a safety property breaks."""

from __future__ import annotations

from isoperp.drills import (
    bad_debt,
    censored_deposit,
    censorship,
    double_escape,
    escape_claim_window,
    flash_crash,
    operator_offline,
    stale_proof,
    unincluded_deposit,
)
from isoperp.drills.base import DrillContext, DrillResult, Scenario, run_drill

DRILLS: dict[str, tuple[Scenario, str]] = {
    "operator-offline": (
        operator_offline.run,
        "operator stops; forced request expires; freeze; everyone escapes with exact equity",
    ),
    "censorship": (
        censorship.run,
        "skipped forced request: checkpoints rejected at the deadline, "
        "freeze exactly at the deadline",
    ),
    "stale-proof": (stale_proof.run, "pending root, older root, tampered proof: all refused"),
    "double-escape": (
        double_escape.run,
        "same leaf twice, aliased index, bad proof length, internal node as leaf: all refused",
    ),
    "bad-debt": (bad_debt.run, "bad-debt position pays 0; haircut; order-independent payouts"),
    "unincluded-deposit": (unincluded_deposit.run, "unincluded deposits refunded once, only they"),
    "censored-deposit": (
        censored_deposit.run,
        "a censored deposit: freeze (reason 3) exactly at its deadline, full refund, nothing lost",
    ),
    "escape-claim-window": (
        escape_claim_window.run,
        "haircut from registered claims, same payouts in any order, late claim gets the residual",
    ),
    "flash-crash": (flash_crash.run, "-30% tick: losses isolated, bystanders untouched"),
}

__all__ = ["DRILLS", "DrillContext", "DrillResult", "run_drill"]

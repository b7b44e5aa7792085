"""Gas snapshot of the user-facing operations, compared with the committed gas_snapshot.json.

A measurement more than 2% above its snapshot fails (a regression); one more than 2% below asks for
the snapshot to be refreshed. Refresh: UPDATE_GAS_SNAPSHOT=1 ape test tests/contracts/test_gas.py
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("gas_snapshot.json")
TOLERANCE = 0.02
USDC = 10**6


def _check(name: str, gas: int) -> None:
    snapshot = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
    if os.environ.get("UPDATE_GAS_SNAPSHOT"):
        snapshot[name] = gas
        SNAPSHOT.write_text(json.dumps(dict(sorted(snapshot.items())), indent=2) + "\n")
        return
    expected = snapshot.get(name)
    assert expected is not None, f"{name} missing from {SNAPSHOT.name}: {gas}"
    assert gas <= expected * (1 + TOLERANCE), f"{name}: {gas} gas, snapshot {expected} (regression)"
    assert gas >= expected * (1 - TOLERANCE), f"{name}: {gas} gas, snapshot {expected} (refresh it)"


def test_deposit_gas_succeeds(vault: Any, usdc: Any, alice: Any) -> None:
    usdc.mint(alice, 200 * USDC, sender=alice)
    usdc.approve(vault, 200 * USDC, sender=alice)
    first = vault.deposit(alice, 100 * USDC, sender=alice)
    second = vault.deposit(alice, 100 * USDC, sender=alice)
    _check("deposit_first", first.gas_used)
    _check("deposit", second.gas_used)


def test_postCheckpoint_gas_succeeds(checkpoints: Any, consts: Any) -> None:
    _, empty = checkpoints.post_next(consts.EMPTY_BATCH)
    batch = bytes([1]) + random.Random(7).randbytes(10 * 1024 - 1)  # incompressible: worst case
    _, ten_kb = checkpoints.post_next(batch)
    _check("postCheckpoint_empty_batch", empty.gas_used)
    _check("postCheckpoint_10kb_random_batch", ten_kb.gas_used)


def test_claimWithdrawal_gas_succeeds(
    checkpoints: Any, bonded: Any, funded_vault: Any, alice: Any, bob: Any
) -> None:
    leaves = [(0, alice.address, 10 * USDC), (1, bob.address, 20 * USDC)]
    seq, w = checkpoints.post_withdrawals(leaves)
    checkpoints.finalize()
    receipts = [
        bonded.claimWithdrawal(seq, i, *w.leaves[i], w.proof(i), sender=bob) for i in range(2)
    ]
    # Both recipients already hold USDC (non-zero balance slot); the second claim shares the bitmap
    # word the first one created.
    _check("claimWithdrawal_first_in_checkpoint", receipts[0].gas_used)
    _check("claimWithdrawal", receipts[1].gas_used)

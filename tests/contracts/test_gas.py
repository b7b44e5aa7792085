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

from isoperp.ledger.model import Account, Exchange, Position
from isoperp.protocol import leaves as L

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
    def deposit() -> Any:
        # Each deposit spends the whole balance and allowance (their slots are cleared: refunds).
        usdc.mint(alice, 100 * USDC, sender=alice)
        usdc.approve(vault, 100 * USDC, sender=alice)
        return vault.deposit(alice, 100 * USDC, sender=alice)

    first, second, third = deposit(), deposit(), deposit()
    # The cumulative amounts are packed two per word: an odd index updates the word its
    # predecessor created ("deposit"), an even index creates one ("deposit_even_index").
    _check("deposit_first", first.gas_used)
    _check("deposit", second.gas_used)
    _check("deposit_even_index", third.gas_used)


def test_postCheckpoint_gas_succeeds(checkpoints: Any, consts: Any) -> None:
    _, empty = checkpoints.post_next(consts.EMPTY_BATCH)
    # incompressible: worst case (the data's own header: version 2 and a record count)
    batch = bytes([2]) + (300).to_bytes(4, "big") + random.Random(7).randbytes(10 * 1024 - 5)
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


# ---------------------------------------------------------------- escape hatch


def test_requestForced_gas_succeeds(
    bonded: Any, hatch: Any, alice: Any, bob: Any, consts: Any
) -> None:
    fee = consts.FORCED_FEE
    first = hatch.requestForcedWithdrawal(1, 5 * USDC, sender=alice, value=fee)
    second = hatch.requestForcedWithdrawal(2, 5 * USDC, sender=bob, value=fee)
    exit_ = hatch.requestForcedExit(2, 1, sender=bob, value=fee)
    _check("requestForcedWithdrawal_first", first.gas_used)
    _check("requestForcedWithdrawal", second.gas_used)
    _check("requestForcedExit", exit_.gas_used)


def test_escape_gas_succeeds(
    escape_world: Any,
    consts: Any,
    alice: Any,
    bob: Any,
    oracle: Any,
    stranger: Any,
    chain: Any,
) -> None:
    m0 = consts.make_market(0, 650_000)
    m1 = consts.make_market(1, 350_000, funding=2_500_000, exp=-1)
    a0 = Account(0, alice.address, 300_000 * USDC, 3)
    a1 = Account(1, bob.address, 100_000 * USDC, 1)
    a2 = Account(2, stranger.address, 100_000 * USDC, 0)
    a3 = Account(3, oracle.address, 100_000 * USDC, 0)
    positions = [
        Position(0, 0, 100_000, -50_000 * USDC, 60_000 * USDC, 0),
        Position(0, 1, -30_001, 1_500 * USDC, -1_050 * USDC, 1_000_000),
        Position(1, 0, 7, 1_234_567, 0, 0),
        Position(1, 1, 9, 7_654_321, 0, 0),
        Position(3, 0, -11, 9_000_000, 0, 0),
        Position(3, 1, 13, 1_000_000, 0, 0),
    ]
    tree = consts.StateTree([m0, m1, a0, a1, a2, a3, *positions])
    w = escape_world(
        tree,
        [(alice, 600_000 * USDC), (bob, 400_000 * USDC), (bob, 1 * USDC)],
        deposit_cursor=2,
        prove_markets=False,
        claim_window=consts.CLAIM_WINDOW,
    )
    freeze = w.freeze
    prove = w.hatch.proveMarket(consts.leaf_fields(m0), tree.proof(m0), sender=stranger)
    w.hatch.proveMarket(consts.leaf_fields(m1), tree.proof(m1), sender=stranger)

    def account(a: Account) -> tuple[Any, Any]:
        return consts.leaf_fields(a), tree.proof(a)

    # Escaped bits live in one word per pair of accounts (0-1, 2-3) and credits in one slot per
    # owner. Account 0 creates word 0; account 1 (account + 1 position) and account 3 (account + 2
    # positions, after account 2 created word 1) then pay the same storage costs, so their
    # difference is the cost of one more position in a call.
    escape_account = w.hatch.escape(*account(a0), [], sender=stranger)
    one = w.hatch.escape(*account(a1), [tree.witness(positions[2])], sender=bob)
    later = w.hatch.escape(*account(a1), [tree.witness(positions[3])], sender=bob)
    w.hatch.escape(*account(a2), [], sender=stranger)
    two = w.hatch.escape(*account(a3), [tree.witness(p) for p in positions[4:6]], sender=stranger)
    logs = list(w.vault.Deposited.range(0, chain.blocks.head.number + 1))
    refund = w.hatch.refundDeposit(
        logs[2].index, logs[2].owner, logs[2].amount, logs[2].timestamp, sender=stranger
    )
    consts.end_window(w.hatch, chain)
    withdraw = w.hatch.withdrawEscaped(sender=alice)
    _check("freeze", freeze.gas_used)
    _check("proveMarket", prove.gas_used)
    _check("escape_account", escape_account.gas_used)
    _check("escape_account_1_position", one.gas_used)
    _check("escape_account_2_positions", two.gas_used)
    _check("escape_1_position_account_escaped_before", later.gas_used)
    _check("refundDeposit", refund.gas_used)
    _check("withdrawEscaped", withdraw.gas_used)
    # Per position: one more position in a call, and one position on its own (with the account
    # proof that names the owner): both far below the 150k target.
    assert two.gas_used - one.gas_used < 50_000
    assert later.gas_used < 120_000


def test_freezeForDeposit_gas_succeeds(
    deploy_settlement: Any, usdc: Any, consts: Any, alice: Any, bob: Any, stranger: Any, chain: Any
) -> None:
    # Checkpoint 1 (final) includes alice's deposit; checkpoint 2 leaves bob's out until it is
    # overdue. The freeze reads the queue entry at the cursor and fixes the pool.
    _, vault, cps = deploy_settlement(usdc)
    consts.fund_and_deposit(usdc, vault, alice, 600 * USDC)
    cps.post_next(depositCursor=1)
    cps.finalize()
    consts.fund_and_deposit(usdc, vault, bob, 5 * USDC)
    cps.post_next(depositCursor=1)
    log = list(vault.Deposited.range(0, chain.blocks.head.number + 1))[1]
    chain.pending_timestamp = log.timestamp + consts.FORCED_DEADLINE
    receipt = cps.hatch.freezeForDeposit(log.owner, log.amount, log.timestamp, sender=stranger)
    _check("freezeForDeposit", receipt.gas_used)


def test_claim_window_end_gas_succeeds(
    escape_world: Any, consts: Any, alice: Any, bob: Any, operator: Any, stranger: Any, chain: Any
) -> None:
    # Pool 500: alice (300) registers, the window ends, bob (150) escapes late, alice withdraws to
    # a recipient, the operator sweeps the residual (50).
    a0 = Account(0, alice.address, 300 * USDC, 0)
    a1 = Account(1, bob.address, 150 * USDC, 0)
    tree = consts.StateTree([consts.make_market(0, 1_000), a0, a1])
    w = escape_world(tree, [(alice, 500 * USDC)], claim_window=consts.CLAIM_WINDOW)
    w.hatch.escape(consts.leaf_fields(a0), tree.proof(a0), [], sender=alice)
    consts.end_window(w.hatch, chain)
    late = w.hatch.escape(consts.leaf_fields(a1), tree.proof(a1), [], sender=bob)
    to = w.hatch.withdrawEscapedTo(stranger, sender=alice)
    chain.pending_timestamp = w.hatch.frozenAt() + 2 * consts.CLAIM_WINDOW
    sweep = w.hatch.sweepResidual(sender=operator)
    assert w.hatch.swept()
    _check("escape_account_late", late.gas_used)
    _check("withdrawEscapedTo", to.gas_used)
    _check("sweepResidual", sweep.gas_used)


# ---------------------------------------------------------------- disputes


def test_invalidateFrom_gas_succeeds(checkpoints: Any, disputer: Any, operator: Any) -> None:
    """invalidateFrom with checkpoints after it (O(1): the count does not matter, see
    test_settlement_invalidate), the re-post into the invalidated slot, and withdrawBond once every
    checkpoint is final."""
    checkpoints.settlement.postBond(sender=operator, value=10**18)
    for _ in range(3):
        checkpoints.post_next()
    invalidate = checkpoints.settlement.invalidateFrom(2, sender=disputer)
    # Every stale word changes (another root, a later time): a deterministic measurement.
    checkpoints.chain.pending_timestamp += 5
    checkpoints.chain.mine()
    _, repost = checkpoints.post_next(
        stateRoot=b"\x07" * 32, timestamp=checkpoints.chain.blocks.head.timestamp
    )
    checkpoints.finalize()
    withdraw = checkpoints.settlement.withdrawBond(10**18, sender=operator)
    _check("invalidateFrom", invalidate.gas_used)
    _check("postCheckpoint_empty_batch_after_invalidation", repost.gas_used)
    _check("withdrawBond", withdraw.gas_used)


def test_proveHeaderMismatch_gas_succeeds(
    deploy_game: Any,
    project: Any,
    usdc: Any,
    operator: Any,
    stranger: Any,
    chain: Any,
    consts: Any,
) -> None:
    """A header whose withdrawalTotal (the last field compared) differs from its state's
    exchange leaf: the proof, every comparison, and the Settlement's invalidation."""
    settlement, game = deploy_game(usdc)
    settlement.postBond(sender=operator, value=consts.MIN_BOND)
    vault = project.CollateralVault.at(settlement.vault())
    cps = consts.Checkpoints(settlement, vault, operator, chain)
    exchange = Exchange(0, 0, 0, 0, 0, consts.Withdrawals([]).root, 0, 0)
    tree = consts.StateTree([consts.make_market(0, 1_000), exchange])
    cps.post_next(
        stateRoot=tree.root, withdrawalsRoot=exchange.withdrawals_root, withdrawalTotal=1
    )
    leaf = L.solidity_struct(exchange)
    receipt = game.proveHeaderMismatch(1, leaf, tree.proof(exchange), sender=stranger)
    assert settlement.latestSeq() == 0
    _check("proveHeaderMismatch", receipt.gas_used)

"""Deposit -> checkpoint -> withdrawal -> finality -> claim on anvil; what survives a restart."""

import contextlib
from itertools import pairwise

from chain_fixtures import signed_withdraw, two_traders

from isoperp.batch.builder import deposit_prefix_step
from isoperp.chain.l1 import read_checkpoints, read_deposits, rebuild
from isoperp.demo import USDC, _deposit, run_story
from isoperp.devnet import devnet_account
from isoperp.ledger.transitions import Deposit
from isoperp.service.operator import OperatorService


def test_story_deposit_checkpoint_finality_claim_succeeds(system, inbox, narrator):
    """The issue's end-to-end story, every step checked inside run_story (it raises otherwise)."""
    summary = run_story(system, inbox, narrator)
    assert summary.checkpoints == 2
    assert summary.claimed == 2_500 * USDC
    assert summary.vault_balance == summary.liabilities == 12_500 * USDC
    assert any("Settlement_NotFinalized" in line for line in narrator.oks)
    assert any("Settlement_AlreadyClaimed" in line for line in narrator.oks)


def test_restart_rebuilds_identical_state_from_l1(system, inbox, narrator):
    run_story(system, inbox, narrator)
    first = OperatorService(system, inbox)
    first.sync()
    ledger, checkpoints = rebuild(system)
    assert ledger.state_root == first.ledger.state_root == checkpoints[-1].header.state_root
    # The checkpoints chain by hash, exactly as the contract stored them.
    for prev, cp in pairwise(checkpoints):
        assert cp.header.prev_hash == prev.header.hash
    for cp in checkpoints:
        stored = system.settlement.functions.getCheckpoint(cp.header.seq).call()
        assert bytes(stored[0]) == cp.header.hash
    # Nothing new to do after a restart: no double post.
    assert first.run_once().posted is None


def test_deposit_prefix_hash_matches_vault(system):
    for i, amount in enumerate((7 * USDC, 1, 123_456_789)):
        _deposit(system, devnet_account(1 + i % 2), amount)
    prefix = b"\x00" * 32
    for d in read_deposits(system):
        prefix = deposit_prefix_step(prefix, Deposit(d.index, 0, d.owner, d.amount, d.timestamp))
        assert prefix == d.prefix_hash
        assert bytes(system.vault.functions.depositPrefixHash(d.index + 1).call()) == prefix


def test_crash_after_post_before_marking_is_reconciled(system, inbox):
    alice = devnet_account(1)
    _deposit(system, alice, 100 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    inbox.submit(signed_withdraw(system, alice, 0, 40 * USDC, 0))

    def crash(_changes, **_):
        raise SystemExit("killed between the receipt and the journal update")

    inbox.update, real = crash, inbox.update
    with contextlib.suppress(SystemExit):
        service.run_once()
    inbox.update = real
    assert [e.status for e in inbox.all()] == ["pending"]
    restarted = OperatorService(system, inbox)
    report = restarted.run_once()
    assert report.posted is None, "the withdrawal must not be posted twice"
    (entry,) = inbox.all()
    assert (entry.status, entry.seq, entry.slot) == ("included", 2, 0)
    assert len(read_checkpoints(system)) == 2


def test_rejected_request_is_recorded_and_changes_nothing(system, inbox):
    alice = devnet_account(1)
    _deposit(system, alice, 10 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    root = service.ledger.state_root
    inbox.submit(signed_withdraw(system, alice, 0, 11 * USDC, 0))
    report = service.run_once()
    assert report.posted is None
    assert report.rejected and report.rejected[0][1] == "insufficient_collateral"
    (entry,) = inbox.all()
    assert (entry.status, entry.reason) == ("rejected", "insufficient_collateral")
    assert service.ledger.state_root == root


def test_forged_withdrawal_signature_rejected(system, inbox):
    alice, mallory = devnet_account(1), devnet_account(3)
    _deposit(system, alice, 10 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    forged = signed_withdraw(system, mallory, 0, 5 * USDC, 0)  # mallory signs for alice's account
    inbox.submit(forged)
    report = service.run_once()
    assert report.posted is None
    assert report.rejected[0][1] == "bad_signature"


def test_crash_after_posting_fills_reconciles_orders(system, inbox):
    """Orders whose fills reached L1 before a crash are marked as L1 has them on restart:
    the resting maker stays open with its filled size, the taker is filled, nothing reposted."""
    from isoperp.ledger.transitions import PlaceOrder
    from isoperp.protocol.constants import TIF_IOC
    from isoperp.protocol.signing import sign_request

    service, alice, bob = two_traders(system, inbox)
    sell = PlaceOrder(0, 0, False, 600_000, 10_000, 0, 0, 1, 0, b"")
    buy = PlaceOrder(1, 0, True, 600_000, 4_000, TIF_IOC, 0, 1, 0, b"")
    inbox.submit(sign_request(bytes(alice.key), system.domain, sell))
    inbox.submit(sign_request(bytes(bob.key), system.domain, buy))

    def crash(_changes, **_):
        raise SystemExit("killed between the receipt and the journal update")

    inbox.update, real = crash, inbox.update
    with contextlib.suppress(SystemExit):
        service.run_once()
    inbox.update = real
    assert len(read_checkpoints(system)) == 3
    restarted = OperatorService(system, inbox)
    assert restarted.run_once().posted is None, "the fills must not be posted twice"
    orders = {e.request.account_id: e for e in inbox.all() if isinstance(e.request, PlaceOrder)}
    assert (orders[0].status, orders[0].filled) == ("open", 4_000)
    assert (orders[1].status, orders[1].filled) == ("filled", 4_000)
    assert restarted.ledger.position(1, 0).size == 4_000

"""The batch cadence "every N fills or T seconds": below N fills a cycle defers (nothing posted,
nothing journaled, rebuilt next time); N fills, a forced request or a due cycle post."""

from chain_fixtures import signed_withdraw, two_traders

from isoperp.chain.client import ChainClient
from isoperp.demo import USDC
from isoperp.ledger.transitions import PlaceOrder
from isoperp.protocol.constants import TIF_IOC
from isoperp.protocol.signing import sign_request

PRICE = 600_000


def cross(system, inbox, alice, bob, nonce):
    sell = PlaceOrder(0, 0, False, PRICE, 1_000, TIF_IOC, 0, nonce, 0, b"")
    buy = PlaceOrder(1, 0, True, PRICE, 1_000, 0, 0, nonce, 0, b"")
    inbox.submit(sign_request(bytes(bob.key), system.domain, buy))
    inbox.submit(sign_request(bytes(alice.key), system.domain, sell))


def test_below_n_fills_the_cycle_defers_and_posts_nothing(system, inbox):
    service, alice, bob = two_traders(system, inbox)
    seq = service.checkpoints[-1].header.seq
    cross(system, inbox, alice, bob, 1)
    report = service.run_once(min_fills=2)
    assert report.deferred and report.posted is None and report.fills == 1
    assert service.checkpoints[-1].header.seq == seq
    assert {e.status for e in inbox.pending()} == {"pending"} and len(inbox.pending()) == 2
    cross(system, inbox, alice, bob, 2)
    report = service.run_once(min_fills=2)
    assert not report.deferred and report.posted is not None and report.fills == 2
    assert inbox.pending() == []
    assert service.ledger.position(1, 0).size == 2_000


def test_a_due_cycle_posts_whatever_it_has(system, inbox):
    service, alice, _ = two_traders(system, inbox)
    inbox.submit(signed_withdraw(system, alice, 0, 5 * USDC, 1))
    assert service.run_once(min_fills=10).deferred  # a withdrawal alone waits for T
    report = service.run_once()  # T elapsed: the cycle is due
    assert report.posted is not None and report.requests == 1 and report.fills == 0


def test_a_forced_request_is_posted_without_waiting_for_fills(system, inbox):
    service, alice, bob = two_traders(system, inbox)
    cross(system, inbox, alice, bob, 1)
    fee = system.hatch.functions.forcedRequestFee().call()
    fn = system.hatch.functions.requestForcedWithdrawal(0, 1 * USDC)
    ChainClient(system.client.w3, alice).transact(fn, value=fee)
    report = service.run_once(min_fills=5)
    assert report.posted is not None and report.forced == 1 and report.fills == 1

"""Withdrawals inside the state, on anvil: forced requests before deposits in every batch,
deposits that cannot be credited refunded instead of stalling the queue, fees collected for the
operator, and every payout claimed through the global withdrawals tree once it is final."""

import dataclasses

from chain_fixtures import signed_withdraw, two_traders
from test_cadence import cross

from isoperp.chain.client import ChainClient
from isoperp.chain.l1 import rebuild
from isoperp.demo import USDC, _deposit, expect_revert
from isoperp.devnet import advance_time, devnet_account
from isoperp.ledger.transitions import Deposit, DepositRejected, FeeCollect, ForcedWithdraw
from isoperp.protocol.batch import HEADER_BYTES, ROOT_BYTES, encode_record
from isoperp.protocol.constants import INSURANCE_ACCOUNT, SYSTEM_WITHDRAWAL_ACCOUNT
from isoperp.protocol.header import WithdrawalLeaf
from isoperp.service import claims
from isoperp.service.operator import OperatorService


def _balance(system, who):
    return int(system.token.functions.balanceOf(who).call())


def _finalize(system):
    advance_time(system.deployment.rpc_url, system.deployment.challenge_window + 1)


def _claim_all(system, service, recipient):
    """Claims every final, unclaimed withdrawal to ``recipient``; returns what was paid."""
    paid = 0
    for w in claims.withdrawal_statuses(system, service.checkpoints, recipient=recipient):
        if w.finalized and not w.claimed:
            claims.claim(system, w)
            paid += w.leaf.amount
    return paid


def test_forced_request_is_served_before_a_deposit_backlog_that_fills_the_batch(
    system, inbox, monkeypatch
):
    alice = devnet_account(1)
    _deposit(system, alice, 100 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()  # account 0
    backlog = [devnet_account(i) for i in (2, 3, 4, 5)]
    for who in backlog:
        _deposit(system, who, 1 * USDC)
    fee = system.hatch.functions.forcedRequestFee().call()
    fn = system.hatch.functions.requestForcedWithdrawal(0, 40 * USDC)
    ChainClient(system.client.w3, alice).transact(fn, value=fee)
    # room for three 57-byte records (each followed by its 32-byte state root): the forced
    # request and two of the four deposits
    forced_bytes = len(encode_record(ForcedWithdraw(0, 0, alice.address, 1, 1)))
    deposit_bytes = len(encode_record(Deposit(0, 0, alice.address, 1, 1)))
    monkeypatch.setattr(
        "isoperp.batch.builder.MAX_BATCH_BYTES",
        HEADER_BYTES + forced_bytes + 2 * deposit_bytes + 3 * ROOT_BYTES,
    )
    report = service.run_once()
    assert (report.forced, report.deposits) == (1, 2)
    posted = report.posted.transitions
    assert isinstance(posted[0], ForcedWithdraw)
    assert [type(t) for t in posted[1:]] == [Deposit, Deposit]
    assert report.posted.withdrawals == (WithdrawalLeaf(0, alice.address, 40 * USDC),)
    assert service.ledger.exchange.forced_cursor == 1
    assert service.ledger.exchange.deposit_cursor == 3
    report = service.run_once()  # the rest of the backlog
    assert (report.forced, report.deposits) == (0, 2)
    assert service.ledger.exchange.deposit_cursor == 5


def test_uncreditable_deposit_is_refunded_and_the_refund_claimed(system, inbox):
    service = OperatorService(system, inbox)
    service.sync()
    # Account ids run out only after 2^24 - 1 accounts: put the operator's counter there (its
    # checkpoints replay on its own ledger; a replay from genesis would not reproduce them).
    full = dataclasses.replace(service.ledger.exchange, next_account_id=INSURANCE_ACCOUNT)
    service.ledger._put_exchange(full)
    late = devnet_account(4)
    before = _balance(system, late.address)
    _deposit(system, late, 25 * USDC)
    _deposit(system, devnet_account(5), 5 * USDC)  # behind it in the queue: not stalled
    report = service.run_once()
    assert (report.deposits, report.deposits_rejected) == (2, 2)
    assert [type(t) for t in report.posted.transitions] == [DepositRejected, DepositRejected]
    refund = WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, late.address, 25 * USDC)
    assert report.posted.withdrawals[0] == refund
    header = report.posted.header
    assert (header.deposit_cursor, header.withdrawal_count) == (2, 2)
    assert header.withdrawal_total == 30 * USDC
    assert service.ledger.account_id_of(late.address) is None
    _finalize(system)
    assert _claim_all(system, service, late.address) == 25 * USDC
    assert _balance(system, late.address) == before + 25 * USDC  # minted, deposited, refunded
    assert system.settlement.functions.isClaimed(0).call()


def test_fees_over_the_threshold_are_collected_and_the_operator_claims_them(system, inbox):
    service, alice, bob = two_traders(system, inbox)
    service.fee_threshold = 10**12  # far away: nothing collected yet
    cross(system, inbox, alice, bob, 1)
    report = service.run_once()
    assert report.fills == 1 and report.fees_collected == 0
    fees = service.ledger.exchange.fee_balance
    assert fees > 0
    service.fee_threshold = fees - 1
    inbox.submit(signed_withdraw(system, alice, 0, 1 * USDC, 1))  # something else in the batch
    fund = service.ledger.exchange.insurance_fund
    report = service.run_once()
    assert report.fees_collected == fees
    assert report.posted.transitions[-1] == FeeCollect(fees)
    to_insurance = fees * 200_000 // 1_000_000
    operator = system.deployment.operator
    assert report.posted.withdrawals == (
        WithdrawalLeaf(0, alice.address, 1 * USDC),
        WithdrawalLeaf(SYSTEM_WITHDRAWAL_ACCOUNT, operator, fees - to_insurance),
    )
    ex = service.ledger.exchange
    assert (ex.fee_balance, ex.insurance_fund) == (0, fund + to_insurance)
    # a replay from L1 alone reproduces it (the fee recipient is the Settlement's operator)
    ledger, checkpoints = rebuild(system)
    assert ledger.state_root == service.ledger.state_root
    assert checkpoints[-1].withdrawals == report.posted.withdrawals
    _finalize(system)
    before = _balance(system, operator)
    assert _claim_all(system, service, operator) == fees - to_insurance
    assert _balance(system, operator) == before + fees - to_insurance


def test_withdrawal_claimed_through_the_newest_finalized_checkpoint(system, inbox):
    """The proof is against the last finalized checkpoint, not the one that added the leaf; a
    leaf can be paid once only, whichever checkpoint proves it."""
    service, alice, _ = two_traders(system, inbox)
    inbox.submit(signed_withdraw(system, alice, 0, 3 * USDC, 1))
    added = service.run_once().posted.header.seq
    service.run_once(post_empty=True)
    later = service.run_once(post_empty=True).posted.header.seq
    _finalize(system)
    (w,) = claims.withdrawal_statuses(system, service.checkpoints, recipient=alice.address)
    assert (w.added_seq, w.seq, w.finalized, w.claimed) == (added, later, True, False)
    claims.claim(system, w)
    (w,) = claims.withdrawal_statuses(system, service.checkpoints, recipient=alice.address)
    assert w.claimed
    # the same leaf through the checkpoint that added it: already paid
    count = service.checkpoints[added - 1].header.withdrawal_count
    proof = tuple(service.ledger.withdrawals_tree(count).proof(w.index))
    again = dataclasses.replace(w, seq=added, proof=proof)
    expect_revert(lambda: claims.claim(system, again), "Settlement_AlreadyClaimed")

"""POST /v1/orders, /cancels, /withdrawals, /margin: the happy paths, and every semantic refusal
with its exact status and code, the journal unchanged."""

import pytest
from api_fixtures import ALICE, BOB, BTC, CAROL, GRID, NOW, USDC, error_code, key_of, post, replace

from isoperp.ledger.transitions import CancelOrder, Fill, PlaceOrder, Withdraw
from isoperp.protocol.constants import INSURANCE_ACCOUNT, ZERO_ADDRESS
from isoperp.service.inbox import Inbox


def accepted(response, kind):
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["kind"] == kind and body["status"] == "pending"
    return body["requestId"]


def refused(ex, client, request, status, code, **overrides):
    before = ex.journal()
    response = post(client, request, **overrides)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert ex.journal() == before
    return response


# ------------------------------------------------------------------------------------ orders


def test_post_order_valid_is_journaled_before_the_answer(ex, client):
    order = ex.order(ALICE, nonce=5)
    rid = accepted(post(client, order), "order")
    assert ex.journal() == [(rid, "PlaceOrder", order, "pending")]
    assert post(client, ex.order(BOB, is_buy=False, nonce=5)).status_code == 202


def test_post_order_same_request_again_is_duplicate_with_the_original_id(ex, client):
    order = ex.order(ALICE)
    rid = accepted(post(client, order), "order")
    response = refused(ex, client, order, 409, "duplicate")
    assert response.json()["error"]["requestId"] == rid


def test_post_order_nonce_pending_in_the_journal_is_replay(ex, client):
    accepted(post(client, ex.order(ALICE, nonce=3)), "order")
    refused(ex, client, ex.order(ALICE, nonce=3, price=599_000), 409, "replay")


def test_post_order_nonce_registered_on_the_ledger_is_replay(ex, client):
    ex.apply(ex.order(ALICE, nonce=3))
    refused(ex, client, ex.order(ALICE, nonce=3, price=599_000), 409, "replay")


def test_post_order_nonce_cancelled_in_the_journal_is_replay(ex, client):
    accepted(post(client, ex.cancel(ALICE, 9)), "cancel")
    refused(ex, client, ex.order(ALICE, nonce=9), 409, "replay")


def test_post_order_rejected_nonce_may_be_sent_again(ex, client):
    rid = accepted(post(client, ex.order(ALICE, nonce=4)), "order")
    ex.mark(rid, "rejected", reason="insufficient_margin")
    accepted(post(client, ex.order(ALICE, nonce=4, size=10)), "order")


def test_post_order_older_nonce_than_its_slot_is_stale(ex, client):
    ex.apply(ex.order(ALICE, nonce=65))  # slot 1
    refused(ex, client, ex.order(ALICE, nonce=1), 409, "stale_nonce")


def test_post_order_slot_with_a_live_order_on_the_ledger_is_in_use(ex, client):
    ex.apply(ex.order(ALICE, nonce=1))  # registered, nothing filled: live
    refused(ex, client, ex.order(ALICE, nonce=65), 409, "slot_in_use")


def test_post_order_slot_with_a_live_order_in_the_journal_is_in_use(ex, client):
    rid = accepted(post(client, ex.order(ALICE, nonce=2)), "order")
    refused(ex, client, ex.order(ALICE, nonce=66), 409, "slot_in_use")
    ex.mark(rid, "open")
    refused(ex, client, ex.order(ALICE, nonce=130), 409, "slot_in_use")
    ex.mark(rid, "cancelled", reason="cancelled_by_owner")
    accepted(post(client, ex.order(ALICE, nonce=130)), "order")


def test_post_order_signed_by_someone_else_is_bad_signature(ex, client):
    refused(ex, client, ex.order(ALICE, key=key_of(7)), 401, "bad_signature")


def test_post_order_signature_of_other_fields_is_bad_signature(ex, client):
    order = ex.order(ALICE)
    refused(ex, client, order, 401, "bad_signature", price="600001")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:64] + bytes([29]),  # v not 27/28
        lambda s: s[:32] + (2**256 - 1).to_bytes(32, "big") + s[64:],  # s out of range
        lambda s: bytes(65),  # r = s = 0
    ],
    ids=["bad-v", "high-s", "zero"],
)
def test_post_order_malformed_signature_is_bad_signature(ex, client, mangle):
    order = ex.order(ALICE)
    refused(ex, client, replace(order, signature=mangle(order.signature)), 401, "bad_signature")


def test_post_order_unknown_market_is_404(ex, client):
    refused(ex, client, ex.order(ALICE, market_id=7), 404, "unknown_market")


def test_post_order_unknown_account_is_404(ex, client):
    order = PlaceOrder(99, BTC, True, 600_000, 1, 0, 0, 1, 0, b"")
    refused(ex, client, ex.signed(order, key_of(9)), 404, "unknown_account")


def test_post_order_without_margin_is_no_position(ex, client):
    refused(ex, client, ex.order(CAROL), 422, "no_position")


def test_post_order_beyond_the_margin_is_insufficient_margin(ex, client):
    # 10,000 USDC of margin at 5% IMF carries ~200,000 USDC: 1,000,000 lots of BTC is $6M.
    refused(ex, client, ex.order(ALICE, size=1_000_000), 422, "insufficient_margin")


def test_post_order_reduce_only_skips_the_margin_check(ex, client):
    accepted(post(client, ex.order(ALICE, size=1_000_000, flags=2)), "order")


@pytest.mark.parametrize(
    ("price", "size", "code"),
    [
        (1_005, 10, "off_tick"),
        (0, 10, "off_tick"),
        (1_000, 12, "bad_size"),
        (1_000, 0, "bad_size"),
        (1_000, 5, "below_min_size"),
    ],
)
def test_post_order_off_the_grid_is_refused(ex, client, price, size, code):
    refused(ex, client, ex.order(ALICE, market_id=GRID, price=price, size=size), 422, code)


def test_post_order_on_the_grid_is_accepted(ex, client):
    accepted(post(client, ex.order(ALICE, market_id=GRID, price=1_010, size=15)), "order")


def test_post_order_expired_is_refused(ex, client):
    refused(ex, client, ex.order(ALICE, expiry=NOW), 422, "expired")
    accepted(post(client, ex.order(ALICE, expiry=NOW + 1)), "order")


def test_post_order_post_only_ioc_is_bad_order(ex, client):
    refused(ex, client, ex.order(ALICE, tif=1, flags=1), 422, "bad_order")


def test_post_order_fok_and_post_only_gtc_on_an_empty_book_are_accepted(ex, client):
    accepted(post(client, ex.order(ALICE, tif=2, nonce=1)), "order")
    accepted(post(client, ex.order(ALICE, flags=1, nonce=2)), "order")


def test_post_order_right_after_a_pending_margin_move_sees_the_margin(ex, client):
    accepted(post(client, ex.margin(CAROL, 5_000 * USDC)), "margin")
    accepted(post(client, ex.order(CAROL, size=100)), "order")


def test_post_order_insurance_account_is_bad_signature(ex, client):
    order = PlaceOrder(INSURANCE_ACCOUNT, BTC, True, 600_000, 1, 0, 2, 1, 0, bytes(65))
    refused(ex, client, order, 401, "bad_signature")


# ------------------------------------------------------------------------------------ cancels


def test_post_cancel_valid_is_journaled(ex, client):
    cancel = ex.cancel(ALICE, 12)
    rid = accepted(post(client, cancel), "cancel")
    assert ex.journal() == [(rid, "CancelOrder", cancel, "pending")]


def test_post_cancel_of_a_pending_order_is_accepted(ex, client):
    accepted(post(client, ex.order(ALICE, nonce=3)), "order")
    accepted(post(client, ex.cancel(ALICE, 3)), "cancel")


def test_post_cancel_twice_is_duplicate(ex, client):
    cancel = ex.cancel(ALICE, 12)
    accepted(post(client, cancel), "cancel")
    refused(ex, client, cancel, 409, "duplicate")


def test_post_cancel_bad_signature_is_401(ex, client):
    refused(ex, client, ex.cancel(ALICE, 12, key=key_of(1)), 401, "bad_signature")


def test_post_cancel_unknown_account_is_404(ex, client):
    refused(ex, client, ex.signed(CancelOrder(99, 1, b""), key_of(9)), 404, "unknown_account")


def test_post_cancel_for_the_insurance_account_is_bad_signature(ex, client):
    refused(ex, client, CancelOrder(INSURANCE_ACCOUNT, 1, bytes(65)), 401, "bad_signature")


def test_post_cancel_of_a_closed_order_is_order_closed(ex, client):
    ex.apply(ex.order(ALICE, nonce=3))
    ex.apply(ex.cancel(ALICE, 3))
    refused(ex, client, ex.cancel(ALICE, 3), 409, "order_closed")


def test_post_cancel_older_than_its_slot_is_stale(ex, client):
    ex.apply(ex.order(ALICE, nonce=67))
    refused(ex, client, ex.cancel(ALICE, 3), 409, "stale_nonce")


# -------------------------------------------------------------------------------- withdrawals


def test_post_withdrawal_valid_is_journaled(ex, client):
    w = ex.withdrawal(CAROL, 1_000 * USDC)
    rid = accepted(post(client, w), "withdrawal")
    assert ex.journal() == [(rid, "Withdraw", w, "pending")]


def test_post_withdrawal_nonces_count_pending_requests(ex, client):
    nonce = ex.ledger.account(ALICE).nonce
    accepted(post(client, ex.withdrawal(ALICE, USDC, nonce=nonce)), "withdrawal")
    accepted(post(client, ex.margin(ALICE, USDC, nonce=nonce + 1)), "margin")
    accepted(post(client, ex.withdrawal(ALICE, USDC, nonce=nonce + 2)), "withdrawal")
    refused(ex, client, ex.withdrawal(ALICE, 2 * USDC, nonce=nonce + 1), 409, "replay")
    refused(ex, client, ex.withdrawal(ALICE, USDC, nonce=nonce + 5), 409, "bad_nonce")
    refused(ex, client, ex.withdrawal(ALICE, USDC, nonce=nonce + 2), 409, "duplicate")


def test_post_withdrawal_nonce_applied_on_the_ledger_is_replay(ex, client):
    refused(ex, client, ex.withdrawal(ALICE, USDC, nonce=0), 409, "replay")


def test_post_withdrawal_included_but_not_yet_in_the_snapshot_still_counts(ex, client):
    rid = accepted(post(client, ex.withdrawal(CAROL, USDC)), "withdrawal")
    ex.mark(rid, "included", seq=1)  # the checkpoint landed; the API's snapshot is older
    accepted(post(client, ex.withdrawal(CAROL, USDC, nonce=1)), "withdrawal")


def test_post_withdrawal_more_than_free_collateral_is_insufficient(ex, client):
    free = ex.ledger.account(CAROL).collateral
    refused(ex, client, ex.withdrawal(CAROL, free + 1), 422, "insufficient_collateral")


def test_post_withdrawal_pending_ones_reduce_what_is_free(ex, client):
    free = ex.ledger.account(CAROL).collateral
    accepted(post(client, ex.withdrawal(CAROL, free - 10)), "withdrawal")
    refused(ex, client, ex.withdrawal(CAROL, 11, nonce=1), 422, "insufficient_collateral")
    accepted(post(client, ex.withdrawal(CAROL, 10, nonce=1)), "withdrawal")


def test_post_withdrawal_to_the_zero_address_is_bad_recipient(ex, client):
    refused(ex, client, ex.withdrawal(CAROL, USDC, recipient=ZERO_ADDRESS), 422, "bad_recipient")


def test_post_withdrawal_bad_signature_is_401(ex, client):
    refused(ex, client, ex.withdrawal(CAROL, USDC, key=key_of(0)), 401, "bad_signature")


def test_post_withdrawal_unknown_account_is_404(ex, client):
    w = ex.signed(Withdraw(77, ex.users[0].address, 1, 0, b""), key_of(0))
    refused(ex, client, w, 404, "unknown_account")


def test_post_withdrawal_after_a_refused_pending_one_is_bad_nonce(ex, client):
    # Carol's pending withdrawal overdraws (it came in another way): the next nonce is never
    # reached.
    free = ex.ledger.account(CAROL).collateral
    inbox = Inbox(ex.journal_path)
    inbox.submit(ex.withdrawal(CAROL, free + 1))
    inbox.close()
    response = refused(ex, client, ex.withdrawal(CAROL, 1, nonce=1), 409, "bad_nonce")
    assert "insufficient_collateral" in response.json()["error"]["message"]


# ------------------------------------------------------------------------------------- margin


def test_post_margin_in_and_out_are_journaled(ex, client):
    accepted(post(client, ex.margin(ALICE, 1_000 * USDC)), "margin")
    nonce = ex.ledger.account(ALICE).nonce + 1
    accepted(post(client, ex.margin(ALICE, -500 * USDC, nonce=nonce)), "margin")


def test_post_margin_in_beyond_free_collateral_is_insufficient(ex, client):
    free = ex.ledger.account(CAROL).collateral
    refused(ex, client, ex.margin(CAROL, free + 1), 422, "insufficient_collateral")


def test_post_margin_out_without_a_position_is_no_position(ex, client):
    refused(ex, client, ex.margin(CAROL, -1), 422, "no_position")


def test_post_margin_out_below_the_initial_margin_is_insufficient(ex, client):
    # Alice opens 1 BTC long against Bob (both registered and filled on the ledger), then tries
    # to take out nearly all of her margin.
    ex.apply(ex.order(BOB, is_buy=False, nonce=1, size=100_000))
    ex.apply(ex.order(ALICE, is_buy=True, nonce=1, size=100_000))
    ex.apply(Fill(BTC, BOB, 1, ALICE, 1, 100_000, 600_000, NOW))
    refused(ex, client, ex.margin(ALICE, -9_000 * USDC), 422, "insufficient_margin")
    accepted(post(client, ex.margin(ALICE, -100 * USDC)), "margin")


def test_post_margin_unknown_market_is_404(ex, client):
    refused(ex, client, ex.margin(ALICE, USDC, market_id=9), 404, "unknown_market")


def test_post_margin_bad_signature_is_401(ex, client):
    refused(ex, client, ex.margin(ALICE, USDC, key=key_of(2)), 401, "bad_signature")


def test_post_margin_zero_amount_is_validation(ex, client):
    refused(ex, client, ex.margin(ALICE, 1), 400, "validation", amount="0")


def test_post_order_and_cancel_with_the_largest_journal_nonce(ex, client):
    top = 2**63 - 1
    accepted(post(client, ex.order(ALICE, nonce=top, size=1)), "order")
    accepted(post(client, ex.cancel(ALICE, top - 64)), "cancel")
    assert client.get(f"/v1/accounts/{ALICE}").json()["nextOrderNonce"] is None

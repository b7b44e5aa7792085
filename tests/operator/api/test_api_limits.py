"""Rate limits: per account (signed submissions, charged only once the signature verified) and
per client address (every request); the token bucket and its bounded key table."""

import pytest
from api_fixtures import ALICE, BOB, Exchange, error_code, key_of, post

from isoperp.api import ApiLimits
from isoperp.api.limits import RateLimiter, TokenBucket


@pytest.fixture
def tight(tmp_path):
    """An exchange with a 2-per-second, burst-4 account budget and a generous address budget."""
    return Exchange(
        tmp_path, limits=ApiLimits(account_rate=2, account_burst=4, ip_rate=1000, ip_burst=1000)
    )


def test_account_over_its_burst_is_rate_limited_then_refills(tight):
    with tight.client() as client:
        for nonce in range(1, 5):
            assert post(client, tight.order(ALICE, nonce=nonce, size=1)).status_code == 202
        before = tight.journal()
        response = post(client, tight.order(ALICE, nonce=5, size=1))
        assert response.status_code == 429 and error_code(response) == "rate_limited"
        assert response.headers["retry-after"] == "1"
        assert tight.journal() == before
        # Other accounts are not affected.
        assert post(client, tight.order(BOB, nonce=1, size=1)).status_code == 202
        tight.clock.t += 0.5  # one token back
        assert post(client, tight.order(ALICE, nonce=5, size=1)).status_code == 202
        assert post(client, tight.order(ALICE, nonce=6, size=1)).status_code == 429


def test_refused_but_authentic_requests_spend_the_budget(tight):
    with tight.client() as client:
        for _ in range(4):
            response = post(client, tight.order(ALICE, nonce=1, size=10**12))
            assert error_code(response) == "insufficient_margin"
        assert error_code(post(client, tight.order(ALICE, nonce=1, size=10**12))) == "rate_limited"


def test_forged_requests_cannot_spend_someone_elses_budget(tight):
    with tight.client() as client:
        for nonce in range(20):
            forged = tight.order(ALICE, nonce=nonce, key=key_of(9))
            assert error_code(post(client, forged)) == "bad_signature"
            forged_w = tight.withdrawal(ALICE, 1, key=key_of(9))
            assert error_code(post(client, forged_w)) == "bad_signature"
        assert post(client, tight.order(ALICE, nonce=1, size=1)).status_code == 202


def test_withdrawals_margin_and_cancels_share_the_account_budget(tight):
    with tight.client() as client:
        nonce = tight.ledger.account(ALICE).nonce
        assert post(client, tight.withdrawal(ALICE, 1, nonce=nonce)).status_code == 202
        assert post(client, tight.margin(ALICE, 1, nonce=nonce + 1)).status_code == 202
        assert post(client, tight.cancel(ALICE, 40)).status_code == 202
        assert post(client, tight.order(ALICE, nonce=1, size=1)).status_code == 202
        assert error_code(post(client, tight.cancel(ALICE, 41))) == "rate_limited"
        assert error_code(post(client, tight.withdrawal(ALICE, 1, nonce=nonce + 2))) == (
            "rate_limited"
        )


def test_client_address_over_its_burst_is_rate_limited(tmp_path):
    ex = Exchange(tmp_path, limits=ApiLimits(ip_rate=1, ip_burst=3))
    with ex.client() as client:
        for _ in range(3):
            assert client.get("/v1/markets").status_code == 200
        response = client.get("/v1/markets")
        assert response.status_code == 429 and error_code(response) == "rate_limited"
        assert response.headers["retry-after"] == "1"
        # Writes count against the same address budget, before their body is even read.
        response = post(client, ex.order(ALICE))
        assert response.status_code == 429 and ex.journal() == []
        ex.clock.t += 1
        assert client.get("/v1/health").status_code == 200


def test_token_bucket_refills_at_its_rate_up_to_its_burst():
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.take(100.0) == 0.0
    assert bucket.take(100.0) > 0


def test_rate_limiter_forgets_the_least_recently_used_keys():
    t = [0.0]
    limiter = RateLimiter(rate=1, burst=1, clock=lambda: t[0], max_keys=2)
    assert limiter.take("a") == 0.0 and limiter.take("b") == 0.0
    assert limiter.take("a") > 0  # a is now the most recently used
    assert limiter.take("c") == 0.0  # evicts b
    assert limiter.take("b") == 0.0  # b starts over with a full bucket
    assert len(limiter._buckets) == 2

"""Every record type through the batch codec: a story applied record by record, encoded, decoded
and re-applied to a fresh ledger reproduces every intermediate state root (what a fraud proof and
an L1 rebuild do)."""

from __future__ import annotations

from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR
from isoperp.ledger.transitions import Backstop, Deleverage, Fill, Funding, Liquidate, OrderDone
from isoperp.protocol.batch import decode_batch, encode_batch
from isoperp.protocol.constants import FLAG_REDUCE_ONLY, INSURANCE_ACCOUNT, TIF_IOC


def test_story_with_every_record_replays_to_the_same_roots(h, insurance) -> None:
    log: list = []
    roots: list[bytes] = []

    class Recorder:
        """The harness ledger, recording every accepted transition and the root after it."""

        def __init__(self, ledger: Ledger) -> None:
            self.inner = ledger

        def apply(self, t):
            result = self.inner.apply(t)
            log.append(t)
            roots.append(self.inner.state_root)
            return result

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    h.ledger = Recorder(h.ledger)
    m = h.funded(100_000_000_000, 50_000_000_000)
    l1 = h.funded(1_000_000_000, 1_000_000_000)
    l2 = h.funded(1_000_000_000, 1_000_000_000)
    b = h.funded(100_000_000_000, 50_000_000_000)
    h.fill(m, l1, 10_000, 600_000)
    h.fill(m, l2, 10_000, 600_000)
    ioc = h.place(b, True, 600_000, 50, tif=TIF_IOC).order
    h.ledger.apply(OrderDone(b.account_id, ioc.slot))
    h.ledger.apply(h.cancel_tx(b, 99))
    h.set_price(600_000, 100)
    h.ledger.apply(Funding(0, 0, 100))
    h.set_price(510_000, 130)
    h.ledger.apply(Funding(0, 5_000, 130))
    bid = h.place(b, True, 505_000, 4_000).order
    h.ledger.apply(Liquidate(0, l1.account_id, b.account_id, bid.slot, 4_000, 505_000, 130))
    h.ledger.apply(Backstop(0, l1.account_id, 130))
    sell = h.place(insurance, False, 512_000, 1_000, flags=FLAG_REDUCE_ONLY).order
    buy = h.place(b, True, 512_000, 1_000, tif=TIF_IOC).order
    unwind = Fill(0, INSURANCE_ACCOUNT, sell.slot, b.account_id, buy.slot, 1_000, 512_000, 131)
    h.ledger.apply(unwind)
    h.set_price(450_000, 140)
    h.ledger.apply(Deleverage(0, l2.account_id, m.account_id, 10_000, 140))
    h.withdraw(b, 1_000)
    h.ledger.check_invariants(h.net_deposits, max_funding_dust=2 * len(log))

    kinds = {type(t).__name__ for t in log}
    assert kinds >= {
        "Deposit", "Withdraw", "MarginTransfer", "PlaceOrder", "CancelOrder", "OrderDone",
        "PriceUpdate", "Funding", "Fill", "Liquidate", "Backstop", "Deleverage",
    }
    decoded = decode_batch(encode_batch(log, roots))
    assert decoded == log
    fresh = Ledger.genesis(DEVNET_MARKETS, h.domain, h.ledger.oracle, fee_recipient=DEVNET_OPERATOR)
    for t, root in zip(decoded, roots, strict=True):
        fresh.apply(t)
        assert fresh.state_root == root
    assert dict(fresh.leaves()) == dict(h.ledger.leaves())

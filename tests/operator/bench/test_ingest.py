"""The ingest bench trades the first market of the genesis market list it is given."""

from __future__ import annotations

import dataclasses

from isoperp.bench.ingest import run_ingest_bench
from isoperp.ledger.markets import BTC_USD

# lot and tick of their own, a negative notional exponent, a maker rebate
SOL = dataclasses.replace(
    BTC_USD,
    market_id=2,
    mark_price=15_003,
    notional_exp=-1,
    price_tick=7,
    size_step=3,
    min_size=4,
    maker_fee_ppm=-200,
    taker_fee_ppm=700,
    symbol="SOL-USD",
)


def test_ingest_bench_on_devnet_markets_fills_without_rejections() -> None:
    report = run_ingest_bench(ops=300, accounts=6, seed=3, progress=None)
    assert report.ops == 300 and report.orders + report.cancels == 300
    assert report.fills > 0
    assert set(report.rejected) <= {"order_closed"}  # only cancels that lost to a fill


def test_ingest_bench_on_a_market_file_market_trades_on_its_grid() -> None:
    report = run_ingest_bench(ops=300, accounts=6, seed=3, progress=None, markets=(SOL,))
    assert report.fills > 0
    assert set(report.rejected) <= {"order_closed"}  # nothing off the tick or size grid

"""The devnet markets match the PROTOCOL.md table."""

from __future__ import annotations

from isoperp.ledger.markets import BTC_USD, DEVNET_MARKETS, ETH_USD


def test_devnet_markets_ids_and_symbols_match_table() -> None:
    assert [(m.market_id, m.symbol) for m in DEVNET_MARKETS] == [(0, "BTC-USD"), (1, "ETH-USD")]


def test_devnet_markets_parameters_match_table() -> None:
    for m in DEVNET_MARKETS:
        assert (m.imf_ppm, m.mmf_ppm) == (50_000, 30_000)
        assert (m.maker_fee_ppm, m.taker_fee_ppm) == (100, 500)
        assert (m.min_size, m.size_step, m.price_tick, m.notional_exp) == (1, 1, 1, 0)
        assert (m.mark_time, m.funding_index, m.funding_time, m.open_interest) == (0, 0, 0, 0)


def test_devnet_markets_initial_marks_are_usd_prices_in_ticks() -> None:
    # BTC: $60,000 / $0.10 per tick; 1 BTC = 100,000 lots of 0.00001 -> $60,000 in micro-USDC
    assert BTC_USD.mark_price == 600_000
    assert BTC_USD.notional(100_000, BTC_USD.mark_price) == 60_000 * 10**6
    # ETH: $3,000 / $0.01 per tick; 1 ETH = 10,000 lots of 0.0001 -> $3,000 in micro-USDC
    assert ETH_USD.mark_price == 300_000
    assert ETH_USD.notional(10_000, ETH_USD.mark_price) == 3_000 * 10**6


def test_devnet_oracle_is_anvil_account_9() -> None:
    from isoperp.devnet import devnet_account
    from isoperp.ledger.markets import DEVNET_ORACLE

    assert devnet_account(9).address == DEVNET_ORACLE

"""The devnet markets (docs/PROTOCOL.md, section 1 table).

Both markets have ``notionalExp = 0``: one lot at one tick is worth exactly 1 micro-USDC.

- BTC-USD: lot 0.00001 BTC, tick $0.10. Initial mark $60,000 = 600,000 ticks
  (1 BTC = 100,000 lots -> notional 600,000 * 100,000 = 60,000,000,000 micro-USDC = $60,000).
- ETH-USD: lot 0.0001 ETH, tick $0.01. Initial mark $3,000 = 300,000 ticks
  (1 ETH = 10,000 lots -> 300,000 * 10,000 = 3,000,000,000 micro-USDC = $3,000).
"""

from __future__ import annotations

from typing import Final

from isoperp.ledger.model import Market

BTC_USD_ID: Final = 0
ETH_USD_ID: Final = 1

IMF_PPM: Final = 50_000  # 5% initial margin (20x)
MMF_PPM: Final = 30_000  # 3% maintenance margin
MAKER_FEE_PPM: Final = 100  # 0.01%
TAKER_FEE_PPM: Final = 500  # 0.05%

DEVNET_ORACLE: Final = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
DEVNET_OPERATOR: Final = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
"""Anvil account 0: the devnet Settlement's operator, so the ledger's fee recipient."""
"""The devnet oracle: anvil test account 9 of the "test test ... junk" mnemonic
(``isoperp.devnet.devnet_account(9)``; spelled out here so the ledger does not import the devnet
tooling, a test holds the two together). It signs the devnet's PRICE records."""


def _devnet_market(market_id: int, symbol: str, mark_price: int) -> Market:
    return Market(
        market_id=market_id,
        mark_price=mark_price,
        mark_time=0,
        funding_index=0,
        funding_time=0,
        imf_ppm=IMF_PPM,
        mmf_ppm=MMF_PPM,
        notional_exp=0,
        maker_fee_ppm=MAKER_FEE_PPM,
        taker_fee_ppm=TAKER_FEE_PPM,
        min_size=1,
        size_step=1,
        price_tick=1,
        open_interest=0,
        symbol=symbol,
    )


BTC_USD: Final = _devnet_market(BTC_USD_ID, "BTC-USD", 600_000)
ETH_USD: Final = _devnet_market(ETH_USD_ID, "ETH-USD", 300_000)

DEVNET_MARKETS: Final[tuple[Market, ...]] = (BTC_USD, ETH_USD)

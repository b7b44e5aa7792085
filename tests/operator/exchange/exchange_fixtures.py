"""An engine over a fresh devnet ledger with funded accounts that have margin in BTC-USD."""

from dataclasses import dataclass

from eth_account import Account

from isoperp.batch.builder import BatchBuilder
from isoperp.devnet import devnet_account
from isoperp.exchange.engine import Engine
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.markets import DEVNET_MARKETS, DEVNET_OPERATOR, DEVNET_ORACLE
from isoperp.ledger.transitions import Deposit, MarginTransfer, PlaceOrder, PriceUpdate
from isoperp.protocol.header import CheckpointHeader
from isoperp.protocol.signing import Domain, sign_request

DOMAIN = Domain(31337, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512")
ORACLE_KEY = bytes(devnet_account(9).key)  # the devnet oracle (DEVNET_ORACLE)
NOW = 1_700_000_000
USDC = 10**6
BTC = 0


@dataclass
class Desk:
    ledger: Ledger
    builder: BatchBuilder
    engine: Engine
    keys: list[bytes]
    nonces: list[int]

    def order(self, who, is_buy, price, size, *, tif=0, flags=0, expiry=0, nonce=None):
        if nonce is None:
            self.nonces[who] += 1
            nonce = self.nonces[who]
        o = PlaceOrder(who, BTC, is_buy, price, size, tif, flags, nonce, expiry, b"")
        return sign_request(self.keys[who], DOMAIN, o)

    def submit(self, who, is_buy, price, size, **kw):
        return self.engine.submit(self.order(who, is_buy, price, size, **kw))

    def margin(self, who, amount):
        """Moves ``amount`` of account ``who``'s free collateral into its BTC-USD position."""
        nonce = self.ledger.account(who).nonce
        t = sign_request(self.keys[who], DOMAIN, MarginTransfer(who, BTC, amount, nonce, b""))
        self.builder.add(t)

    def price(self, price, *, at=None):
        market = self.ledger.market(BTC)
        ts = at if at is not None else max(self.engine.now, market.mark_time + 1)
        update = sign_request(ORACLE_KEY, DOMAIN, PriceUpdate(BTC, price, ts, b""))
        return self.engine.price(update)


def make_desk(accounts=4, collateral=100_000 * USDC, margin=10_000 * USDC) -> Desk:
    ledger = Ledger.genesis(DEVNET_MARKETS, DOMAIN, DEVNET_ORACLE, fee_recipient=DEVNET_OPERATOR)
    keys = [(i + 1000).to_bytes(32, "big") for i in range(accounts)]
    for i, key in enumerate(keys):
        ledger.apply(Deposit(i, i, Account.from_key(key).address, collateral, NOW))
        if margin:
            ledger.apply(sign_request(key, DOMAIN, MarginTransfer(i, BTC, margin, 0, b"")))
    builder = BatchBuilder(ledger, CheckpointHeader.genesis(ledger.state_root))
    engine = Engine(ledger, builder, DOMAIN, now=NOW)
    return Desk(ledger, builder, engine, keys, [0] * accounts)

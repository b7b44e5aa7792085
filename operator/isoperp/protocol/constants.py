"""Protocol constants (docs/PROTOCOL.md); the Solidity side has the same numbers."""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 2

# Trees (section 2 and 4)
STATE_TREE_DEPTH: Final = 32
WITHDRAWAL_TREE_DEPTH: Final = 32  # one global append-only tree, its root in the exchange leaf
TRACE_TREE_DEPTH: Final = 20
LEAF_SALT: Final = b"\x00"
NODE_SALT: Final = b"\x01"

# Leaf index layout: index = kind << 30 | account << 6 | sub
KIND_SHIFT: Final = 30
ACCOUNT_SHIFT: Final = 6
MAX_ACCOUNTS: Final = 1 << 24
MAX_MARKETS: Final = 1 << 6
KIND_ACCOUNT: Final = 0
KIND_POSITION: Final = 1
KIND_ORDER: Final = 2
KIND_GLOBAL: Final = 3
GLOBAL_MARKETS: Final = 0  # account field of global leaves: market leaves
GLOBAL_EXCHANGE: Final = 1  # account field of global leaves: the exchange leaf

# Leaf types (first word of every leaf encoding)
LEAF_ACCOUNT: Final = 1
LEAF_POSITION: Final = 2
LEAF_MARKET: Final = 3
LEAF_EXCHANGE: Final = 4
LEAF_ORDER: Final = 5

# Batch data (section 3)
BATCH_VERSION: Final = 2
MAX_BATCH_BYTES: Final = 131_072
BATCH_CHUNK_BYTES: Final = 4_096  # batchHash chunks (section 3)
MAX_BATCH_RECORDS: Final = 1 << 20  # = 2^TRACE_TREE_DEPTH, the trace tree's capacity
RECORD_DEPOSIT: Final = 0x01
RECORD_WITHDRAW: Final = 0x02
RECORD_MARGIN_TRANSFER: Final = 0x03
RECORD_FILL: Final = 0x04
RECORD_ORDER: Final = 0x05
RECORD_CANCEL: Final = 0x06
RECORD_ORDER_DONE: Final = 0x07
RECORD_PRICE: Final = 0x08
RECORD_FUNDING: Final = 0x09
RECORD_LIQUIDATE: Final = 0x0A
RECORD_BACKSTOP: Final = 0x0B
RECORD_DELEVERAGE: Final = 0x0C
RECORD_FORCED_WITHDRAW: Final = 0x10
RECORD_FORCED_EXIT: Final = 0x11
RECORD_DEPOSIT_REJECTED: Final = 0x12
RECORD_FEE_COLLECT: Final = 0x13

# Forced-request queue (section 4.1): the kind byte of a queue entry
FORCED_KIND_WITHDRAWAL: Final = 1
FORCED_KIND_EXIT: Final = 2

# Accounts and orders (section 2)
INSURANCE_ACCOUNT: Final = (1 << 24) - 1  # exists from genesis, owner = the zero address
ZERO_ADDRESS: Final = "0x" + "00" * 20
# accountId of withdrawal leaves that pay no account: deposit refunds and the operator's fees
SYSTEM_WITHDRAWAL_ACCOUNT: Final = 0xFFFFFFFF
ORDER_SLOTS: Final = 64  # an order lives in slot nonce % 64 of its account
TIF_GTC: Final = 0  # good till cancelled
TIF_IOC: Final = 1  # immediate or cancel
TIF_FOK: Final = 2  # fill or kill
FLAG_POST_ONLY: Final = 1  # bit 0: never the taker
FLAG_REDUCE_ONLY: Final = 2  # bit 1: may only reduce |position|, never flip it
ORDER_FLAGS_MASK: Final = FLAG_POST_ONLY | FLAG_REDUCE_ONLY

# Risk engine (section 3)
MAX_PRICE_AGE: Final = 60  # seconds a mark price stays fresh for funding and liquidations
FUNDING_PERIOD: Final = 28_800  # funding rates are quoted per 8 hours (dYdX)
FUNDING_RATE_CAP_MULTIPLE: Final = 6  # |rate| <= 600% x (IMF - MMF) (dYdX)
LIQUIDATION_FEE_PPM: Final = 15_000  # max liquidation penalty, 1.5% of the closed notional
INSURANCE_FEE_SHARE_PPM: Final = 200_000  # FEE_COLLECT: 20% of the collected fees, to the fund

# Integer ranges
PPM: Final = 1_000_000
UINT64_MAX: Final = (1 << 64) - 1
UINT128_MAX: Final = (1 << 128) - 1
INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
INT128_MIN: Final = -(1 << 127)
INT128_MAX: Final = (1 << 127) - 1

# EIP-712 domain (section 3.1)
EIP712_NAME: Final = "isoperp"
EIP712_VERSION: Final = "1"

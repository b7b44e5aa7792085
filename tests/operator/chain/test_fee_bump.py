"""Stuck transactions are replaced with higher fees: the fee arithmetic (pure, integer, capped) and
the receipt loop of ChainClient on a scripted fake node (injected clock, no sleeping)."""

import logging
import random

import pytest
import requests
from eth_utils import keccak
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound, Web3RPCError

from isoperp import failpoints
from isoperp.chain.client import GWEI, ChainClient, bumped_fees, bumped_gas_price
from isoperp.devnet import devnet_account
from isoperp.errors import ContractReverted, TransientChainError

TO = "0x000000000000000000000000000000000000dEaD"
CAP = 500 * GWEI


# --- the fee arithmetic ------------------------------------------------------------------------


def test_bumped_fees_raise_both_fields_by_at_least_an_eighth():
    assert bumped_fees(100, 10, 0) == (114, 13)  # ceil(112.5) + 1, ceil(11.25) + 1
    assert bumped_fees(0, 0, 0) == (1, 1)  # zero fees move too
    rng = random.Random(1)
    for _ in range(2000):
        max_fee = rng.randrange(0, 400 * GWEI)
        tip = rng.randrange(0, max_fee + 1)
        fees = bumped_fees(max_fee, tip, 0, cap=10**30)
        assert fees is not None
        new_max, new_tip = fees
        assert type(new_max) is int and type(new_tip) is int
        assert new_max * 8 >= max_fee * 9 and new_max > max_fee
        assert new_tip * 8 >= tip * 9 and new_tip > tip
        assert new_max * 10 >= max_fee * 11 and new_tip * 10 >= tip * 11  # geth's +10% rule
        assert new_tip <= new_max


def test_bumped_fees_are_exact_on_huge_integers():
    big = 10**40 + 7  # floats would round this
    assert bumped_fees(big, big, 0, cap=10**50) == (-(-big * 9 // 8) + 1,) * 2


def test_bumped_fees_track_the_base_fee_and_the_market_tip():
    assert bumped_fees(100, 10, 1_000) == (2_013, 13)  # 2 * base + new tip
    assert bumped_fees(100, 10, 0, market_tip=50) == (114, 50)
    assert bumped_fees(100, 10, 1_000, market_tip=50) == (2_050, 50)
    assert bumped_fees(3 * GWEI, GWEI, 40 * GWEI) == (81_125_000_001, 1_125_000_001)


def test_bumped_fees_clamp_to_the_cap_while_still_a_valid_replacement():
    # 450 gwei * 1.125 > 500 gwei: clamped to the cap, still >= +10%
    assert bumped_fees(450 * GWEI, 2 * GWEI, 0, cap=CAP) == (CAP, 2_250_000_001)
    assert bumped_fees(100, 10, 1_000, cap=500) == (500, 13)  # the base fee term is clamped too
    assert bumped_fees(100, 100, 0, cap=111) == (111, 111)  # the tip never exceeds the max fee


def test_bumped_fees_at_the_cap_are_none():
    assert bumped_fees(CAP, GWEI, 0, cap=CAP) is None
    assert bumped_fees(460 * GWEI, GWEI, 0, cap=CAP) is None  # the cap is less than +10%
    assert bumped_fees(100, 100, 0, cap=105) is None  # the tip could not rise by 10%


def test_bumped_fees_reject_negative_inputs():
    with pytest.raises(ValueError):
        bumped_fees(-1, 0, 0)
    with pytest.raises(ValueError):
        bumped_gas_price(10, -1)


def test_bumped_gas_price_legacy():
    assert bumped_gas_price(100) == 114
    assert bumped_gas_price(100, 200) == 200
    assert bumped_gas_price(460, cap=510) == 510  # clamped, still >= +10%
    assert bumped_gas_price(470, cap=510) is None
    assert bumped_gas_price(0) == 1


# --- the receipt loop on a fake node ---------------------------------------------------------


class FakeNode:
    """Just enough of w3 (w3.eth is the node itself), driven by an injected clock: ``sleep``
    advances it and lets the scenario (``on_tick``) mine or break things."""

    def __init__(self, *, legacy: bool = False) -> None:
        self.eth = self
        self.chain_id = 31337
        self.now = 0.0
        self.legacy = legacy
        self.base_fee = GWEI
        self.max_priority_fee = GWEI
        self.gas_price = 2 * GWEI
        self.signed: dict[bytes, dict] = {}  # hash -> every tx dict the client signed
        self.pool: list[bytes] = []  # hashes the node accepted, in order
        self.rejections: list[str] = []  # errors for the next replacements, in order
        self.receipts: dict[bytes, dict] = {}
        self.receipt_blips = 0  # the next N receipt polls fail with a connection error
        self.on_tick = lambda node: None

    # clock
    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        self.on_tick(self)

    # what ChainClient asks
    def get_transaction_count(self, address, block):
        return 7

    def get_block(self, which):
        return {"baseFeePerGas": self.base_fee}

    def send_raw_transaction(self, raw):
        tx_hash = keccak(bytes(raw))
        if self.pool and self.rejections:  # the first send always succeeds
            raise Web3RPCError(self.rejections.pop(0))
        self.pool.append(tx_hash)
        return HexBytes(tx_hash)

    def get_transaction_receipt(self, tx_hash):
        if self.receipt_blips:
            self.receipt_blips -= 1
            raise requests.ConnectionError("connection refused")
        try:
            return self.receipts[bytes(tx_hash)]
        except KeyError:
            raise TransactionNotFound(f"{tx_hash!r} not found") from None

    def call(self, tx, block_identifier=None):
        raise RuntimeError("cannot replay")

    # scenario helpers
    def mine(self, tx_hash: bytes, status: int = 1) -> None:
        self.receipts[tx_hash] = {
            "status": status,
            "transactionHash": HexBytes(tx_hash),
            "blockNumber": 5,
            "gasUsed": 21_000,
        }

    def fees(self, tx_hash: bytes) -> tuple[int, int]:
        tx = self.signed[tx_hash]
        if "gasPrice" in tx:
            return tx["gasPrice"], tx["gasPrice"]
        return tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]


class RecordingAccount:
    """A devnet account that tells the node what it signed (hash -> tx)."""

    def __init__(self, node: FakeNode) -> None:
        self._account = devnet_account(0)
        self._node = node
        self.address = self._account.address

    def sign_transaction(self, tx):
        signed = self._account.sign_transaction(tx)
        self._node.signed[bytes(signed.hash)] = dict(tx)
        return signed


class FakeFn:
    fn_name = "poke"

    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def estimate_gas(self, params):
        return 21_000

    def build_transaction(self, params):
        tx = {**params, "to": TO, "data": "0x"}
        if self.node.legacy:
            tx["gasPrice"] = 2 * GWEI
        else:
            tx["maxFeePerGas"] = 3 * GWEI
            tx["maxPriorityFeePerGas"] = GWEI
        return tx


def make_client(node: FakeNode, **kwargs) -> ChainClient:
    settings = {"stuck_after_s": 15.0, "receipt_timeout_s": 120.0, "poll_interval_s": 0.5}
    return ChainClient(
        node,
        RecordingAccount(node),
        clock=node.clock,
        sleep=node.sleep,
        **{**settings, **kwargs},
    )


def mine_version(index: int):
    """A scenario: mine the ``index``-th version sent as soon as it is in the pool."""

    def tick(node: FakeNode) -> None:
        if len(node.pool) > index and not node.receipts:
            node.mine(node.pool[index])

    return tick


def test_a_prompt_receipt_sends_nothing_else():
    node = FakeNode()
    node.on_tick = mine_version(0)
    receipt = make_client(node).transact(FakeFn(node))
    assert bytes(receipt["transactionHash"]) == node.pool[0]
    assert len(node.pool) == 1


def test_stuck_tx_replaced_with_higher_fees_and_the_replacement_mined(monkeypatch):
    hits = []
    monkeypatch.setattr(failpoints, "hit", hits.append)
    node = FakeNode()
    node.on_tick = mine_version(2)
    client = make_client(node)
    receipt = client.transact(FakeFn(node), context="post")
    assert hits == ["after_send:post"]  # once, after the first send only
    assert bytes(receipt["transactionHash"]) == node.pool[2]
    assert len(node.pool) == 3
    versions = [node.signed[h] for h in node.pool]
    assert {v["nonce"] for v in versions} == {7}
    for field in ("to", "data", "value", "gas", "chainId"):
        assert len({str(v[field]) for v in versions}) == 1
    for old, new in zip(node.pool, node.pool[1:], strict=False):
        (old_max, old_tip), (new_max, new_tip) = node.fees(old), node.fees(new)
        assert new_max * 8 >= old_max * 9 and new_tip * 8 >= old_tip * 9
    assert node.fees(node.pool[1])[0] >= 2 * node.base_fee
    assert node.now >= 2 * 15.0  # one replacement per stuck_after_s
    assert client._nonce == 8


def test_any_version_mined_ends_the_wait():
    node = FakeNode()

    def tick(node: FakeNode) -> None:
        if len(node.pool) == 3 and not node.receipts:
            node.mine(node.pool[0])  # the original, after all

    node.on_tick = tick
    receipt = make_client(node).transact(FakeFn(node))
    assert bytes(receipt["transactionHash"]) == node.pool[0]


def test_underpriced_replacement_bumped_once_more():
    node = FakeNode()
    node.rejections = ["replacement transaction underpriced"]
    node.on_tick = mine_version(1)
    make_client(node).transact(FakeFn(node))
    first, second = node.pool[:2]
    rejected = [h for h in node.signed if h not in node.pool]
    assert len(rejected) == 1
    assert node.fees(first)[0] < node.fees(rejected[0])[0] < node.fees(second)[0]


def test_nonce_too_low_on_replacement_keeps_polling_without_bumping(caplog):
    node = FakeNode()
    node.rejections = ["nonce too low: next nonce 8, tx nonce 7"]

    def tick(node: FakeNode) -> None:
        if node.now >= 60 and not node.receipts:
            node.mine(node.pool[0])

    node.on_tick = tick
    with caplog.at_level(logging.INFO, logger="isoperp.chain.client"):
        receipt = make_client(node).transact(FakeFn(node))
    assert bytes(receipt["transactionHash"]) == node.pool[0]
    assert len(node.pool) == 1 and len(node.signed) == 2  # one replacement tried, no more
    assert "earlier version was mined" in caplog.text


def test_already_known_replacement_is_polled():
    node = FakeNode()
    node.rejections = ["already known"]
    client = make_client(node)
    node.on_tick = lambda n: n.now >= 20 and not n.receipts and n.mine(list(n.signed)[1])
    receipt = client.transact(FakeFn(node))
    assert bytes(receipt["transactionHash"]) == list(node.signed)[1]


def test_connection_blips_while_polling_are_ridden_out():
    node = FakeNode()
    node.receipt_blips = 5
    node.on_tick = mine_version(0)
    receipt = make_client(node).transact(FakeFn(node))
    assert bytes(receipt["transactionHash"]) == node.pool[0]
    assert node.receipt_blips == 0


def test_connection_error_sending_a_replacement_still_polls_its_hash():
    node = FakeNode()
    sent = node.send_raw_transaction

    def flaky_send(raw):
        if len(node.signed) == 2 and len(node.pool) == 1:
            node.pool.append(keccak(bytes(raw)))  # it arrived, but the answer got lost
            raise requests.ConnectionError("reset by peer")
        return sent(raw)

    node.send_raw_transaction = flaky_send
    node.on_tick = mine_version(1)
    receipt = make_client(node).transact(FakeFn(node))
    assert bytes(receipt["transactionHash"]) == node.pool[1]


def test_deadline_raises_transient_naming_every_hash_and_resyncs_the_nonce():
    node = FakeNode()
    client = make_client(node, stuck_after_s=10.0, receipt_timeout_s=35.0)
    with pytest.raises(TransientChainError) as err:
        client.transact(FakeFn(node), context="post")
    message = str(err.value)
    assert message.startswith("post: no receipt after 35 s for nonce 7")
    assert len(node.pool) == 4  # at 0, 10, 20 and 30 s
    for tx_hash in node.pool:
        assert "0x" + tx_hash.hex() in message
    assert client._nonce is None
    assert err.value.retryable


def test_fee_cap_stops_bumping_and_warns(caplog):
    node = FakeNode()
    cap = 3_720_000_000
    client = make_client(node, max_fee_per_gas=cap, receipt_timeout_s=100.0)
    with (
        caplog.at_level(logging.WARNING, logger="isoperp.chain.client"),
        pytest.raises(TransientChainError),
    ):
        client.transact(FakeFn(node))
    # 3 gwei, 3.375 gwei, then 3.797 gwei clamped to the cap (still +10%); nothing valid after
    assert [node.fees(h)[0] for h in node.pool] == [3 * GWEI, 3_375_000_001, cap]
    assert len(node.signed) == 3
    assert caplog.text.count("fee cap (3.72 gwei) is reached") == 1


def test_legacy_gas_price_bumped():
    node = FakeNode(legacy=True)
    node.on_tick = mine_version(1)
    receipt = make_client(node).transact(FakeFn(node))
    _, second = node.pool
    assert bytes(receipt["transactionHash"]) == second
    assert node.fees(second)[0] == -(-2 * GWEI * 9 // 8) + 1
    assert "maxFeePerGas" not in node.signed[second]


def test_reverted_replacement_is_contract_reverted():
    node = FakeNode()
    node.on_tick = lambda n: len(n.pool) == 2 and not n.receipts and n.mine(n.pool[1], status=0)
    with pytest.raises(ContractReverted, match="poke"):
        make_client(node).transact(FakeFn(node))


def test_settings_are_validated():
    node = FakeNode()
    with pytest.raises(ValueError):
        make_client(node, stuck_after_s=0)
    with pytest.raises(ValueError):
        make_client(node, max_fee_per_gas=0)

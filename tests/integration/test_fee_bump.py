"""A transaction stuck in a real anvil's pool (automine off) is replaced with higher fees; whichever
version is mined ends the wait, the nonce advances once and the call takes effect once. Past the
deadline the client gives up with TransientChainError and resyncs its nonce."""

import threading
import time

import pytest
from eth_utils import keccak
from web3.exceptions import TransactionNotFound

from isoperp.chain.artifacts import load_artifacts
from isoperp.chain.client import ChainClient, connect
from isoperp.devnet import devnet_account, rpc
from isoperp.errors import TransientChainError

AMOUNT = 1_000_000
WAIT_S = 60  # generous bound on every wait; the tests never assert on timing


def make_client(url: str, **settings) -> tuple[ChainClient, list[bytes]]:
    """A client for devnet account 0 that records the hash of every transaction it sends."""
    client = ChainClient(connect(url), devnet_account(0), **settings)
    sent: list[bytes] = []
    send = client.w3.eth.send_raw_transaction

    def recording_send(raw):
        sent.append(keccak(bytes(raw)))
        return send(raw)

    client.w3.eth.send_raw_transaction = recording_send  # type: ignore[method-assign]
    return client, sent


def deploy_usdc(client: ChainClient):
    art = load_artifacts()["MockUSDC"]
    receipt = client.deploy(art.bytecode, art.abi)
    return client.contract(receipt["contractAddress"], art.abi)


def pending_tx(url: str, sender: str, nonce: int) -> dict | None:
    content = rpc(url, "txpool_content")
    assert isinstance(content, dict)
    by_sender = {a.lower(): txs for a, txs in content.get("pending", {}).items()}
    return by_sender.get(sender.lower(), {}).get(str(nonce))


def wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_transact_stuck_tx_replaced_and_mined_once_succeeds(net):
    client, sent = make_client(net.url, stuck_after_s=0.5, receipt_timeout_s=WAIT_S)
    usdc = deploy_usdc(client)
    receiver = devnet_account(1).address
    sender = client.address
    nonce = client.w3.eth.get_transaction_count(sender)
    deployed = len(sent)
    outcome: dict = {}

    def mint() -> None:
        try:
            outcome["receipt"] = client.transact(
                usdc.functions.mint(receiver, AMOUNT), context="mint"
            )
        except Exception as exc:  # reported by the main thread
            outcome["error"] = exc

    rpc(net.url, "evm_setAutomine", [False])
    try:
        worker = threading.Thread(target=mint, daemon=True)
        worker.start()
        original = wait_for(lambda: pending_tx(net.url, sender, nonce), "the first tx in the pool")
        assert bytes.fromhex(original["hash"][2:]) == sent[deployed]
        replacement = wait_for(
            lambda: (
                (tx := pending_tx(net.url, sender, nonce))
                and int(tx["maxFeePerGas"], 16) > int(original["maxFeePerGas"], 16)
                and tx
            ),
            "a replacement with a higher max fee",
        )
        rpc(net.url, "evm_mine")
        worker.join(WAIT_S)
        assert not worker.is_alive()
    finally:
        rpc(net.url, "evm_setAutomine", [True])
    assert "error" not in outcome, outcome.get("error")
    receipt = outcome["receipt"]
    mined_hash = bytes(receipt["transactionHash"])
    assert receipt["status"] == 1
    assert mined_hash != sent[deployed]
    assert mined_hash in sent[deployed + 1 :]  # one of the replacements the client sent
    assert replacement["hash"] in {"0x" + h.hex() for h in sent[deployed + 1 :]}
    mined = client.w3.eth.get_transaction(mined_hash)
    assert mined["nonce"] == nonce
    assert mined["maxFeePerGas"] > int(original["maxFeePerGas"], 16)
    assert mined["maxPriorityFeePerGas"] > int(original["maxPriorityFeePerGas"], 16)
    with pytest.raises(TransactionNotFound):
        client.w3.eth.get_transaction_receipt(sent[deployed])  # the original never mined
    rpc(net.url, "evm_mine")  # nothing else is left to mine
    assert rpc(net.url, "txpool_status") == {"pending": "0x0", "queued": "0x0"}
    assert client.w3.eth.get_transaction_count(sender) == nonce + 1
    assert usdc.functions.balanceOf(receiver).call() == AMOUNT
    assert usdc.functions.totalSupply().call() == AMOUNT


def test_transact_never_mined_raises_transient_and_resyncs_nonce(net):
    client, sent = make_client(net.url, stuck_after_s=0.3, receipt_timeout_s=2.0)
    usdc = deploy_usdc(client)
    receiver = devnet_account(1).address
    nonce = client.w3.eth.get_transaction_count(client.address)
    deployed = len(sent)
    rpc(net.url, "evm_setAutomine", [False])
    try:
        with pytest.raises(TransientChainError) as err:
            client.transact(usdc.functions.mint(receiver, AMOUNT), context="mint")
        assert client._nonce is None
        message = str(err.value)
        assert message.startswith(f"mint: no receipt after 2 s for nonce {nonce}")
        assert len(sent) > deployed
        for tx_hash in sent[deployed:]:
            assert "0x" + tx_hash.hex() in message
        rpc(net.url, "evm_mine")  # the stuck version is mined after all
    finally:
        rpc(net.url, "evm_setAutomine", [True])
    mined = [h for h in sent[deployed:] if _receipt_or_none(client, h)]
    assert len(mined) == 1
    # The retry resyncs its nonce from the node and goes through.
    retry = client.transact(usdc.functions.mint(receiver, AMOUNT), context="mint")
    assert client.w3.eth.get_transaction(retry["transactionHash"])["nonce"] == nonce + 1
    assert client.w3.eth.get_transaction_count(client.address) == nonce + 2
    assert usdc.functions.totalSupply().call() == 2 * AMOUNT


def _receipt_or_none(client: ChainClient, tx_hash: bytes):
    try:
        return client.w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None


def test_send_after_the_deadline_takes_the_stuck_nonce_over(net):
    """Given up at the deadline and still unmined: the next transaction (the operator's rebuilt
    checkpoint) replaces the stuck one at the same nonce instead of queueing behind it."""
    client, _ = make_client(net.url, stuck_after_s=0.3, receipt_timeout_s=1.0)
    usdc = deploy_usdc(client)
    receiver = devnet_account(1).address
    sender = client.address
    nonce = client.w3.eth.get_transaction_count(sender)
    outcome: dict = {}
    rpc(net.url, "evm_setAutomine", [False])
    try:
        with pytest.raises(TransientChainError):
            client.transact(usdc.functions.mint(receiver, AMOUNT), context="mint")
        stuck = pending_tx(net.url, sender, nonce)
        assert stuck is not None
        client.receipt_timeout_s = WAIT_S

        def transfer() -> None:
            try:
                fn = usdc.functions.mint(devnet_account(2).address, 7)
                outcome["receipt"] = client.transact(fn, context="second")
            except Exception as exc:  # reported by the main thread
                outcome["error"] = exc

        worker = threading.Thread(target=transfer, daemon=True)
        worker.start()
        wait_for(
            lambda: (
                (tx := pending_tx(net.url, sender, nonce)) and tx["hash"] != stuck["hash"] and tx
            ),
            "the new transaction at the stuck nonce",
        )
        rpc(net.url, "evm_mine")
        worker.join(WAIT_S)
    finally:
        rpc(net.url, "evm_setAutomine", [True])
    assert "error" not in outcome, outcome.get("error")
    mined = client.w3.eth.get_transaction(outcome["receipt"]["transactionHash"])
    assert mined["nonce"] == nonce and mined["maxFeePerGas"] > int(stuck["maxFeePerGas"], 16)
    assert usdc.functions.balanceOf(receiver).call() == 0  # the stuck mint never happened
    assert usdc.functions.totalSupply().call() == 7
    assert client.w3.eth.get_transaction_count(sender) == nonce + 1

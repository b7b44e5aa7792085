"""Reorgs on anvil (``anvil_reorg``): the watcher follows them, and the operator rolls its ledger
and journal back, re-includes what the dropped checkpoint held, and never posts a rival of a
checkpoint that comes back."""

from chain_fixtures import signed_withdraw, two_traders

from isoperp.chain.client import ChainClient, connect
from isoperp.chain.contracts import System
from isoperp.chain.l1 import rebuild
from isoperp.chain.watcher import ChainWatcher
from isoperp.demo import USDC, _deposit
from isoperp.devnet import devnet_account, rpc
from isoperp.ledger.transitions import PlaceOrder
from isoperp.protocol.constants import TIF_IOC
from isoperp.protocol.signing import sign_request
from isoperp.service.operator import OperatorService


def reorg(system, depth, txs=()):
    """Replaces the newest ``depth`` blocks; ``txs``: (raw signed tx, block offset) to re-mine."""
    url = system.deployment.rpc_url
    rpc(url, "anvil_reorg", [depth, [["0x" + raw.hex(), offset] for raw, offset in txs]])


def raw_tx(system, tx_hash):
    url = system.deployment.rpc_url
    return bytes.fromhex(rpc(url, "eth_getRawTransactionByHash", [tx_hash])[2:])


def assert_matches_l1(service, system):
    ledger, checkpoints = rebuild(system)
    assert service.ledger.state_root == ledger.state_root
    assert [c.header.hash for c in service.checkpoints] == [c.header.hash for c in checkpoints]


def test_watcher_follows_a_reorg_on_anvil(own_system):
    system = own_system
    alice = devnet_account(1)
    watcher = ChainWatcher.for_system(system, log_range=3)
    _deposit(system, alice, 1 * USDC)
    _deposit(system, alice, 2 * USDC)
    assert [d.amount for d in watcher.poll().deposits] == [1 * USDC, 2 * USDC]
    reorg(system, 1)  # the block of the second deposit is replaced by an empty one
    update = watcher.poll()
    assert update.reorg is not None and [d.amount for d in update.reorg.deposits] == [2 * USDC]
    assert [d.amount for d in watcher.deposits] == [1 * USDC]
    _deposit(system, alice, 3 * USDC)
    assert [(d.index, d.amount) for d in watcher.poll().deposits] == [(1, 3 * USDC)]


def test_dropped_checkpoint_is_rolled_back_and_its_withdrawal_posted_again(own_system, inbox):
    system = own_system
    alice = devnet_account(1)
    _deposit(system, alice, 100 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    inbox.submit(signed_withdraw(system, alice, 0, 40 * USDC, 0))
    assert service.run_once().posted.header.seq == 2
    (entry,) = inbox.all()
    assert (entry.status, entry.seq) == ("included", 2)
    dropped = service.checkpoints[-1].header.hash

    reorg(system, 1)  # checkpoint 2's block is gone, and its transaction with it
    report = service.run_once()
    assert service.reorgs == 1
    assert report.posted is not None and report.posted.header.seq == 2
    # Rebuilt from the same journal on the same state: the same checkpoint, posted again.
    assert report.posted.header.hash == dropped
    assert report.requests == 1
    (entry,) = inbox.all()
    assert (entry.status, entry.seq, entry.slot) == ("included", 2, 0)
    assert service.ledger.account(0).collateral == 60 * USDC
    assert_matches_l1(service, system)
    assert service.run_once().posted is None  # nothing left to post


def test_checkpoint_mined_again_after_a_reorg_is_adopted_not_rivalled(own_system, inbox):
    system = own_system
    alice = devnet_account(1)
    _deposit(system, alice, 100 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    inbox.submit(signed_withdraw(system, alice, 0, 25 * USDC, 0))
    report = service.run_once()
    raw = raw_tx(system, report.tx_hash)
    posted = service.checkpoints[-1].header.hash

    rpc(system.deployment.rpc_url, "evm_mine")
    reorg(system, 2, [(raw, 1)])  # the same transaction, one block later
    again = service.run_once()
    assert service.reorgs == 1
    assert again.posted is None, "the checkpoint came back: nothing to post"
    assert service.checkpoints[-1].header.hash == posted
    (entry,) = inbox.all()
    assert (entry.status, entry.seq, entry.slot) == ("included", 2, 0)
    assert_matches_l1(service, system)
    # The signer's nonce followed the chain: the next checkpoint goes through.
    inbox.submit(signed_withdraw(system, alice, 0, 5 * USDC, 1))
    assert service.run_once().posted.header.seq == 3


def test_reorged_fills_are_matched_again(own_system, inbox):
    system = own_system
    service, alice, bob = two_traders(system, inbox)
    sell = PlaceOrder(0, 0, False, 600_000, 10_000, 0, 0, 1, 0, b"")
    buy = PlaceOrder(1, 0, True, 600_000, 4_000, TIF_IOC, 0, 1, 0, b"")
    inbox.submit(sign_request(bytes(alice.key), system.domain, sell))
    inbox.submit(sign_request(bytes(bob.key), system.domain, buy))
    assert service.run_once().posted.header.seq == 3

    reorg(system, 1)
    report = service.run_once()
    assert report.posted is not None and report.posted.header.seq == 3
    orders = {e.request.account_id: e for e in inbox.all() if isinstance(e.request, PlaceOrder)}
    assert (orders[0].status, orders[0].filled) == ("open", 4_000)
    assert (orders[1].status, orders[1].filled) == ("filled", 4_000)
    assert service.ledger.position(1, 0).size == 4_000
    assert_matches_l1(service, system)


def test_reorg_that_drops_a_deposit_and_its_checkpoint(own_system, inbox):
    system = own_system
    alice, bob = devnet_account(1), devnet_account(2)
    _deposit(system, alice, 100 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    _deposit(system, bob, 50 * USDC)
    assert service.run_once().deposits == 1
    reorg(system, 2)  # bob's deposit and the checkpoint that credited it
    report = service.run_once()
    assert report.posted is None and report.deposits == 0
    assert service.ledger.account_id_of(bob.address) is None
    assert len(service.checkpoints) == 1
    assert_matches_l1(service, system)


def test_reorg_while_the_operator_is_down_reposts_on_restart(own_system, inbox):
    system = own_system
    alice = devnet_account(1)
    _deposit(system, alice, 100 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    inbox.submit(signed_withdraw(system, alice, 0, 40 * USDC, 0))
    assert service.run_once().posted.header.seq == 2
    del service  # the operator stops; checkpoint 2 leaves the chain while it is down
    reorg(system, 1)
    system = System(
        ChainClient(connect(system.deployment.rpc_url), devnet_account(0)), system.deployment
    )
    restarted = OperatorService(system, inbox)  # a new process: fresh client, fresh watcher
    report = restarted.run_once()
    assert report.posted is not None and report.posted.header.seq == 2 and report.requests == 1
    (entry,) = inbox.all()
    assert (entry.status, entry.seq) == ("included", 2)
    assert restarted.ledger.account(0).collateral == 60 * USDC
    assert_matches_l1(restarted, system)

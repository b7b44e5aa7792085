"""Gas of the settlement path, measured on a throwaway anvil with real transitions.

For each batch size N, two funded accounts with margin in BTC-USD trade N fills (account 1's buy
order takes from account 0's resting sell order; 400,000 USDC of margin covers every size) between
orders registered beforehand; the checkpoint carrying them is posted and its gas recorded. Deposit
and claim gas come from the same run. Contract gas for a post depends on the batch's bytes (the
contract hashes the calldata in 4,096-byte chunks; it does not parse it), so gas per fill is the
marginal cost of a 69-byte batch entry: the 37-byte FILL record and the 32-byte state root after
it (batch data v2 publishes the trace)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from isoperp.batch.builder import BatchBuilder
from isoperp.chain.client import ChainClient, Web3Deployer, connect
from isoperp.chain.contracts import System
from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.chain.l1 import latest_header
from isoperp.demo import USDC, _deposit, local_devnet
from isoperp.devnet import advance_time, devnet_account
from isoperp.ledger.transitions import Fill, MarginTransfer, PlaceOrder, Withdraw
from isoperp.protocol.batch import HEADER_BYTES
from isoperp.protocol.signing import request_digest, sign_digest, sign_request
from isoperp.service import claims
from isoperp.service.inbox import Inbox
from isoperp.service.operator import OperatorService

BTC = 0
BTC_PRICE = 600_000  # ticks of $0.10: $60,000


@dataclass
class GasReport:
    deposit: int = 0
    claim_withdrawal: int = 0
    checkpoint_empty: int = 0
    checkpoints: dict[int, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "deposit": self.deposit,
            "claim_withdrawal": self.claim_withdrawal,
            "checkpoint_empty": self.checkpoint_empty,
            "fills": {str(n): v for n, v in self.checkpoints.items()},
        }


def _signed_margin(system: System, who: int, account_id: int, nonce: int) -> MarginTransfer:
    user = devnet_account(who)
    unsigned = MarginTransfer(account_id, BTC, 400_000 * USDC, nonce, b"")
    sig = sign_digest(bytes(user.key), request_digest(system.domain, unsigned))
    return MarginTransfer(account_id, BTC, 400_000 * USDC, nonce, sig)


def _signed_order(system: System, who: int, account_id: int, is_buy: bool) -> PlaceOrder:
    """A huge GTC order at BTC_PRICE in slot ``is_buy`` (nonce 0: sell, 1: buy)."""
    order = PlaceOrder(account_id, BTC, is_buy, BTC_PRICE, 10**9, 0, 0, int(is_buy), 0, b"")
    return sign_request(bytes(devnet_account(who).key), system.domain, order)


def _post(service: OperatorService, builder: BatchBuilder) -> tuple[int, int]:
    system = service.system
    timestamp = int(system.client.w3.eth.get_block("latest")["timestamp"])
    sealed = builder.seal(timestamp=timestamp)
    fn = system.settlement.functions.postCheckpoint(sealed.header.as_abi_tuple(), sealed.data)
    receipt = system.client.transact(fn, context="postCheckpoint")
    service.sync()
    return int(receipt["gasUsed"]), len(sealed.data)


def measure(system: System, inbox: Inbox, sizes: tuple[int, ...]) -> GasReport:
    report = GasReport()
    report.deposit = _deposit(system, devnet_account(1), 1_000_000 * USDC)
    _deposit(system, devnet_account(2), 1_000_000 * USDC)
    service = OperatorService(system, inbox)
    service.run_once()
    builder = BatchBuilder(service.ledger.copy(), latest_header(system, service.checkpoints))
    builder.add(_signed_margin(system, 1, 0, 0))
    builder.add(_signed_margin(system, 2, 1, 0))
    builder.add(_signed_order(system, 1, 0, False))
    builder.add(_signed_order(system, 2, 1, True))
    _post(service, builder)
    empty = BatchBuilder(service.ledger.copy(), latest_header(system, service.checkpoints))
    report.checkpoint_empty, _ = _post(service, empty)
    for n in sizes:
        builder = BatchBuilder(service.ledger.copy(), latest_header(system, service.checkpoints))
        for _ in range(n):
            builder.add(
                Fill(
                    BTC,
                    maker_id=0,
                    maker_slot=0,  # account 0's sell order (nonce 0)
                    taker_id=1,
                    taker_slot=1,  # account 1's buy order (nonce 1)
                    size=1_000,
                    price=BTC_PRICE,
                    timestamp=0,
                )
            )
        gas, size = _post(service, builder)
        report.checkpoints[n] = {
            "gas": gas,
            "batch_bytes": size,
            "gas_per_fill": (gas - report.checkpoint_empty) // n,
            "bytes_per_fill": (size - HEADER_BYTES) // n,
        }
    alice = devnet_account(1)
    unsigned = Withdraw(0, alice.address, 1_000 * USDC, 1, b"")
    sig = sign_digest(bytes(alice.key), request_digest(system.domain, unsigned))
    inbox.submit(Withdraw(0, alice.address, 1_000 * USDC, 1, sig))
    service.run_once()
    advance_time(system.deployment.rpc_url, system.deployment.challenge_window + 1)
    (w,) = claims.withdrawal_statuses(system, service.checkpoints, recipient=alice.address)
    report.claim_withdrawal = claims.claim(
        System(ChainClient(system.client.w3, alice), system.deployment), w
    )
    return report


def run_gas_bench(sizes: tuple[int, ...], *, port: int) -> GasReport:
    with (
        tempfile.TemporaryDirectory(prefix="isoperp-bench-") as tmp,
        local_devnet(Path(tmp), port) as net,
    ):
        client = ChainClient(connect(net.url), devnet_account(0))
        deployment = deploy_system(Web3Deployer(client), DeployParams(), rpc_url=net.url)
        inbox = Inbox(Path(tmp) / "inbox.sqlite")
        try:
            return measure(System(client, deployment), inbox, sizes)
        finally:
            inbox.close()

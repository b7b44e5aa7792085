"""The end-to-end story `make demo` starts with: deposit -> checkpoint -> withdrawal -> finality ->
claim.

Runs against a deployed system on a devnet (time travel needs anvil). Every claim the story makes is
checked; a failed check raises DemoFailed, so `isoperp demo` exits non-zero. No printing here: the
caller passes a Narrator. The whole demo (this story, then a live market on the same devnet) is
``isoperp.demo_market.run_demo``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from eth_account.signers.local import LocalAccount

from isoperp.chain.artifacts import artifact
from isoperp.chain.client import ChainClient
from isoperp.chain.contracts import System
from isoperp.devnet import Devnet, advance_time, devnet_account
from isoperp.errors import ContractReverted, IsoperpError
from isoperp.ledger.transitions import Withdraw
from isoperp.protocol.signing import request_digest, sign_digest
from isoperp.service import claims
from isoperp.service.inbox import Inbox
from isoperp.service.operator import OperatorService
from isoperp.units import format_usdc

USDC = 10**6


class DemoFailed(IsoperpError):
    code = "demo_failed"


class Narrator(Protocol):
    def step(self, title: str) -> None: ...

    def info(self, text: str) -> None: ...

    def ok(self, text: str) -> None: ...


@dataclass
class DemoSummary:
    checkpoints: int = 0
    gas: dict[str, int] = field(default_factory=dict)
    vault_balance: int = 0
    liabilities: int = 0
    claimed: int = 0


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)


def expect_revert(action: Callable[[], object], error_name: str) -> ContractReverted:
    """Runs ``action``, which must revert with the custom error ``error_name``."""
    try:
        action()
    except ContractReverted as exc:
        check(exc.error_name == error_name, f"expected {error_name}, got {exc.message}")
        return exc
    raise DemoFailed(f"expected {error_name}, but the call succeeded")


@contextmanager
def shielded() -> Iterator[None]:
    """For teardown: a second Ctrl-C cannot cut it short (SIGINT is ignored meanwhile; signals
    are only handled on the main thread, elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def local_devnet(state_dir: Path, port: int) -> Iterator[Devnet]:
    """A fresh anvil for the duration of the block; always stopped afterwards (also on Ctrl-C)."""
    net = Devnet(port=port, state_dir=state_dir)
    net.up()
    try:
        yield net
    finally:
        with shielded():
            net.down()


def _deposit(system: System, user: LocalAccount, amount: int) -> int:
    client = ChainClient(system.client.w3, user)
    token = client.contract(system.deployment.token, artifact("MockUSDC").abi)
    vault = client.contract(system.deployment.vault, artifact("CollateralVault").abi)
    client.transact(token.functions.mint(user.address, amount), context="mint")
    client.transact(token.functions.approve(system.deployment.vault, amount), context="approve")
    receipt = client.transact(vault.functions.deposit(user.address, amount), context="deposit")
    return int(receipt["gasUsed"])


def run_story(system: System, inbox: Inbox, say: Narrator) -> DemoSummary:
    """The story on an already deployed system (its client signs as the operator)."""
    summary = DemoSummary()
    w3 = system.client.w3
    alice, bob = devnet_account(1), devnet_account(2)
    operator = OperatorService(system, inbox)
    window = system.deployment.challenge_window

    say.step("1. Two traders deposit USDC into the vault")
    summary.gas["deposit"] = _deposit(system, alice, 10_000 * USDC)
    _deposit(system, bob, 5_000 * USDC)
    say.info(f"alice {alice.address} deposits {format_usdc(10_000 * USDC)}")
    say.info(f"bob   {bob.address} deposits {format_usdc(5_000 * USDC)}")
    count = int(system.vault.functions.depositCount().call())
    check(count == 2, f"vault queue holds {count} deposits, expected 2")
    say.ok("both deposits are in the on-chain deposit queue (prefix-hash chain)")

    say.step("2. The operator batches them and posts checkpoint #1")
    report = operator.run_once()
    check(report.posted is not None and report.deposits == 2, "checkpoint #1 did not include both")
    assert report.posted is not None
    summary.gas["postCheckpoint (2 deposits)"] = report.gas_used
    say.info(f"state root 0x{report.posted.header.state_root.hex()}")
    say.info(f"batch data {len(report.posted.data)} bytes in calldata, gas {report.gas_used}")
    alice_id = operator.ledger.account_id_of(alice.address)
    check(alice_id is not None, "alice has no account after checkpoint #1")
    assert alice_id is not None
    account = operator.ledger.account(alice_id)
    check(account is not None and account.collateral == 10_000 * USDC, "alice's balance is wrong")
    say.ok(f"alice is account #{alice_id} with {format_usdc(10_000 * USDC)} free collateral")

    say.step("3. Alice asks the operator to withdraw 2,500 USDC (EIP-712 signed request)")
    amount = 2_500 * USDC
    unsigned = Withdraw(alice_id, alice.address, amount, 0, b"")
    sig = sign_digest(bytes(alice.key), request_digest(system.domain, unsigned))
    inbox.submit(Withdraw(alice_id, alice.address, amount, 0, sig))
    report = operator.run_once()
    check(
        report.posted is not None and report.posted.header.withdrawal_count == 1,
        "checkpoint #2 does not carry the withdrawal",
    )
    assert report.posted is not None
    seq = report.posted.header.seq
    summary.gas["postCheckpoint (1 withdrawal)"] = report.gas_used
    say.ok(
        f"checkpoint #{seq} includes it; withdrawals root 0x"
        f"{report.posted.header.withdrawals_root.hex()[:16]}…"
    )

    say.step("4. Claiming before the challenge window has passed is refused on-chain")
    mine = claims.withdrawal_statuses(system, operator.checkpoints, recipient=alice.address)
    check(len(mine) == 1 and not mine[0].finalized, "the withdrawal should be pending")
    alice_system = System(ChainClient(w3, alice), system.deployment)
    exc = expect_revert(lambda: claims.claim(alice_system, mine[0]), "Settlement_NotFinalized")
    say.ok(f"reverted with {exc.error_name}{exc.error_args}")

    say.step(f"5. Time travel: {window + 1}s later the checkpoint is final")
    advance_time(system.deployment.rpc_url, window + 1)
    check(bool(system.settlement.functions.isFinalized(seq).call()), "checkpoint not final")
    say.ok(
        f"checkpoint #{seq} finalized (lastFinalizedSeq = "
        f"{system.settlement.functions.lastFinalizedSeq().call()})"
    )

    say.step("6. Alice claims with a Merkle proof rebuilt from L1 calldata")
    wallet_before = int(system.token.functions.balanceOf(alice.address).call())
    mine = claims.withdrawal_statuses(system, operator.checkpoints, recipient=alice.address)
    summary.gas["claimWithdrawal"] = claims.claim(alice_system, mine[0])
    wallet_after = int(system.token.functions.balanceOf(alice.address).call())
    check(wallet_after - wallet_before == amount, "alice did not receive exactly her withdrawal")
    summary.claimed = amount
    say.ok(f"alice received {format_usdc(amount)} (gas {summary.gas['claimWithdrawal']})")
    exc = expect_revert(lambda: claims.claim(alice_system, mine[0]), "Settlement_AlreadyClaimed")
    say.ok(f"a second claim reverted with {exc.error_name}{exc.error_args}")

    say.step("7. The books balance")
    vault_balance = int(system.token.functions.balanceOf(system.deployment.vault).call())
    liabilities = operator.ledger.total_liabilities()
    summary.vault_balance, summary.liabilities = vault_balance, liabilities
    summary.checkpoints = len(operator.checkpoints)
    check(
        vault_balance == liabilities,
        f"vault holds {vault_balance}, off-chain balances sum to {liabilities}",
    )
    check(vault_balance + summary.claimed == 15_000 * USDC, "deposits != balances + claimed")
    say.ok(
        f"vault {format_usdc(vault_balance)} = off-chain balances {format_usdc(liabilities)}; "
        f"+ claimed {format_usdc(summary.claimed)} = deposits {format_usdc(15_000 * USDC)}"
    )
    return summary

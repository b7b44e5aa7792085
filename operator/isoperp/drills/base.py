"""Drill framework: each drill runs a fresh devnet scenario, keeps a timeline in chain time, and
fails (``DrillFailed``) the moment a property it checks does not hold.

A drill gets a ``DrillContext``: a fresh anvil with the system deployed (devnet parameters; the
genesis markets as the deployment published them on L1), the operator service, devnet traders
1..5, and helpers for what drills do (deposit, margin, trade, run the operator, time travel to an
exact second, expect a custom-error revert, escape from L1).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from isoperp.chain.artifacts import artifact
from isoperp.chain.client import ChainClient, Web3Deployer, connect
from isoperp.chain.contracts import System
from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.chain.genesis import DEFAULT_MARKETS, read_genesis
from isoperp.demo import USDC, local_devnet
from isoperp.devnet import devnet_account, rpc
from isoperp.errors import ContractReverted, IsoperpError
from isoperp.ledger.model import Market
from isoperp.ledger.transitions import MarginTransfer, PlaceOrder, PriceUpdate
from isoperp.protocol.constants import TIF_IOC
from isoperp.protocol.signing import sign_request
from isoperp.service.inbox import Inbox
from isoperp.service.operator import CycleReport, OperatorService

ORACLE_INDEX = 9


class DrillFailed(IsoperpError):
    """A property the drill checks does not hold."""

    code = "drill_failed"


@dataclass
class DrillResult:
    name: str
    passed: bool
    seconds: float
    timeline: list[tuple[int, str]] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    error: str | None = None


class DrillContext:
    """A deployed devnet and the moves a drill makes on it."""

    def __init__(
        self,
        url: str,
        state_dir: Path,
        say: Callable[[int, str], None],
        markets: Sequence[Market] = DEFAULT_MARKETS,
    ) -> None:
        self.url = url
        self.w3 = connect(url)
        self.operator_client = ChainClient(self.w3, devnet_account(0))
        self.deployment = deploy_system(
            Web3Deployer(self.operator_client), DeployParams(markets=tuple(markets)), rpc_url=url
        )
        self.markets = read_genesis(
            self.w3, self.deployment.settlement, block=self.deployment.deploy_block
        ).markets
        self.system = System(self.operator_client, self.deployment)
        self.inbox = Inbox(state_dir / "inbox.sqlite")
        self.operator = OperatorService(self.system, self.inbox)
        self._say = say
        self.start = self.now()
        self.facts: dict[str, object] = {}

    def mid(self, market_id: int) -> int:
        """The market's genesis mark price (ticks), as the deployment published it on L1."""
        for market in self.markets:
            if market.market_id == market_id:
                return market.mark_price
        raise DrillFailed(f"the deployment has no market {market_id}")

    # ---------------------------------------------------------------- time and narration

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def log(self, text: str) -> None:
        self._say(self.now() - self.start, text)

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise DrillFailed(message)
        self.log(f"ok: {message}")

    def advance(self, seconds: int) -> None:
        rpc(self.url, "evm_increaseTime", [seconds])
        rpc(self.url, "evm_mine")

    def set_next_time(self, timestamp: int) -> None:
        """The next block (the next transaction) happens exactly at ``timestamp``."""
        rpc(self.url, "evm_setNextBlockTimestamp", [timestamp])

    def at(self, timestamp: int) -> None:
        """Mine an empty block at exactly ``timestamp`` (so views and estimates see that time)."""
        rpc(self.url, "evm_mine", [timestamp])

    # ---------------------------------------------------------------- actors

    def user(self, i: int) -> LocalAccount:
        return devnet_account(i)

    def as_user(self, i: int) -> System:
        return System(ChainClient(self.w3, devnet_account(i)), self.deployment)

    def deposit(self, i: int, usdc: int) -> None:
        system = self.as_user(i)
        who = devnet_account(i).address
        amount = usdc * USDC
        system.client.transact(system.token.functions.mint(who, amount), context="mint")
        system.client.transact(
            system.token.functions.approve(self.deployment.vault, amount), context="approve"
        )
        system.client.transact(system.vault.functions.deposit(who, amount), context="deposit")

    def account_id(self, i: int) -> int:
        account_id = self.operator.ledger.account_id_of(devnet_account(i).address)
        if account_id is None:
            raise DrillFailed(f"trader {i} has no account")
        return account_id

    def margin(self, i: int, market_id: int, usdc: int) -> None:
        account = self.operator.ledger.account(self.account_id(i))
        assert account is not None
        nonce = self.inbox.next_request_nonce(account.account_id, account.nonce)
        request = MarginTransfer(account.account_id, market_id, usdc * USDC, nonce, b"")
        self.inbox.submit(sign_request(bytes(devnet_account(i).key), self.system.domain, request))

    def order(
        self,
        i: int,
        market_id: int,
        is_buy: bool,
        price: int,
        size: int,
        *,
        nonce: int,
        ioc: bool = False,
    ) -> None:
        order = PlaceOrder(
            self.account_id(i),
            market_id,
            is_buy,
            price,
            size,
            TIF_IOC if ioc else 0,
            0,
            nonce,
            0,
            b"",
        )
        self.inbox.submit(sign_request(bytes(devnet_account(i).key), self.system.domain, order))

    def oracle(self, market_id: int, price: int) -> None:
        market = self.operator.ledger.market(market_id)
        assert market is not None
        update = PriceUpdate(market_id, price, max(self.now(), market.mark_time + 1), b"")
        key = bytes(devnet_account(ORACLE_INDEX).key)
        self.inbox.submit(sign_request(key, self.system.domain, update))

    def cycle(self) -> CycleReport:
        report = self.operator.run_once()
        if report.posted is not None:
            h = report.posted.header
            self.log(
                f"operator posted checkpoint #{h.seq} ({len(report.posted.transitions)} records, "
                f"gas {report.gas_used:,})"
            )
        for request_id, reason in report.rejected:
            self.log(f"operator rejected request {request_id}: {reason}")
        return report

    def finalize(self) -> None:
        self.advance(self.deployment.challenge_window + 1)
        seq = self.system.settlement.functions.lastFinalizedSeq().call()
        self.log(f"{self.deployment.challenge_window + 1}s later: checkpoint #{seq} is final")

    def end_claim_window(self) -> None:
        """Moves time to the end of the claim window: registration closes, payouts open."""
        end = int(self.system.hatch.functions.claimWindowEnd().call())
        if self.now() < end:
            self.at(end)
        self.log("the claim window has ended: registered claims are paid from now on")

    def expect_revert(self, action: Callable[[], object], error_name: str) -> ContractReverted:
        try:
            action()
        except ContractReverted as exc:
            if exc.error_name != error_name:
                raise DrillFailed(f"expected {error_name}, got {exc.message}") from exc
            self.log(f"reverted as expected: {exc.message.split('reverted with ')[-1]}")
            return exc
        raise DrillFailed(f"expected {error_name}, but the call succeeded")

    def wallet(self, i: int) -> int:
        return int(self.system.token.functions.balanceOf(devnet_account(i).address).call())

    def vault_balance(self) -> int:
        return int(self.system.token.functions.balanceOf(self.deployment.vault).call())

    def snapshot(self) -> str:
        return str(rpc(self.url, "evm_snapshot"))

    def revert_to(self, snapshot: str) -> None:
        rpc(self.url, "evm_revert", [snapshot])

    def settlement_abi(self) -> object:
        return artifact("Settlement").abi


Scenario = Callable[[DrillContext], None]


@contextmanager
def _fresh(port: int) -> Iterator[tuple[str, Path]]:
    with (
        tempfile.TemporaryDirectory(prefix="isoperp-drill-") as tmp,
        local_devnet(Path(tmp), port) as net,
    ):
        yield net.url, Path(tmp)


def run_drill(
    name: str, scenario: Scenario, *, port: int, say: Callable[[int, str], None] | None = None
) -> DrillResult:
    """Runs one drill on its own fresh devnet; never raises for a failed property."""
    result = DrillResult(name=name, passed=False, seconds=0.0)
    started = time.monotonic()

    def record(offset: int, text: str) -> None:
        result.timeline.append((offset, text))
        if say is not None:
            say(offset, text)

    try:
        with _fresh(port) as (url, state_dir):
            ctx = DrillContext(url, state_dir, record)
            try:
                scenario(ctx)
            finally:
                ctx.inbox.close()
            result.facts = ctx.facts
            result.passed = True
    except IsoperpError as exc:
        result.error = f"{exc.code}: {exc.message}"
        record(result.timeline[-1][0] if result.timeline else 0, f"FAILED: {result.error}")
    result.seconds = time.monotonic() - started
    return result

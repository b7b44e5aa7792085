"""The escape hatch from the user's side, from L1 data alone (no operator, no operator database).

After a freeze, the state of the escape checkpoint (the last one finalized before the freeze) is
rebuilt by replaying the batch data of every checkpoint up to it from calldata; the proofs of
the user's account leaf, position leaves and their market leaves come from that rebuilt tree.
Then, on the EscapeHatch: ``proveMarket`` for each market not proven yet, ``escape`` (anyone may
submit: during the claim window it registers the value as the claim of the owner named by the
account leaf; after it, it is paid from the residual), ``refundDeposit`` for the owner's deposits
the checkpoint never included, finalized withdrawals are claimed as usual, and
``withdrawEscaped`` pulls the money: refunds at once, the registered claim (haircut against every
registered claim when they exceed the pool) once the claim window has ended."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from web3.logs import DISCARD

from isoperp.chain.contracts import System
from isoperp.chain.events import QueuedDeposit
from isoperp.chain.l1 import read_deposits, rebuild
from isoperp.errors import ConfigError
from isoperp.ledger import risk
from isoperp.ledger.ledger import Ledger
from isoperp.ledger.model import Account, Position
from isoperp.protocol.leaves import (
    account_index,
    market_index,
    position_index,
    solidity_struct,
)
from isoperp.service import claims

logger = logging.getLogger(__name__)

# Index of depositCursor in ISettlement.Checkpoint as web3 returns it (a tuple).
CHECKPOINT_DEPOSIT_CURSOR = 4


@dataclass(frozen=True, slots=True)
class EscapePlan:
    """What an owner can take out after a freeze, computed from L1 data."""

    seq: int
    account: Account | None
    positions: tuple[Position, ...]
    account_value: int
    position_values: tuple[int, ...]
    refunds: tuple[tuple[int, int, int], ...]  # (deposit index, amount, timestamp)
    escaped_leaves: frozenset[int] = field(default_factory=frozenset)

    @property
    def value(self) -> int:
        return self.account_value + sum(self.position_values)


def escape_ledger(system: System) -> tuple[int, Ledger]:
    """The escape checkpoint's sequence number and its ledger, rebuilt from L1."""
    settlement = system.settlement.functions
    hatch = system.hatch.functions
    if not hatch.isFrozen().call():
        raise ConfigError(
            "the exchange is not frozen: escapes open only after `isoperp freeze`",
            code="not_frozen",
        )
    seq = int(hatch.frozenSeq().call())
    ledger, _ = rebuild(system, until_seq=seq)
    stored = bytes(settlement.getCheckpoint(seq).call()[1])
    if ledger.state_root != stored:
        raise ConfigError("the rebuilt escape state does not match the escape root", code="rebuild")
    return seq, ledger


def plan(system: System, owner: str, seq: int, ledger: Ledger) -> EscapePlan:
    settlement = system.settlement.functions
    hatch = system.hatch.functions
    account_id = ledger.account_id_of(owner)
    account = ledger.account(account_id) if account_id is not None else None
    positions: tuple[Position, ...] = ()
    values: tuple[int, ...] = ()
    escaped = set()
    if account is not None:
        if hatch.isEscaped(account_index(account.account_id)).call():
            escaped.add(account_index(account.account_id))
        positions = tuple(ledger.positions(account_id=account.account_id))
        for p in positions:
            if hatch.isEscaped(position_index(p.account_id, p.market_id)).call():
                escaped.add(position_index(p.account_id, p.market_id))
        values = tuple(
            risk.escape_value(p, ledger.market(p.market_id))  # type: ignore[arg-type]
            for p in positions
        )
    cursor = int(settlement.getCheckpoint(seq).call()[4])
    refunds = tuple(
        (d.index, d.amount, d.timestamp)
        for d in read_deposits(system, from_index=cursor)
        if d.owner.lower() == owner.lower() and not hatch.isRefunded(d.index).call()
    )
    return EscapePlan(
        seq,
        account,
        positions,
        account.collateral if account else 0,
        values,
        refunds,
        frozenset(escaped),
    )


@dataclass
class EscapeResult:
    registered: int = 0  # value registered during the claim window (paid after it)
    credited: int = 0  # paid from the residual by an escape after the window
    refunded: int = 0
    claimed: int = 0
    withdrawn: int = 0
    window_end: int = 0  # frozenAt + claimWindow
    waiting: int = 0  # registered, not yet withdrawable (the window is open)
    gas: dict[str, int] = field(default_factory=dict)


def window_open(system: System) -> bool:
    """Whether the claim window is still open at the latest block."""
    end = int(system.hatch.functions.claimWindowEnd().call())
    now = int(system.client.w3.eth.get_block("latest")["timestamp"])
    return now < end


def withdraw(system: System, owner: str, result: EscapeResult) -> None:
    """``withdrawEscaped`` for ``owner`` (the client's signer) if anything is withdrawable now."""
    fns = system.hatch.functions
    credit = int(fns.creditOf(owner).call())
    registered = int(fns.registeredOf(owner).call())
    is_open = window_open(system)
    if not credit and (not registered or is_open):
        result.waiting = registered
        return
    amount = int(fns.owedTo(owner).call()) if not is_open else credit
    receipt = system.client.transact(fns.withdrawEscaped(), context="withdrawEscaped")
    result.gas["withdrawEscaped"] = int(receipt["gasUsed"])
    result.withdrawn += amount
    result.waiting = registered if is_open else 0


def execute(system: System, owner: str, *, pay: bool = True) -> tuple[EscapePlan, EscapeResult]:
    """Escapes ``owner`` (the client's signer pays gas; payouts go to ``owner``)."""
    seq, ledger = escape_ledger(system)
    p = plan(system, owner, seq, ledger)
    result = EscapeResult()
    fns = system.hatch.functions
    result.window_end = int(fns.claimWindowEnd().call())
    client = system.client
    if p.account is not None:
        todo = [
            pos
            for pos in p.positions
            if position_index(pos.account_id, pos.market_id) not in p.escaped_leaves
        ]
        for market_id in sorted({pos.market_id for pos in todo}):
            if not fns.escapeMarket(market_id).call()[3]:
                market = ledger.market(market_id)
                assert market is not None
                receipt = client.transact(
                    fns.proveMarket(solidity_struct(market), ledger.proof(market_index(market_id))),
                    context=f"proveMarket {market_id}",
                )
                result.gas[f"proveMarket {market_id}"] = int(receipt["gasUsed"])
        account_leaf = account_index(p.account.account_id)
        if todo or account_leaf not in p.escaped_leaves:
            witnesses = [
                (solidity_struct(pos), ledger.proof(position_index(pos.account_id, pos.market_id)))
                for pos in todo
            ]
            before = (int(fns.registeredOf(owner).call()), int(fns.creditOf(owner).call()))
            receipt = client.transact(
                fns.escape(solidity_struct(p.account), ledger.proof(account_leaf), witnesses),
                context="escape",
            )
            result.gas[f"escape ({len(todo)} positions)"] = int(receipt["gasUsed"])
            result.registered = int(fns.registeredOf(owner).call()) - before[0]
            result.credited = int(fns.creditOf(owner).call()) - before[1]
    for index, amount, timestamp in p.refunds:
        receipt = client.transact(
            fns.refundDeposit(index, owner, amount, timestamp), context=f"refundDeposit {index}"
        )
        result.gas["refundDeposit"] = int(receipt["gasUsed"])
        result.refunded += amount
    _, checkpoints = rebuild(system)
    for w in claims.withdrawal_statuses(system, checkpoints, recipient=owner):
        if w.finalized and not w.claimed:
            result.gas["claimWithdrawal"] = claims.claim(system, w)
            result.claimed += w.leaf.amount
    if pay and client.account is not None and client.address.lower() == owner.lower():
        withdraw(system, owner, result)
    return p, result


# ---------------------------------------------------------------- freeze

FREEZE_FORCED_REQUEST_OVERDUE = 1
FREEZE_LIVENESS = 2
FREEZE_DEPOSIT_OVERDUE = 3
FREEZE_REASONS = {
    FREEZE_FORCED_REQUEST_OVERDUE: "a forced request is overdue",
    FREEZE_LIVENESS: "nothing finalized within the liveness timeout",
    FREEZE_DEPOSIT_OVERDUE: "a deposit stayed unincluded past the forced deadline",
}


@dataclass(frozen=True, slots=True)
class PendingDeposit:
    """The oldest deposit the latest posted checkpoint left out, and its inclusion deadline."""

    deposit: QueuedDeposit
    deadline: int  # timestamp + forcedDeadline: from this second on, freezeForDeposit is allowed


@dataclass(frozen=True, slots=True)
class FreezeOutcome:
    reason: int
    seq: int  # the escape checkpoint
    gas: int


def oldest_unincluded_deposit(system: System) -> PendingDeposit | None:
    """The vault's queue entry at the latest posted checkpoint's depositCursor (the one
    ``freezeForDeposit`` checks), from the vault's Deposited events; None if every deposit is
    included."""
    s = system.settlement.functions
    cursor = int(s.getCheckpoint(s.latestSeq().call()).call()[CHECKPOINT_DEPOSIT_CURSOR])
    pending = read_deposits(system, from_index=cursor)
    if not pending:
        return None
    d = pending[0]
    return PendingDeposit(d, d.timestamp + system.deployment.forced_deadline)


def freeze(system: System) -> FreezeOutcome:
    """Freezes the exchange: ``freezeForDeposit`` (reason 3) when the oldest unincluded deposit is
    overdue at the latest block (the next block is never earlier), else ``freeze`` (reasons 1, 2;
    the contract decides and reverts if neither holds)."""
    fns = system.hatch.functions
    now = int(system.client.w3.eth.get_block("latest")["timestamp"])
    pending = oldest_unincluded_deposit(system)
    if pending is not None and pending.deadline <= now:
        d = pending.deposit
        logger.info("deposit %d is overdue since %d: freezeForDeposit", d.index, pending.deadline)
        call = fns.freezeForDeposit(d.owner, d.amount, d.timestamp)
        receipt = system.client.transact(call, context="freezeForDeposit")
    else:
        receipt = system.client.transact(fns.freeze(), context="freeze")
    events = system.hatch.events.Frozen().process_receipt(receipt, errors=DISCARD)
    args = events[0]["args"]
    return FreezeOutcome(int(args["reason"]), int(args["seq"]), int(receipt["gasUsed"]))

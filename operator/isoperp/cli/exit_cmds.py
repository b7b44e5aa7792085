"""`isoperp force-withdraw|force-exit|freeze|exits status|escape`: out without the operator."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table
from web3.logs import DISCARD
from web3.types import TxReceipt

from isoperp.chain.contracts import System
from isoperp.chain.l1 import read_forced_requests, rebuild
from isoperp.cli.context import CliState, resolve_signer
from isoperp.cli.exchange_cmds import account_option, key_option
from isoperp.errors import ConfigError
from isoperp.exchange.instruments import by_id, instrument
from isoperp.service import escape as escape_service
from isoperp.units import format_usdc, parse_usdc

console = Console()
KINDS = {1: "withdrawal", 2: "exit"}


def _account_id(state: CliState, owner: str) -> int:
    ledger, _ = rebuild(state.system())
    account_id = ledger.account_id_of(owner)
    if account_id is None:
        raise ConfigError(f"{owner} has no exchange account", code="unknown_account")
    return account_id


@click.command("force-withdraw")
@click.argument("amount")
@account_option
@key_option
@click.pass_obj
def force_withdraw(
    state: CliState, amount: str, account_index: int | None, key: str | None
) -> None:
    """Ask on-chain for a withdrawal of AMOUNT USDC of free collateral (when the operator censors
    you). The operator must serve it before its deadline, or anyone may freeze the exchange."""
    value = parse_usdc(amount)
    if value == 0:
        raise ConfigError("the amount must be positive", code="bad_amount")
    signer = resolve_signer(account_index, key, default_index=1)
    account_id = _account_id(state, signer.address)
    system = state.system(signer)
    fee = int(system.hatch.functions.forcedRequestFee().call())
    receipt = system.client.transact(
        system.hatch.functions.requestForcedWithdrawal(account_id, value),
        value=fee,
        context="requestForcedWithdrawal",
    )
    _queued(system, receipt, f"forced withdrawal of {format_usdc(value)}")


@click.command("force-exit")
@click.argument("market")
@account_option
@key_option
@click.pass_obj
def force_exit(state: CliState, market: str, account_index: int | None, key: str | None) -> None:
    """Ask on-chain to close your MARKET position at the mark price and withdraw its margin."""
    inst = instrument(market)
    signer = resolve_signer(account_index, key, default_index=1)
    account_id = _account_id(state, signer.address)
    system = state.system(signer)
    fee = int(system.hatch.functions.forcedRequestFee().call())
    receipt = system.client.transact(
        system.hatch.functions.requestForcedExit(account_id, inst.market_id),
        value=fee,
        context="requestForcedExit",
    )
    _queued(system, receipt, f"forced exit of {inst.symbol}")


def _queued(system: System, receipt: TxReceipt, what: str) -> None:
    event = system.hatch.events.ForcedRequested().process_receipt(receipt, errors=DISCARD)
    args = event[0]["args"]
    deadline = args["timestamp"] + system.deployment.forced_deadline
    console.print(
        f"{what} queued as forced request #{args['index']} (gas {receipt['gasUsed']}); "
        f"the operator must serve it by {deadline} (unix time), else anyone may freeze"
    )


@click.command()
@account_option
@key_option
@click.pass_obj
def freeze(state: CliState, account_index: int | None, key: str | None) -> None:
    """Freeze the exchange for good (allowed once a forced request is overdue, a deposit stayed
    unincluded past the forced deadline, or nothing has finalized within the liveness timeout).
    An overdue deposit is used automatically (freezeForDeposit). Escapes open against the last
    finalized checkpoint."""
    system = state.system(resolve_signer(account_index, key, default_index=1))
    outcome = escape_service.freeze(system)
    reason = escape_service.FREEZE_REASONS.get(outcome.reason, "?")
    console.print(
        f"exchange frozen (reason {outcome.reason}: {reason}; gas {outcome.gas}); "
        f"escapes use checkpoint #{outcome.seq}"
    )


@click.group()
def exits() -> None:
    """Forced requests, freeze state, and what each user can claim."""


@exits.command("status")
@click.option("--address", default=None, help="Also show what this address can take out.")
@click.pass_obj
def exits_status(state: CliState, address: str | None) -> None:
    """Pending forced requests and deadlines, the freeze, and claimable amounts."""
    system = state.system()
    fns = system.hatch.functions
    w3 = system.client.w3
    now = int(w3.eth.get_block("latest")["timestamp"])
    sfns = system.settlement.functions
    latest = sfns.getCheckpoint(sfns.latestSeq().call()).call()
    served = int(latest[5])
    table = Table(
        "#",
        "kind",
        "account",
        "market",
        "amount",
        "requested",
        "deadline in",
        "state",
        title="forced requests",
    )
    for f in read_forced_requests(system):
        deadline = f.timestamp + system.deployment.forced_deadline
        state_text = (
            "served" if f.index < served else ("[red]overdue[/]" if now >= deadline else "pending")
        )
        table.add_row(
            str(f.index),
            KINDS.get(f.kind, "?"),
            str(f.account_id),
            by_id(f.market_id).symbol if f.kind == 2 else "-",
            format_usdc(f.amount) if f.kind == 1 else "-",
            f"{now - f.timestamp}s ago",
            "-" if f.index < served else f"{deadline - now}s",
            state_text,
        )
    console.print(table)
    forced_at, liveness_at = fns.freezableAt().call()
    pending = escape_service.oldest_unincluded_deposit(system)
    if pending is not None:
        d = pending.deposit
        due = "overdue" if now >= pending.deadline else f"in {pending.deadline - now}s"
        console.print(
            f"oldest unincluded deposit #{d.index} ({format_usdc(d.amount)} for {d.owner}): "
            f"inclusion deadline {pending.deadline} ({due})"
        )
    if fns.isFrozen().call():
        end = int(fns.claimWindowEnd().call())
        window = (
            f"claims register until {end} (in {end - now}s) and are paid after it"
            if now < end
            else "the claim window has ended: registered claims are paid, late escapes get "
            "only the residual"
        )
        console.print(
            f"[bold red]frozen[/] at {fns.frozenAt().call()}; escapes use checkpoint "
            f"#{fns.frozenSeq().call()}; {window}"
        )
    else:
        parts = [f"liveness freeze possible in {max(0, liveness_at - now)}s"]
        if forced_at != 2**64 - 1:  # type(uint64).max: nothing pending
            parts.append(f"forced-request freeze possible in {max(0, forced_at - now)}s")
        if pending is not None:
            parts.append(f"deposit freeze possible in {max(0, pending.deadline - now)}s")
        console.print("not frozen; " + "; ".join(parts))
    if address and fns.isFrozen().call():
        seq, ledger = escape_service.escape_ledger(system)
        p = escape_service.plan(system, w3.to_checksum_address(address), seq, ledger)
        console.print(
            f"{address}: escape value {format_usdc(p.value)} "
            f"(free {format_usdc(p.account_value)}, positions "
            f"{', '.join(format_usdc(v) for v in p.position_values) or 'none'}), "
            f"refundable deposits {format_usdc(sum(r[1] for r in p.refunds))}"
        )


@click.command()
@click.option(
    "--for",
    "owner",
    default=None,
    help="Escape on behalf of this owner (paid to the owner); default: yourself.",
)
@account_option
@key_option
@click.pass_obj
def escape(state: CliState, owner: str | None, account_index: int | None, key: str | None) -> None:
    """After a freeze: rebuild the state from L1 alone, prove your account and positions, escape,
    refund unincluded deposits, claim finalized withdrawals, and withdraw it all."""
    signer = resolve_signer(account_index, key, default_index=1)
    system = state.system(signer)
    who = system.client.w3.to_checksum_address(owner) if owner else signer.address
    with console.status("rebuilding the escape checkpoint's state from L1 calldata..."):
        p, r = escape_service.execute(system, who)
    console.print(f"escape checkpoint #{p.seq}; {who}")
    if not (r.registered or r.credited or r.refunded or r.claimed or r.withdrawn or r.waiting):
        console.print("nothing left to escape, refund, claim or withdraw")
        return
    console.print(f"  free collateral {format_usdc(p.account_value)}")
    for pos, value in zip(p.positions, p.position_values, strict=True):
        console.print(
            f"  {by_id(pos.market_id).symbol} position {by_id(pos.market_id).size(pos.size)}"
            f": worth {format_usdc(value)}"
        )
    console.print(
        f"registered {format_usdc(r.registered)}, late credit {format_usdc(r.credited)}, "
        f"refunded {format_usdc(r.refunded)}, claimed {format_usdc(r.claimed)}, "
        f"withdrawn to wallet {format_usdc(r.withdrawn)}"
    )
    if r.waiting:
        console.print(
            f"claim window open until {r.window_end}: {format_usdc(r.waiting)} registered is paid "
            "after it (in full, or pro rata if the registered claims exceed the escape pool); "
            "run `isoperp escape` again then"
        )
    for name, gas in r.gas.items():
        console.print(f"  gas {name}: {gas:,}")

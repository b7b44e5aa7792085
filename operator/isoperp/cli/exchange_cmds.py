"""`isoperp deploy|deposit|withdraw|claim|status`."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from web3.logs import DISCARD

from isoperp.chain.client import ChainClient, Web3Deployer, connect
from isoperp.chain.contracts import System
from isoperp.chain.deploy import DeployParams, deploy_system
from isoperp.chain.genesis import DEFAULT_MARKETS, load_markets
from isoperp.chain.l1 import PostedCheckpoint, rebuild
from isoperp.cli.context import CliState, require_devnet, resolve_signer
from isoperp.devnet import DEFAULT_HOST, DEFAULT_PORT
from isoperp.errors import ConfigError
from isoperp.ledger.transitions import Withdraw
from isoperp.protocol.signing import request_digest, sign_digest
from isoperp.service import claims
from isoperp.units import format_usdc, parse_units, parse_usdc

console = Console()

account_option = click.option(
    "--account",
    "account_index",
    type=int,
    default=None,
    help="Devnet test account index to act as (see `isoperp devnet accounts`).",
)
key_option = click.option(
    "--key",
    default=None,
    envvar="ISOPERP_PRIVATE_KEY",
    show_envvar=True,
    help="Private key to act with (hex) instead of a devnet account.",
)


@click.command()
@click.option(
    "--rpc", "rpc_url", default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}", show_default=True
)
@click.option(
    "--challenge-window",
    type=click.IntRange(min=1),
    default=600,
    show_default=True,
    help="Seconds before a checkpoint is final (production: 604800).",
)
@click.option("--min-bond", default="1", show_default=True, help="Minimum operator bond, in ETH.")
@click.option("--bond", default="1", show_default=True, help="Bond the operator posts now, in ETH.")
@click.option("--token", default=None, help="Collateral token address (default: deploy MockUSDC).")
@click.option(
    "--markets",
    "markets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Genesis markets: a .json or .toml market file (default: the devnet markets).",
)
@account_option
@key_option
@click.pass_obj
def deploy(
    state: CliState,
    rpc_url: str,
    challenge_window: int,
    min_bond: str,
    bond: str,
    token: str | None,
    markets_file: Path | None,
    account_index: int | None,
    key: str | None,
) -> None:
    """Deploy the system and write the deployment file the other commands read.

    The genesis markets are published on L1 (the Settlement's GenesisMarketsListed event), so
    anyone can rebuild the genesis state from the chain alone. A market file lists them as
    ``[[markets]]`` tables (TOML) or ``{"markets": [...]}`` (JSON) with the keys marketId,
    symbol (optional), markPrice, imfPpm, mmfPpm, notionalExp, makerFeePpm, takerFeePpm,
    minSize, sizeStep and priceTick."""
    markets = DEFAULT_MARKETS if markets_file is None else load_markets(markets_file)
    signer = resolve_signer(account_index, key, default_index=0)
    client = ChainClient(connect(rpc_url), signer)
    params = DeployParams(
        challenge_window=challenge_window,
        min_bond=parse_units(min_bond, 18, what="min bond"),
        bond=parse_units(bond, 18, what="bond"),
        token=token,
        markets=markets,
    )
    with console.status("deploying..."):
        deployment = deploy_system(Web3Deployer(client), params, rpc_url=rpc_url)
    deployment.save(state.deployment_path)
    table = Table("contract", "address", title=f"deployed on chain {deployment.chain_id}")
    table.add_row("Settlement", deployment.settlement)
    table.add_row("CollateralVault", deployment.vault)
    table.add_row("EscapeHatch", deployment.escape_hatch)
    table.add_row("DisputeGame", deployment.disputes)
    table.add_row("collateral token", deployment.token)
    table.add_row("operator", deployment.operator)
    console.print(table)
    console.print(
        f"genesis markets: {', '.join(m.symbol or str(m.market_id) for m in markets)}; "
        f"genesis root {deployment.genesis_state_root}"
    )
    console.print(f"challenge window {challenge_window}s; deployment file {state.deployment_path}")


@click.command()
@click.argument("amount")
@click.option(
    "--to", "owner", default=None, help="Exchange account owner to credit (default: you)."
)
@click.option(
    "--mint/--no-mint",
    default=True,
    show_default=True,
    help="Devnet: mint the missing MockUSDC first.",
)
@account_option
@key_option
@click.pass_obj
def deposit(
    state: CliState,
    amount: str,
    owner: str | None,
    mint: bool,
    account_index: int | None,
    key: str | None,
) -> None:
    """Deposit AMOUNT USDC (e.g. 1000 or 12.5) into the vault's deposit queue."""
    value = parse_usdc(amount)
    if value == 0:
        raise ConfigError("the amount must be positive", code="bad_amount")
    signer = resolve_signer(account_index, key, default_index=1)
    system = state.system(signer)
    client = system.client
    owner = client.w3.to_checksum_address(owner) if owner else signer.address
    balance = int(system.token.functions.balanceOf(signer.address).call())
    if balance < value:
        if not mint:
            raise ConfigError(
                f"wallet holds {format_usdc(balance)}, needs {format_usdc(value)}",
                code="insufficient_funds",
            )
        require_devnet(system, "minting MockUSDC")
        client.transact(
            system.token.functions.mint(signer.address, value - balance), context="mint"
        )
    client.transact(
        system.token.functions.approve(system.deployment.vault, value), context="approve"
    )
    receipt = client.transact(system.vault.functions.deposit(owner, value), context="deposit")
    event = system.vault.events.Deposited().process_receipt(receipt, errors=DISCARD)[0]["args"]
    console.print(
        f"deposit #{event['index']} queued: {format_usdc(event['amount'])} for {owner} "
        f"(gas {receipt['gasUsed']}); the operator includes it in its next checkpoint"
    )


@click.command()
@click.argument("amount")
@click.option("--recipient", default=None, help="L1 address paid on claim (default: you).")
@account_option
@key_option
@click.pass_obj
def withdraw(
    state: CliState, amount: str, recipient: str | None, account_index: int | None, key: str | None
) -> None:
    """Ask the operator to withdraw AMOUNT USDC of free collateral (a signed request)."""
    value = parse_usdc(amount)
    signer = resolve_signer(account_index, key, default_index=1)
    system = state.system()
    ledger, _ = rebuild(system)
    account_id = ledger.account_id_of(signer.address)
    if account_id is None:
        raise ConfigError(
            f"{signer.address} has no exchange account yet (deposit first)", code="unknown_account"
        )
    account = ledger.account(account_id)
    assert account is not None
    inbox = state.inbox()
    nonce = inbox.next_request_nonce(account_id, account.nonce)
    if not 0 < value <= account.collateral:
        raise ConfigError(
            f"free collateral is {format_usdc(account.collateral)} at the latest checkpoint; "
            f"cannot withdraw {format_usdc(value)}",
            code="insufficient_collateral",
        )
    to = system.client.w3.to_checksum_address(recipient) if recipient else signer.address
    unsigned = Withdraw(account_id, to, value, nonce, b"")
    signature = sign_digest(bytes(signer.key), request_digest(system.domain, unsigned))
    request_id = inbox.submit(Withdraw(account_id, to, value, nonce, signature))
    console.print(
        f"withdrawal request {request_id} accepted: {format_usdc(value)} from account {account_id} "
        f"to {to} (nonce {nonce}); claimable once its checkpoint is final"
    )


@click.command()
@click.option(
    "--seq", type=int, default=None, help="Only withdrawals this checkpoint added."
)
@click.option(
    "--index", type=int, default=None, help="Only this withdrawal (global withdrawals-tree index)."
)
@account_option
@key_option
@click.pass_obj
def claim(
    state: CliState, seq: int | None, index: int | None, account_index: int | None, key: str | None
) -> None:
    """Claim your finalized withdrawals on L1 (proofs against the newest finalized checkpoint,
    rebuilt from L1 data)."""
    signer = resolve_signer(account_index, key, default_index=1)
    system = state.system(signer)
    _, checkpoints = rebuild(system)
    mine = [
        w
        for w in claims.withdrawal_statuses(system, checkpoints, recipient=signer.address)
        if (seq is None or w.added_seq == seq) and (index is None or w.index == index)
    ]
    if (seq is not None or index is not None) and not mine:
        where = f"in checkpoint {seq}" if index is None else f"with index {index}"
        raise ConfigError(f"no withdrawal to {signer.address} {where}", code="not_found")
    todo = [w for w in mine if not w.claimed]
    if not todo:
        console.print("nothing to claim")
        return
    now = int(system.client.w3.eth.get_block("latest")["timestamp"])
    if seq is None and index is None:
        pending = [w for w in todo if not w.finalized]
        for w in pending:
            console.print(
                f"checkpoint {w.seq}: {format_usdc(w.leaf.amount)} final in "
                f"{max(0, w.finalizes_at - now)}s"
            )
        todo = [w for w in todo if w.finalized]
    for w in todo:
        gas = claims.claim(system, w)
        console.print(
            f"claimed {format_usdc(w.leaf.amount)} from checkpoint {w.seq} "
            f"(withdrawal {w.index}, gas {gas})"
        )


@click.command()
@click.option("--address", default=None, help="Show this address's balances.")
@account_option
@click.pass_obj
def status(state: CliState, address: str | None, account_index: int | None) -> None:
    """Checkpoints (age, time to finality), balances, and pending requests."""
    system = state.system()
    ledger, checkpoints = rebuild(system)
    w3 = system.client.w3
    now = int(w3.eth.get_block("latest")["timestamp"])
    _checkpoint_table(system, checkpoints, now)
    if address is None:
        address = resolve_signer(account_index, None, default_index=1).address
    address = w3.to_checksum_address(address)
    account_id = ledger.account_id_of(address)
    account = ledger.account(account_id) if account_id is not None else None
    wallet = int(system.token.functions.balanceOf(address).call())
    vault_balance = int(system.token.functions.balanceOf(system.deployment.vault).call())
    table = Table("", "value", title=f"balances of {address}")
    table.add_row("wallet", format_usdc(wallet))
    table.add_row("exchange account", "none" if account is None else f"#{account.account_id}")
    if account is not None:
        table.add_row("free collateral (latest checkpoint)", format_usdc(account.collateral))
    mine = claims.withdrawal_statuses(system, checkpoints, recipient=address)
    for w in mine:
        state_text = (
            "claimed"
            if w.claimed
            else ("claimable" if w.finalized else f"final in {max(0, w.finalizes_at - now)}s")
        )
        table.add_row(
            f"withdrawal {w.index} (checkpoint {w.added_seq})",
            f"{format_usdc(w.leaf.amount)} ({state_text})",
        )
    table.add_row("vault holds", format_usdc(vault_balance))
    console.print(table)
    pending = state.inbox().pending()
    if pending:
        console.print(f"{len(pending)} request(s) waiting for the operator's next checkpoint")


def _checkpoint_table(system: System, checkpoints: list[PostedCheckpoint], now: int) -> None:
    table = Table(
        "seq",
        "posted",
        "transitions",
        "withdrawals",
        "deposits incl.",
        "finality",
        title=f"checkpoints (operator {system.deployment.operator[:10]}…)",
    )
    for cp in checkpoints[-10:]:
        posted = system.client.w3.eth.get_block(cp.block)["timestamp"]
        remaining = cp.finalizes_at - now
        finality = "[green]final[/]" if remaining <= 0 else f"[yellow]in {remaining}s[/]"
        table.add_row(
            str(cp.header.seq),
            f"{now - posted}s ago",
            str(len(cp.transitions)),
            str(cp.header.withdrawal_count),
            str(cp.header.deposit_cursor),
            finality,
        )
    if not checkpoints:
        table.add_row("0", "genesis", "-", "-", "0", "[green]final[/]")
    console.print(table)

"""A web3.py client for one signing account: local nonces, receipts, decoded custom errors.

The signing middleware asks the node for nonce, gas and fees on every transaction (~55 tx/s on
anvil); this client keeps the nonce locally, resyncs it on "nonce too low", estimates gas (which is
also where reverts surface) and names the custom error of any revert, e.g.
``Settlement_NotFinalized(1, 1700000600)``.

A transaction that is not mined within ``stuck_after_s`` is replaced: the same transaction (same
nonce, to, data, value, gas) re-signed with fees raised by at least 12.5% (nodes accept a
replacement only with >= 10% more on both fee fields), tracking the base fee, up to a cap. Every
version's hash is polled; whichever is mined ends the wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import requests
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import Nonce, TxParams, TxReceipt

from isoperp import failpoints
from isoperp.chain.artifacts import load_artifacts
from isoperp.errors import ChainError, ContractReverted, TransientChainError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30
GWEI = 10**9
DEFAULT_STUCK_AFTER_S = 15.0
DEFAULT_RECEIPT_TIMEOUT_S = 120.0
DEFAULT_POLL_INTERVAL_S = 0.2
DEFAULT_MAX_FEE_PER_GAS = 500 * GWEI
MAX_UNDERPRICED_RETRIES = 3  # immediate re-bumps when the node calls a replacement underpriced


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    name: str
    types: tuple[str, ...]


def error_selectors(abis: Iterable[list[dict[str, Any]]]) -> dict[bytes, ErrorSpec]:
    out: dict[bytes, ErrorSpec] = {}
    for abi in abis:
        for item in abi:
            if item.get("type") != "error":
                continue
            types = tuple(_abi_type(p) for p in item.get("inputs", []))
            sig = f"{item['name']}({','.join(types)})"
            out[function_signature_to_4byte_selector(sig)] = ErrorSpec(item["name"], types)
    return out


def decode_revert(
    data: bytes | str | None, selectors: dict[bytes, ErrorSpec]
) -> tuple[str, tuple[Any, ...]]:
    """(error name, args) of revert data; ``("unknown", (hex,))`` when not decodable."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data else b""
    if not data:
        return "revert_without_reason", ()
    spec = selectors.get(data[:4])
    if spec is None:
        if data[:4] == bytes.fromhex("08c379a0"):
            return "Error", tuple(abi_decode(["string"], data[4:]))
        if data[:4] == bytes.fromhex("4e487b71"):
            return "Panic", tuple(abi_decode(["uint256"], data[4:]))
        return "unknown", ("0x" + data.hex(),)
    try:
        return spec.name, tuple(abi_decode(list(spec.types), data[4:]))
    except Exception:
        return spec.name, ("0x" + data[4:].hex(),)


def connect(rpc_url: str, *, timeout_s: int = DEFAULT_TIMEOUT_S) -> Web3:
    """A Web3 on ``rpc_url`` (one pooled HTTP provider); TransientChainError if unreachable."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
    try:
        w3.eth.chain_id  # noqa: B018 - probe the connection
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientChainError(f"cannot reach the RPC at {rpc_url}") from exc
    return w3


def _bump(wei: int) -> int:
    """``wei`` raised by 12.5%, rounded up, plus 1 wei (so that 0 also moves)."""
    return -(-wei * 9 // 8) + 1


def _min_replacement(wei: int) -> int:
    """The least fee a node accepts in place of ``wei``: +10% rounded up, and strictly more."""
    return max(-(-wei * 11 // 10), wei + 1)


def bumped_fees(
    max_fee: int,
    tip: int,
    base_fee: int,
    *,
    market_tip: int = 0,
    cap: int = DEFAULT_MAX_FEE_PER_GAS,
) -> tuple[int, int] | None:
    """(maxFeePerGas, maxPriorityFeePerGas) of an EIP-1559 replacement, or None at the cap.

    Both fields rise by at least 12.5% (+1 wei); the tip is at least the node's suggested
    ``market_tip``; the max fee is at least twice the current ``base_fee`` plus the new tip (room
    for the base fee to rise while pending). Above ``cap`` the max fee is clamped to it; None when
    even the clamped fees would not be a valid replacement (< +10% on either field).
    """
    if min(max_fee, tip, base_fee, market_tip, cap) < 0:
        raise ValueError("fees must be non-negative")
    new_tip = max(_bump(tip), market_tip)
    new_max = max(_bump(max_fee), 2 * base_fee + new_tip)
    if new_max <= cap:
        return new_max, new_tip
    new_max, new_tip = cap, min(new_tip, cap)
    if new_max < _min_replacement(max_fee) or new_tip < _min_replacement(tip):
        return None
    return new_max, new_tip


def bumped_gas_price(
    gas_price: int, market_price: int = 0, *, cap: int = DEFAULT_MAX_FEE_PER_GAS
) -> int | None:
    """gasPrice of a legacy replacement (+12.5% +1 wei, at least ``market_price``), or None at
    the cap (clamped to ``cap`` while that is still >= +10%)."""
    if min(gas_price, market_price, cap) < 0:
        raise ValueError("fees must be non-negative")
    new = max(_bump(gas_price), market_price)
    if new <= cap:
        return new
    return cap if cap >= _min_replacement(gas_price) else None


def _gwei(wei: int) -> str:
    whole, frac = divmod(wei, GWEI)
    return f"{whole}.{frac:09d}".rstrip("0").rstrip(".")


def _hex(tx_hash: bytes) -> str:
    return "0x" + bytes(tx_hash).hex()


def _fees(tx: dict[str, Any]) -> str:
    if "maxFeePerGas" in tx:
        return (
            f"maxFee {_gwei(int(tx['maxFeePerGas']))} gwei, "
            f"tip {_gwei(int(tx.get('maxPriorityFeePerGas', 0)))} gwei"
        )
    return f"gasPrice {_gwei(int(tx.get('gasPrice', 0)))} gwei"


def _is_known(message: str) -> bool:
    return "already known" in message or "already imported" in message


class ChainClient:
    """Sends transactions from one account with local nonce management.

    ``stuck_after_s``: seconds without a receipt before a transaction is replaced with higher
    fees (and again after each further ``stuck_after_s``); ``max_fee_per_gas``: the fee cap of
    replacements (wei); ``receipt_timeout_s``: seconds after the first send before giving up with
    TransientChainError; ``poll_interval_s``: receipt polling period. ``clock``/``sleep`` are
    injectable for tests.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount | None = None,
        *,
        stuck_after_s: float = DEFAULT_STUCK_AFTER_S,
        receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
        max_fee_per_gas: int = DEFAULT_MAX_FEE_PER_GAS,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if stuck_after_s <= 0 or receipt_timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError("stuck_after_s, receipt_timeout_s and poll_interval_s must be > 0")
        if max_fee_per_gas <= 0:
            raise ValueError("max_fee_per_gas must be > 0")
        self.w3 = w3
        self.account = account
        self.stuck_after_s = stuck_after_s
        self.receipt_timeout_s = receipt_timeout_s
        self.max_fee_per_gas = max_fee_per_gas
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._sleep = sleep
        self._nonce: int | None = None
        # (nonce, fee fields of its newest version) of a transaction given up on at the deadline:
        # the next send takes that nonce over with higher fees instead of queueing behind it.
        self._stuck: tuple[int, dict[str, int]] | None = None
        self._poll_failing = False
        self._selectors = error_selectors(a.abi for a in load_artifacts().values())

    @classmethod
    def from_key(cls, w3: Web3, private_key: str | bytes) -> ChainClient:
        return cls(w3, Account.from_key(private_key))

    @property
    def address(self) -> str:
        if self.account is None:
            raise ChainError("this client has no signing account", code="no_account")
        return str(self.account.address)

    @cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def contract(self, address: str, abi: list[dict[str, Any]]) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    def _next_nonce(self) -> int:
        if self._nonce is None:
            sender = Web3.to_checksum_address(self.address)
            if self._stuck is not None:
                if int(self.w3.eth.get_transaction_count(sender, "latest")) <= self._stuck[0]:
                    self._nonce = self._stuck[0]  # still unmined: replace it
                    return self._nonce
                self._stuck = None  # a version of it was mined after all
            self._nonce = int(self.w3.eth.get_transaction_count(sender, "pending"))
        return self._nonce

    def next_nonce(self) -> int:
        """The nonce this client's next transaction will use (for CREATE address predictions)."""
        return self._next_nonce()

    def _outbid_stuck(self, tx: dict[str, Any]) -> dict[str, Any]:
        """``tx`` with fees high enough to replace the stuck transaction of the same nonce."""
        if self._stuck is None or int(tx["nonce"]) != self._stuck[0]:
            return tx
        floor = self._bumped_fees(self._stuck[1])
        if floor is None:
            return tx  # at the cap: the node decides (underpriced is transient)
        return {**tx, **{k: max(int(tx.get(k, 0)), v) for k, v in floor.items()}}

    def resync_nonce(self) -> None:
        """Forgets the local nonce; the next send re-reads it from the node (after a reorg took
        mined transactions back, or anything else moved the account's nonce)."""
        self._nonce = None

    def revert_error(self, exc: Exception, context: str) -> ContractReverted:
        data: Any = getattr(exc, "data", None)
        if isinstance(exc, ContractCustomError | ContractLogicError) and data is None:
            data = exc.args[1] if len(exc.args) > 1 else None
        if isinstance(data, dict):
            data = data.get("data")
        name, args = decode_revert(data if isinstance(data, bytes | str) else None, self._selectors)
        return ContractReverted(name, args, context=context)

    def transact(
        self, fn: ContractFunction, *, value: int = 0, context: str = "", gas: int | None = None
    ) -> TxReceipt:
        """Estimates, signs and sends ``fn``; waits for the receipt; raises ContractReverted."""
        sender = self.address
        tx_params = cast(TxParams, {"from": sender, "value": value})
        try:
            estimate = gas or int(fn.estimate_gas(tx_params))
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.revert_error(exc, context or fn.fn_name) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientChainError(f"{context or fn.fn_name}: RPC unreachable") from exc
        tx_params["nonce"] = Nonce(self._next_nonce())
        tx_params["gas"] = min(estimate * 12 // 10 + 20_000, 16_777_216)
        tx_params["chainId"] = self.chain_id
        tx = fn.build_transaction(tx_params)
        return self._send(cast(TxParams, self._outbid_stuck(dict(tx))), context or fn.fn_name)

    def deploy(self, bytecode: str, abi: list[dict[str, Any]], *args: Any) -> TxReceipt:
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        return self.transact(factory.constructor(*args), context="deploy")  # type: ignore[arg-type]

    def _send(self, tx: TxParams, context: str) -> TxReceipt:
        assert self.account is not None
        signed = self.account.sign_transaction(cast(dict[str, Any], tx))
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3RPCError as exc:
            message = str(exc)
            if "nonce too low" in message or "nonce too high" in message:
                self._nonce = None  # resync on the next send
                self._stuck = None
                raise TransientChainError(f"{context}: nonce out of sync, resynced") from exc
            if "underpriced" in message:
                raise TransientChainError(
                    f"{context}: fees too low for the node: {message}"
                ) from exc
            if not _is_known(message):
                raise ChainError(f"{context}: {message}") from exc
            tx_hash = signed.hash
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientChainError(f"{context}: RPC unreachable") from exc
        self._nonce = int(tx["nonce"]) + 1
        failpoints.hit(f"after_send:{context}")
        receipt = self._await_receipt(dict(cast(dict[str, Any], tx)), tx_hash, context)
        if self._stuck is not None and self._stuck[0] <= int(tx["nonce"]):
            self._stuck = None
        if receipt["status"] != 1:
            raise self._mined_revert(tx, receipt, context)
        logger.debug("%s: block %s, gas %s", context, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

    def _await_receipt(self, tx: dict[str, Any], first: HexBytes, context: str) -> TxReceipt:
        """Polls until a version of ``tx`` is mined, replacing it with higher fees whenever it
        has waited ``stuck_after_s``; TransientChainError (and a nonce resync) at the deadline."""
        hashes = [first]
        start = self._clock()
        deadline = start + self.receipt_timeout_s
        next_bump: float | None = start + self.stuck_after_s
        while True:
            receipt = self._mined(hashes, context)
            if receipt is not None:
                if len(hashes) > 1:
                    logger.info(
                        "%s: mined tx %s (%d versions sent for nonce %d)",
                        context,
                        _hex(receipt["transactionHash"]),
                        len(hashes),
                        int(tx["nonce"]),
                    )
                return receipt
            now = self._clock()
            if now >= deadline:
                # The next send takes this nonce over (with higher fees) unless it was mined.
                self._nonce = None
                fee_fields = ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")
                self._stuck = (int(tx["nonce"]), {k: int(tx[k]) for k in fee_fields if k in tx})
                raise TransientChainError(
                    f"{context}: no receipt after {self.receipt_timeout_s:.0f} s for nonce "
                    f"{int(tx['nonce'])} (sent {', '.join(_hex(h) for h in hashes)})"
                )
            if next_bump is not None and now >= next_bump:
                tx, keep_bumping = self._replace(tx, hashes, context, now - start)
                next_bump = now + self.stuck_after_s if keep_bumping else None
            self._sleep(min(self.poll_interval_s, max(deadline - now, 0.0)))

    def _mined(self, hashes: list[HexBytes], context: str) -> TxReceipt | None:
        """The receipt of whichever of ``hashes`` was mined (newest first), else None. RPC
        errors count as "not yet": the deadline decides when to give up."""
        for tx_hash in reversed(hashes):
            try:
                receipt = self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                continue
            except requests.RequestException as exc:
                # Once per outage at warning level: the poll runs every poll_interval_s.
                level = logging.DEBUG if self._poll_failing else logging.WARNING
                logger.log(level, "%s: RPC error while polling for the receipt: %s", context, exc)
                self._poll_failing = True
                return None
            self._poll_failing = False
            return receipt
        self._poll_failing = False
        return None

    def _replace(
        self, tx: dict[str, Any], hashes: list[HexBytes], context: str, waited: float
    ) -> tuple[dict[str, Any], bool]:
        """Sends ``tx`` again with bumped fees; returns (latest version, whether to bump again
        later). Appends every hash that may be in the pool to ``hashes``."""
        assert self.account is not None
        for _ in range(MAX_UNDERPRICED_RETRIES):
            fees = self._bumped_fees(tx)
            if fees is None:
                logger.warning(
                    "%s: not mined after %.0f s and the fee cap (%s gwei) is reached; "
                    "waiting for tx %s (%s)",
                    context,
                    waited,
                    _gwei(self.max_fee_per_gas),
                    _hex(hashes[-1]),
                    _fees(tx),
                )
                return tx, False
            replacement = {**tx, **fees}
            signed = self.account.sign_transaction(replacement)
            logger.warning(
                "%s: not mined after %.0f s; replacing tx %s (%s) with %s, tx %s, nonce %d",
                context,
                waited,
                _hex(hashes[-1]),
                _fees(tx),
                _fees(replacement),
                _hex(signed.hash),
                int(tx["nonce"]),
            )
            try:
                self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Web3RPCError as exc:
                message = str(exc)
                if "underpriced" in message:
                    logger.warning("%s: replacement underpriced; bumping once more", context)
                    tx = replacement  # the node wants more than this: bump from here
                    continue
                if _is_known(message):
                    hashes.append(signed.hash)
                    return replacement, True
                if "nonce too low" in message:
                    logger.info("%s: nonce already used: an earlier version was mined", context)
                else:
                    logger.warning("%s: replacement rejected (%s); waiting", context, message)
                return tx, False
            except requests.RequestException as exc:
                # It may have reached the node: poll its hash too, and bump from it next time.
                logger.warning("%s: RPC error sending the replacement: %s", context, exc)
            hashes.append(signed.hash)
            return replacement, True
        return tx, True

    def _bumped_fees(self, tx: dict[str, Any]) -> dict[str, int] | None:
        """The fee fields of a replacement of ``tx``; None when the cap forbids one."""
        if "maxFeePerGas" in tx:
            fees = bumped_fees(
                int(tx["maxFeePerGas"]),
                int(tx.get("maxPriorityFeePerGas", 0)),
                self._chain_fee(lambda: self.w3.eth.get_block("latest").get("baseFeePerGas", 0)),
                market_tip=self._chain_fee(lambda: self.w3.eth.max_priority_fee),
                cap=self.max_fee_per_gas,
            )
            if fees is None:
                return None
            return {"maxFeePerGas": fees[0], "maxPriorityFeePerGas": fees[1]}
        if "gasPrice" in tx:
            price = bumped_gas_price(
                int(tx["gasPrice"]),
                self._chain_fee(lambda: self.w3.eth.gas_price),
                cap=self.max_fee_per_gas,
            )
            return None if price is None else {"gasPrice": price}
        return None

    @staticmethod
    def _chain_fee(read: Callable[[], object]) -> int:
        """A fee read from the node, 0 if unavailable (the +12.5% bump alone still applies)."""
        try:
            return int(cast(int, read()))
        except (requests.RequestException, Web3RPCError) as exc:
            logger.debug("could not read a fee from the node: %s", exc)
            return 0

    def _mined_revert(self, tx: TxParams, receipt: TxReceipt, context: str) -> ContractReverted:
        """A transaction passed estimation but reverted when mined (the chain moved on between,
        e.g. a deadline passed): replay it at its block to name the custom error."""
        call = cast(
            TxParams,
            {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx},
        )
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"])
        except (ContractCustomError, ContractLogicError) as exc:
            return self.revert_error(exc, context)
        except Exception as exc:  # best effort: fall back to the unnamed revert
            logger.debug("could not replay the reverted transaction: %s", exc)
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        return ContractReverted("reverted", (), context=f"{context} (tx {tx_hash})")


class Web3Deployer:
    """The Deployer of chain.deploy on top of a ChainClient (what `isoperp deploy` uses)."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client

    @property
    def address(self) -> str:
        return self.client.address

    @property
    def chain_id(self) -> int:
        return self.client.chain_id

    def next_nonce(self) -> int:
        return self.client.next_nonce()

    def deploy_contract(self, name: str, *args: object) -> tuple[str, int]:
        art = load_artifacts()[name]
        receipt = self.client.deploy(art.bytecode, art.abi, *args)
        return str(receipt["contractAddress"]), int(receipt["blockNumber"])

    def call(self, address: str, name: str, fn: str, *args: object, value: int = 0) -> object:
        contract = self.client.contract(address, load_artifacts()[name].abi)
        return self.client.transact(contract.functions[fn](*args), value=value, context=fn)

    def read(self, address: str, name: str, fn: str, *args: object) -> object:
        contract = self.client.contract(address, load_artifacts()[name].abi)
        return contract.functions[fn](*args).call()

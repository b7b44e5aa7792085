"""A web3.py client for one signing account: local nonces, receipts, decoded custom errors.

The signing middleware asks the node for nonce, gas and fees on every transaction (~55 tx/s on
anvil); this client keeps the nonce locally, resyncs it on "nonce too low", estimates gas (which is
also where reverts surface) and names the custom error of any revert, e.g.
``Settlement_NotFinalized(1, 1700000600)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import requests
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError
from web3.types import Nonce, TxParams, TxReceipt

from isoperp import failpoints
from isoperp.chain.artifacts import load_artifacts
from isoperp.errors import ChainError, ContractReverted, TransientChainError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30


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


class ChainClient:
    """Sends transactions from one account with local nonce management."""

    def __init__(self, w3: Web3, account: LocalAccount | None = None) -> None:
        self.w3 = w3
        self.account = account
        self._nonce: int | None = None
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
            self._nonce = int(
                self.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "pending")
            )
        return self._nonce

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
        return self._send(tx, context or fn.fn_name)

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
                raise TransientChainError(f"{context}: nonce out of sync, resynced") from exc
            if "already known" not in message:
                raise ChainError(f"{context}: {message}") from exc
            tx_hash = signed.hash
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientChainError(f"{context}: RPC unreachable") from exc
        self._nonce = int(tx["nonce"]) + 1
        failpoints.hit(f"after_send:{context}")
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=DEFAULT_TIMEOUT_S)
        if receipt["status"] != 1:
            raise self._mined_revert(tx, receipt, context)
        logger.debug("%s: block %s, gas %s", context, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

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

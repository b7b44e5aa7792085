"""Decoding a reverted eth_call's custom error in the differential tests.

``ape.reverts(contract.SomeError)`` cannot check an eth_call here: with anvil 1.7 ape reports a
reverted call as a plain ContractLogicError ("custom error 0x..."), and ape.reverts then accepts
ANY revert without comparing the error or its inputs. ``revert_error`` makes the raw call and
decodes the revert data against the contract's error ABI."""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3.exceptions import ContractCustomError


def revert_error(contract: Any, method: str, *args: Any) -> tuple[str, dict[str, Any]]:
    """The custom error (name, inputs) a call reverts with, decoded from the raw revert data.

    ``ape.reverts(contract.SomeError)`` cannot be used here: with anvil 1.7 ape reports a reverted
    eth_call as a plain ContractLogicError ("custom error 0x..."), and ape.reverts then accepts ANY
    revert without comparing the error or its inputs."""
    calldata = getattr(contract, method).encode_input(*args)
    web3 = contract.provider.web3
    try:
        web3.eth.call({"to": contract.address, "data": calldata})
    except ContractCustomError as err:
        raw = bytes.fromhex(str(err.data).removeprefix("0x"))
    else:
        raise AssertionError(f"{method}{args} did not revert")
    for error in contract.contract_type.errors:
        if keccak(text=error.selector)[:4] == raw[:4]:
            types = [i.canonical_type for i in error.inputs]
            values = abi_decode(types, raw[4:])
            return error.name, {i.name: v for i, v in zip(error.inputs, values, strict=True)}
    raise AssertionError(f"{method}{args} reverted with unknown data 0x{raw.hex()}")

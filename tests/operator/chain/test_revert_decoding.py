"""Revert data is named: custom errors with their arguments, Error(string), Panic(uint256)."""

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector as selector

from isoperp.chain.client import decode_revert, error_selectors

ABI = [
    {
        "type": "error",
        "name": "Settlement_NotFinalized",
        "inputs": [{"name": "seq", "type": "uint64"}, {"name": "at", "type": "uint64"}],
    },
    {"type": "error", "name": "Settlement_InvalidProof", "inputs": []},
    {"type": "function", "name": "x", "inputs": [], "outputs": []},
]
SELECTORS = error_selectors([ABI])


def test_custom_error_with_args():
    data = selector("Settlement_NotFinalized(uint64,uint64)") + encode(
        ["uint64", "uint64"], [2, 99]
    )
    assert decode_revert(data, SELECTORS) == ("Settlement_NotFinalized", (2, 99))
    assert decode_revert("0x" + data.hex(), SELECTORS) == ("Settlement_NotFinalized", (2, 99))


def test_custom_error_without_args():
    assert decode_revert(selector("Settlement_InvalidProof()"), SELECTORS) == (
        "Settlement_InvalidProof",
        (),
    )


def test_error_string_and_panic():
    err = bytes.fromhex("08c379a0") + encode(["string"], ["boom"])
    assert decode_revert(err, SELECTORS) == ("Error", ("boom",))
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    assert decode_revert(panic, SELECTORS) == ("Panic", (0x11,))


def test_unknown_and_empty():
    assert decode_revert(b"\xde\xad\xbe\xef", SELECTORS) == ("unknown", ("0xdeadbeef",))
    assert decode_revert(None, SELECTORS) == ("revert_without_reason", ())

"""contracts/libraries/RecordLib.sol and contracts/mocks/RecordHarness.sol are generated from the
record table (protocol.records.RECORDS) by protocol.solidity: the committed files must be the
generator's output, and the output must state the table's type bytes, lengths and fields.

Regenerate with ``python -m isoperp.protocol.solidity > contracts/libraries/RecordLib.sol`` (and
``--harness > contracts/mocks/RecordHarness.sol``)."""

import re
from dataclasses import replace
from pathlib import Path

import pytest

from isoperp.ledger.transitions import FeeCollect
from isoperp.protocol import solidity
from isoperp.protocol.records import RECORDS, WIRE_TYPES, RecordLayout, _fields
from isoperp.protocol.solidity import render_record_harness, render_record_lib, sol_fields

ROOT = Path(__file__).resolve().parents[3]
LIB = ROOT / "contracts" / "libraries" / "RecordLib.sol"
HARNESS = ROOT / "contracts" / "mocks" / "RecordHarness.sol"


def test_committed_record_lib_is_generated():
    assert LIB.read_text(encoding="utf-8") == render_record_lib(), (
        "RecordLib.sol is stale: python -m isoperp.protocol.solidity > "
        "contracts/libraries/RecordLib.sol"
    )


def test_committed_record_harness_is_generated():
    assert HARNESS.read_text(encoding="utf-8") == render_record_harness(), (
        "RecordHarness.sol is stale: python -m isoperp.protocol.solidity --harness > "
        "contracts/mocks/RecordHarness.sol"
    )


def test_record_lib_constants_match_table():
    source = render_record_lib()
    codes = dict(re.findall(r"uint8 internal constant RECORD_(\w+) = (0x[0-9a-f]{2});", source))
    lengths = dict(re.findall(r"uint256 internal constant RECORD_(\w+)_BYTES = (\d+);", source))
    assert len(codes) == len(lengths) == len(RECORDS)
    for layout in RECORDS:
        key = re.sub(r"(?<!^)(?=[A-Z])", "_", layout.name).upper()
        assert int(codes[key], 16) == layout.code
        assert int(lengths[key]) == layout.record_bytes == 1 + layout.payload_bytes


def test_record_lib_length_table_matches_table():
    source = render_record_lib()
    table = int(re.search(r"LENGTH_TABLE = (0x[0-9a-f]{64});", source).group(1), 16)
    expected = {layout.code: layout.record_bytes for layout in RECORDS}
    for t in range(32):
        assert (table >> (8 * t)) & 0xFF == expected.get(t, 0)


def test_record_lib_structs_match_table():
    source = render_record_lib()
    for layout in RECORDS:
        body = re.search(rf"struct {layout.name}Record {{\n(.*?)\n}}", source, re.S).group(1)
        declared = [tuple(line.strip().rstrip(";").split()) for line in body.splitlines()]
        expected: list[tuple[str, str]] = []
        for f in layout.fields:
            if f.wire == "sig65":
                expected += [
                    ("bytes32", f.name + "R"),
                    ("bytes32", f.name + "S"),
                    ("uint8", f.name + "V"),
                ]
            else:
                expected.append((solidity.SOLIDITY_TYPES[f.wire], f.name))
        assert declared == expected, layout.name
        assert f"function decode{layout.name}(bytes calldata data, uint256 offset)" in source


def test_sol_fields_offsets_tile_the_record():
    sizes = {**{w: n for w, (n, _) in WIRE_TYPES.items()}, "sig_r": 32, "sig_s": 32, "sig_v": 1}
    for layout in RECORDS:
        pos = 1  # after the type byte
        for name, _, wire, at in sol_fields(layout):
            assert at == pos, (layout.name, name)
            pos += sizes[wire]
        assert pos == layout.record_bytes, layout.name


def test_render_record_lib_unpackable_type_raises(monkeypatch):
    big = RecordLayout(0x20, "FeeCollect", FeeCollect, _fields("amount:u128"))
    monkeypatch.setattr(solidity, "RECORDS", (*RECORDS[:-1], big))
    with pytest.raises(ValueError, match="does not fit the table"):
        render_record_lib()
    monkeypatch.setattr(solidity, "RECORDS", (replace(big, code=0x13),))
    assert "RECORD_FEE_COLLECT = 0x13" in render_record_lib()

"""docs/PROTOCOL.md section 3's record table against the record-layout table (protocol.records).

The Markdown table is parsed on its own (codes, names, field names, wire types and order, payload
bytes); any drift between the document and the code that encodes, decodes and checks the records
fails here."""

import re
from pathlib import Path

import pytest

from isoperp.protocol.records import RECORDS, WIRE_TYPES, render_record_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "PROTOCOL.md"
ROW = re.compile(r"^\| (0x[0-9a-f]{2}) \| (\w+) \| `([^`]*)`.* \| (\d+) \|$")


def _section3() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## 3. Transitions and batch data")
    return text[start : text.index("\n## 4.", start)]


def parse_record_table(section: str) -> dict[int, tuple[str, list[tuple[str, str]], int]]:
    """type byte -> (name, [(field, wire type)], payload bytes) from the Markdown rows."""
    rows: dict[int, tuple[str, list[tuple[str, str]], int]] = {}
    lines = section.splitlines()
    start = lines.index("| type | record | payload | payload bytes |")
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        if match is None:  # reserved ranges
            assert "reserved" in line, f"unparsable record row: {line}"
            continue
        code, name, payload, size = match.groups()
        fields = [tuple(item.split(":")) for item in payload.split()]
        assert int(code, 16) not in rows, f"duplicate row {code}"
        rows[int(code, 16)] = (name, fields, int(size))  # type: ignore[assignment]
    return rows


def test_protocol_doc_record_table_matches_records():
    doc = parse_record_table(_section3())
    code_table = {
        r.code: (r.name, [(f.name, f.wire) for f in r.fields], r.payload_bytes) for r in RECORDS
    }
    assert doc == code_table


def test_protocol_doc_payload_bytes_add_up():
    # the documented size is the sum of the documented field widths
    for code, (name, fields, size) in parse_record_table(_section3()).items():
        assert sum(WIRE_TYPES[wire][0] for _, wire in fields) == size, (hex(code), name)


def test_protocol_doc_rows_are_rendered_verbatim():
    section = _section3()
    for row in render_record_table().splitlines():
        assert row in section.splitlines(), row


@pytest.mark.parametrize(
    "edit",
    [
        ("| 0x04 | Fill |", "| 0x14 | Fill |"),  # code
        ("| 0x04 | Fill |", "| 0x04 | Fil |"),  # name
        ("makerId:u32", "makerAccount:u32"),  # field name
        ("makerId:u32 makerSlot:u8", "makerSlot:u8 makerId:u32"),  # order
        ("ratePpm:i32", "ratePpm:u32"),  # wire type
        (
            "counterpartyId:u32 size:u64 timestamp:u64` | 26 |",
            "counterpartyId:u32 size:u64 timestamp:u64` | 27 |",
        ),
    ],
)
def test_protocol_doc_drift_is_detected(edit):
    old, new = edit
    section = _section3()
    assert old in section
    drifted = parse_record_table(section.replace(old, new, 1))
    code_table = {
        r.code: (r.name, [(f.name, f.wire) for f in r.fields], r.payload_bytes) for r in RECORDS
    }
    assert drifted != code_table

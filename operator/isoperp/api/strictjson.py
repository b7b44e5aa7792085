"""Strict JSON for request bodies and WebSocket messages: UTF-8 only, no NaN/Infinity, no
duplicate keys, at most ``MAX_DEPTH`` levels of nesting (checked before parsing, so a deeply
nested body never reaches the recursive decoder, whatever the interpreter's recursion limit)."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class MalformedJson(ValueError):
    """Not strict JSON (the message says why)."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedJson(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not JSON")


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # cannot be too deep: skip the scan (every ordinary request)
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads(data: bytes | str) -> Any:
    """Parses strict JSON; raises ``MalformedJson``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"not UTF-8: {exc}") from exc
    if nesting_depth(text) > MAX_DEPTH:
        raise MalformedJson(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except MalformedJson:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(str(exc)) from exc

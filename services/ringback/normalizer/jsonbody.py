"""Reading callback bodies as JSON, repairing only what is unambiguous, with a precise reason otherwise.

Real vendor traffic (and the vendor's own documentation) contains JSON that is almost right. Two
defects are repaired, because each has exactly one possible meaning; every repair is recorded on the
events it produced (the ``repairs`` field) so an analyst can find them:

- ``inserted_missing_comma``: a complete ``"key":"value"`` pair directly followed by the next
  ``"key":`` with no comma between them (seed 002: ``"customParm":"123456"" stateDesc ":"…"``).
- ``trimmed_key_whitespace``: object keys with stray spaces (``" stateDesc "``) — unless the trimmed
  key already exists in the same object, which makes it ambiguous and the body is rejected.

Anything else that is not JSON is rejected with the parser's message; nothing is guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from ringback.normalizer.outcome import Rejected

REPAIR_MISSING_COMMA = "inserted_missing_comma"
REPAIR_KEY_WHITESPACE = "trimmed_key_whitespace"

_STRING = r'"(?:[^"\\\n]|\\.)*"'
# `"key" : "value"` immediately followed (spaces only) by `"next key" :` — the comma is missing.
_MISSING_COMMA = re.compile(rf'({_STRING}\s*:\s*{_STRING})([ \t]*)({_STRING}\s*:)')


@dataclass
class Parsed:
    value: Any
    repairs: list[str] = field(default_factory=list)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads(data: bytes | str, exact_numbers: bool) -> Any:
    if exact_numbers:  # JSON numbers with a fraction become Decimal, never a binary float
        try:
            return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise orjson.JSONDecodeError(str(exc), "", 0) from exc
    return orjson.loads(data)


def parse_json(body: bytes, exact_numbers: bool = False) -> Parsed:
    """``exact_numbers``: for vendors that send money as JSON numbers (``"oriamount": 2.94``)."""
    if not body.strip():
        raise Rejected("empty_body", "the request body is empty")
    try:
        return _with_clean_keys(Parsed(_loads(body, exact_numbers)), body)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        first_error = exc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_json", f"body is not UTF-8: {exc}") from exc
    repaired, count = _MISSING_COMMA.subn(r"\1,\2\3", text)
    if count:
        try:
            return _with_clean_keys(Parsed(_loads(repaired, exact_numbers), [REPAIR_MISSING_COMMA]))
        except orjson.JSONDecodeError:
            pass  # the missing comma was not the (only) problem: report the original error
    raise Rejected("invalid_json", f"body is not valid JSON: {first_error}")


# A key with leading or trailing whitespace: `" key"` or `"key "` followed by a colon.
_PADDED_KEY = re.compile(rb'"\s[^"]*"\s*:|"[^"]*\s"\s*:')
# Such a key puts whitespace right beside a quote; compact JSON has none, and looking for these pairs
# is a fast substring search, where the pattern above costs a regex step at every byte.
_WHITESPACE_BESIDE_QUOTE = tuple(pair for ws in (b" ", b"\t", b"\n", b"\r") for pair in (b'"' + ws, ws + b'"'))


def _may_have_padded_key(body: bytes) -> bool:
    return any(pair in body for pair in _WHITESPACE_BESIDE_QUOTE) and _PADDED_KEY.search(body) is not None


def _with_clean_keys(parsed: Parsed, body: bytes | str | None = None) -> Parsed:
    if body is not None and not _may_have_padded_key(body if isinstance(body, bytes) else body.encode()):
        return parsed  # no padded key anywhere: skip walking the whole document
    changed = [False]
    parsed.value = _clean(parsed.value, changed)
    if changed[0]:
        parsed.repairs.append(REPAIR_KEY_WHITESPACE)
    return parsed


def _clean(value: Any, changed: list[bool]) -> Any:
    if isinstance(value, list):
        return [_clean(item, changed) for item in value]
    if not isinstance(value, dict):
        return value
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        trimmed = key.strip()
        if trimmed != key:
            if trimmed in value or trimmed in cleaned:
                raise Rejected("ambiguous_repair", f"key {key!r} would collide with {trimmed!r} once trimmed")
            changed[0] = True
        cleaned[trimmed] = _clean(item, changed)
    return cleaned

"""Reading callback bodies as JSON, repairing only what is unambiguous, with a precise reason otherwise.

Real vendor traffic (and the vendor's own documentation) contains JSON that is almost right. Two
defects are repaired, because each has exactly one possible meaning; every repair is recorded on the
events it produced (the ``repairs`` field) so an analyst can find them:

- ``inserted_missing_comma``: a complete ``"key":"value"`` pair directly followed by the next
  ``"key":`` with no comma between them (seed 002: ``"customParm":"123456"" stateDesc ":"…"``).
- ``trimmed_key_whitespace``: object keys with stray spaces (``" stateDesc "``).

A field given twice in one object with different values — the same key twice, or two keys equal but
for letter case or surrounding whitespace — has no single reading: it is listed in
``Parsed.ambiguities`` and the adapter dead-letters the report (or the request) holding it as
``ambiguous_field``. Anything else that is not JSON is rejected with the parser's message; nothing is
guessed.

Every step takes time linear in the body's size. orjson parses first (it refuses nesting beyond
1024 levels); ``document.inspect`` walks the result without recursion and refuses nesting beyond
``MAX_DEPTH``. Only then, and only when needed, does ``json.loads`` run — with Python recursion, but
on a document known to be shallow: where the body has fractional numbers (exact decimals where the
vendor sends money as numbers; integers beyond 64 bits, which orjson reads as floats), and to see
every key of every object where repeated keys are possible.

A number no vendor value is as wide as — more than ``NUMBER_MAX_DIGITS`` digits, or an exponent beyond
``±NUMBER_MAX_EXPONENT`` (``1e-999999999`` is twelve bytes that a gigabyte writes out) — refuses the
body as a whole (``number_out_of_range``), judged by its written text before anything makes it a value.
orjson reads every number of a readable body at once: a body of integers only holds none wider than 64
bits (wider ones orjson reads as floats), and a body with floats is read again by ``json.loads``, whose
number hooks judge each number's text. A body orjson refuses is searched for such a number before the
refusal is reported (orjson's own words, "number is infinity", do not say which).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from ringback.normalizer.digits import NUMBER_MAX_DIGITS, number_out_of_range
from ringback.normalizer.document import MAX_DEPTH, Ambiguity, Path, inspect, same_json, too_deep
from ringback.normalizer.missing_comma import insert_missing_commas
from ringback.normalizer.outcome import Rejected

REPAIR_MISSING_COMMA = "inserted_missing_comma"
REPAIR_KEY_WHITESPACE = "trimmed_key_whitespace"
NUMBER_OUT_OF_RANGE = "number_out_of_range"

# Whitespace before a colon: a key whose closing quote is not right before its colon.
_SPACED_COLONS = tuple(re.compile(re.escape(ws + b":")) for ws in (b" ", b"\t", b"\n", b"\r"))
KEY_MARKER = b'":'


@dataclass
class Parsed:
    value: Any
    repairs: list[str] = field(default_factory=list)
    ambiguities: list[Ambiguity] = field(default_factory=list)

    def require_unambiguous(self, at: Path = ()) -> None:
        """Reject (``ambiguous_field``) if an object at or below ``at`` gives a field two values."""
        for ambiguity in self.ambiguities:
            if ambiguity.under(at):
                raise ambiguity.rejected()

    def require_unambiguous_outside(self, reports: Path) -> None:
        """Reject if an object that is not at or below ``reports`` (the envelope) gives a field two values."""
        for ambiguity in self.ambiguities:
            if not ambiguity.under(reports):
                raise ambiguity.rejected()


def parse_json(body: bytes, exact_numbers: bool = False) -> Parsed:
    """``exact_numbers``: for vendors that send money as JSON numbers (``"oriamount": 2.94``)."""
    if not body.strip():
        raise Rejected("empty_body", "the request body is empty")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        first_error = exc
    else:
        return _read(value, body, [], exact_numbers)
    if _nests_deeper_than(body, MAX_DEPTH):  # orjson's own words for this vary ("failed to allocate memory")
        raise too_deep()
    _refuse_wide_numbers(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_json", f"body is not UTF-8: {exc}") from exc
    repaired, count = insert_missing_commas(text)
    if count:
        source = repaired.encode("utf-8")
        try:
            value = orjson.loads(source)
        except orjson.JSONDecodeError:
            pass  # the missing comma was not the (only) problem: report the original error
        else:
            return _read(value, source, [REPAIR_MISSING_COMMA], exact_numbers)
    raise Rejected("invalid_json", f"body is not valid JSON: {first_error}")


# A string (to the end of its line if never closed); possessive, so a failed match never backtracks.
_STRING = re.compile(rb'"(?:[^"\\\n]++|\\.)*+"|"[^\n]*')
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_BRACKET_RUN = re.compile(rb"[\[{]+|[\]}]+")


def _nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` anywhere (valid JSON or not)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    depth = 0
    for run in _BRACKET_RUN.findall(brackets):
        depth = depth + len(run) if run[0] in b"[{" else max(0, depth - len(run))
        if depth > limit:
            return True
    return False


# A number (outside strings) that may be too wide: more digits than NUMBER_MAX_DIGITS, or an exponent.
# The look-behind starts a match only where a run of digits starts, so each run is looked at once.
_MAYBE_WIDE_NUMBER = re.compile(
    rb"(?<![0-9.])-?(?:[0-9.]{%d,}+(?:[eE][+-]?+[0-9]++)?+|[0-9][0-9.]*+[eE][+-]?+[0-9]++)" % (NUMBER_MAX_DIGITS + 1)
)


# A string, or one never closed to the end of the body: digits inside it are never a number.
_STRING_TO_ITS_END = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)


def _refuse_wide_numbers(body: bytes) -> None:
    """Reject the body if a number outside its strings is wider than any vendor value."""
    for number in _MAYBE_WIDE_NUMBER.findall(_STRING_TO_ITS_END.sub(b" ", body)):
        _bounded(number.decode("ascii"))


def _bounded(text: str) -> str:
    """The written number ``text``, or Rejected if it is wider than any vendor value."""
    why = number_out_of_range(text)
    if why is not None:
        raise Rejected(NUMBER_OUT_OF_RANGE, f"the body holds a number wider than any vendor value: {why}")
    return text


def _exact_number(text: str) -> Decimal:
    return Decimal(_bounded(text))


def _binary_number(text: str) -> float:
    return float(_bounded(text))


# orjson writes no integer beyond 64 bits (it raises, where events and ids write nested values as JSON):
# a wider one stays exact as a Decimal, which those writers take as its digits.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1


def _whole_number(text: str) -> int | Decimal:
    value = int(_bounded(text))
    return value if INT_MIN <= value <= INT_MAX else Decimal(text)


def _read(value: Any, source: bytes, repairs: list[str], exact_numbers: bool) -> Parsed:
    shape = inspect(value)  # also refuses documents nested too deep for what follows
    # orjson reads an integer beyond 64 bits as a float, losing digits: any float means reading again
    # (which also judges every number's width: only a body with a float can hold one too wide).
    if shape.has_float or _keys_may_repeat(source, shape.keys):
        value, conflicts = _every_pair(source, exact_numbers)
        shape = inspect(value, conflicts)
    if shape.trimmed:
        repairs.append(REPAIR_KEY_WHITESPACE)
    return Parsed(value, repairs, shape.ambiguities)


def _keys_may_repeat(source: bytes, parsed_keys: int) -> bool:
    """False only if no object of ``source`` repeats a key (orjson keeps one of them, silently).

    Every key is a string followed by optional whitespace and a colon. With no whitespace before any
    colon, each key puts a ``":`` in the body, so the body has at least as many ``":`` as keys — and
    more keys than the parsed objects hold if a key repeats. Equal counts prove there is no repeat;
    anything else (``":`` inside strings, spaced colons) only sends the body to the exact check.
    """
    if source.count(KEY_MARKER) != parsed_keys:
        return True
    # a regex search for a literal led by a rare byte is a memchr; `in` is slower
    return any(spaced.search(source) for spaced in _SPACED_COLONS)


def _every_pair(source: bytes, exact_numbers: bool) -> tuple[Any, dict[int, tuple[dict[str, Any], list[str]]]]:
    """Parse again seeing every key: the objects that repeat a key with different values, by ``id``
    (each kept alive with its field names, so no other object can take its ``id``)."""
    conflicts: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def object_from(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key not in obj:
                obj[key] = value
            elif not same_json(obj[key], value):
                conflicts.setdefault(id(obj), (obj, []))[1].append(key)
        return obj

    try:
        value = json.loads(
            source,
            object_pairs_hook=object_from,
            parse_float=_exact_number if exact_numbers else _binary_number,
            parse_int=_whole_number,
        )
    except (ValueError, RecursionError) as exc:  # not expected once orjson and the walk accepted the body
        raise Rejected("invalid_json", f"body is not valid JSON: {exc}") from exc
    return value, conflicts

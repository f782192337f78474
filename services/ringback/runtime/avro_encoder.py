"""A record encoder compiled for one Avro schema: the normalizer's hot path.

fastavro interprets the schema for every record, about half a microsecond per field; the normalized
event has 44 fields, so encoding cost more than parsing the vendor's JSON. This module turns the
schema, once, into an encoder for the types the event uses (string, int, long, timestamp-micros,
bytes decimal, nullable unions of those, map and array of strings): a plan of the fields walked by a
loop where this module runs compiled, one generated straight-line function where it is interpreted.

It only ever takes the common, unambiguous case: a value of any other Python type, out of range,
or otherwise unusual makes it give up on that record (``None``), and the caller encodes the record
with fastavro, which stays the authority on what is valid. Tests check byte-for-byte equality with
fastavro on generated events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from ringback import compiled

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
_SMALL: Final = 1024


def zigzag(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: Encoded lengths and small longs, looked up instead of computed.
_VARINT: Final = [zigzag(n) for n in range(_SMALL)]


class GiveUp(Exception):
    """This record is not the common case: let fastavro encode it."""


def _long(value: int) -> bytes:
    if 0 <= value < _SMALL:
        return _VARINT[value]
    if not LONG_RANGE[0] <= value <= LONG_RANGE[1]:
        raise GiveUp
    return zigzag(value)


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    size = len(data)
    return (_VARINT[size] if size < _SMALL else zigzag(size)) + data


#: A message's events share its receive time, and vendor times repeat within a burst.
TIMESTAMP_CACHE_SIZE = 4096


@lru_cache(maxsize=TIMESTAMP_CACHE_SIZE)
def _aware_datetime(value: datetime) -> bytes:
    delta = value - EPOCH
    return _long((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _timestamp_micros(value: Any) -> bytes:
    if type(value) is datetime and value.tzinfo is not None:
        return _aware_datetime(value)
    if type(value) is int:
        return _long(value)
    raise GiveUp


def _decimal(value: Any, precision: int, scale: int) -> bytes:
    if type(value) is not Decimal:
        raise GiveUp
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or len(digits) > precision or exponent + scale < 0:
        raise GiveUp
    unscaled = int(value.scaleb(scale))  # exact: only the exponent moves, the digits stay
    data = unscaled.to_bytes((abs(unscaled).bit_length() + 8) // 8, "big", signed=True)
    return _VARINT[len(data)] + data


def _string(value: Any) -> bytes:
    if type(value) is not str:
        raise GiveUp
    return _text(value)


def _int(value: Any) -> bytes:
    if type(value) is not int or not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise GiveUp
    return _long(value)


def _plain_long(value: Any) -> bytes:
    if type(value) is not int:
        raise GiveUp
    return _long(value)


def _string_map(value: Any) -> bytes:
    if type(value) is not dict:
        raise GiveUp
    if not value:
        return b"\x00"
    parts = [_long(len(value))]
    for key, item in value.items():
        if type(key) is not str or type(item) is not str:
            raise GiveUp
        parts += (_text(key), _text(item))
    parts.append(b"\x00")
    return b"".join(parts)


def _string_array(value: Any) -> bytes:
    if type(value) is not list:
        raise GiveUp
    if not value:
        return b"\x00"
    parts = [_long(len(value))]
    for item in value:
        if type(item) is not str:
            raise GiveUp
        parts.append(_text(item))
    parts.append(b"\x00")
    return b"".join(parts)


# The kinds of value this module encodes (a field of any other type leaves the schema to fastavro).
STRING: Final = 0
INT: Final = 1
LONG: Final = 2
TIMESTAMP: Final = 3
DECIMAL: Final = 4
STRING_MAP: Final = 5
STRING_ARRAY: Final = 6
NULL: Final = b"\x00"  # a nullable union's branch: null ...
PRESENT: Final = b"\x02"  # ... or the value


class FieldPlan:
    """How one field is written: its name, kind, whether it may be null, a decimal's precision and scale."""

    def __init__(self, name: str, kind: int, nullable: bool, precision: int = 0, scale: int = 0) -> None:
        self.name = name
        self.kind = kind
        self.nullable = nullable
        self.precision = precision
        self.scale = scale


def _kind(schema: Any) -> tuple[int, int, int] | None:
    """(kind, precision, scale) of one non-union type, or None if this module does not handle it."""
    kind = schema["type"] if isinstance(schema, dict) else schema
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if kind == "string" and logical is None:
        return STRING, 0, 0
    if kind == "int" and logical is None:
        return INT, 0, 0
    if kind == "long" and logical is None:
        return LONG, 0, 0
    if kind == "long" and logical == "timestamp-micros":
        return TIMESTAMP, 0, 0
    if kind == "bytes" and logical == "decimal":
        return DECIMAL, int(schema["precision"]), int(schema.get("scale", 0))
    if kind == "map" and schema["values"] == "string":
        return STRING_MAP, 0, 0
    if kind == "array" and schema["items"] == "string":
        return STRING_ARRAY, 0, 0
    return None


def field_plans(schema: dict[str, Any]) -> list[FieldPlan] | None:
    """The record's fields in order, or None when the schema uses a type this module does not handle."""
    if schema.get("type") != "record":
        return None
    plans = []
    for field in schema["fields"]:
        field_type = field["type"]
        nullable = isinstance(field_type, list)
        if nullable:
            if len(field_type) != 2 or field_type[0] != "null":
                return None
            field_type = field_type[1]
        kind = _kind(field_type)
        if kind is None:
            return None
        plans.append(FieldPlan(field["name"], kind[0], nullable, kind[1], kind[2]))
    return plans


class RecordPlan:
    """Encodes a record by walking its field plans: the fast form where this module runs compiled
    (the loop is native code); interpreted, the generated straight-line source is faster."""

    def __init__(self, fields: list[FieldPlan], prefix: bytes) -> None:
        self.fields = fields
        self.prefix = prefix

    def encode(self, record: Mapping[str, Any]) -> bytes | None:
        try:
            return self._encode(record)
        except (GiveUp, KeyError):
            return None

    def _encode(self, record: Mapping[str, Any]) -> bytes:
        parts = [self.prefix]
        for field in self.fields:
            value = record[field.name]
            if field.nullable:
                if value is None:
                    parts.append(NULL)
                    continue
                parts.append(PRESENT)
            kind = field.kind
            if kind == STRING:  # the common case, inlined
                if type(value) is not str:
                    raise GiveUp
                data = value.encode("utf-8")
                parts.append(_VARINT[len(data)] if len(data) < _SMALL else zigzag(len(data)))
                parts.append(data)
            elif kind == TIMESTAMP:
                parts.append(_timestamp_micros(value))
            elif kind == INT:
                parts.append(_int(value))
            elif kind == LONG:
                parts.append(_plain_long(value))
            elif kind == DECIMAL:
                parts.append(_decimal(value, field.precision, field.scale))
            elif kind == STRING_MAP:
                parts.append(_string_map(value))
            else:
                parts.append(_string_array(value))
        return b"".join(parts)


#: The helper that encodes each kind but the string (which both forms inline).
_HELPERS: Final[dict[int, Callable[..., bytes]]] = {
    INT: _int,
    LONG: _plain_long,
    TIMESTAMP: _timestamp_micros,
    DECIMAL: _decimal,
    STRING_MAP: _string_map,
    STRING_ARRAY: _string_array,
}

#: The forms an encoder can take: "plan" (a loop over field plans) or "source" (straight-line code).
FORMS: Final = ("plan", "source")


def compile_record_encoder(
    schema: dict[str, Any], prefix: bytes = b"", form: str | None = None
) -> Callable[[Mapping[str, Any]], bytes | None] | None:
    """A function from record to ``prefix`` + Avro binary body (``None`` when it gives up on that
    record), or None when the schema uses a type this module does not handle. The prefix (the
    single-object header) is joined with the fields, not added to the body after: one copy less.

    ``form`` (default: the faster here) is "plan" where this module runs compiled (2x the generated
    source, measured in the normalizer's bench), else "source": one block per field, generated,
    because an interpreted loop over fields spends more on dispatch than on encoding."""
    plans = field_plans(schema)
    if plans is None:
        return None
    chosen = form or ("plan" if compiled.loaded_compiled(__name__) else "source")
    if chosen == "plan":
        return RecordPlan(plans, prefix).encode
    return _generated(plans, prefix, str(schema.get("name", "record")))


def _generated(plans: list[FieldPlan], prefix: bytes, name: str) -> Callable[[Mapping[str, Any]], bytes | None]:
    """The straight-line form; ``encode.source`` shows what it runs."""
    helpers: dict[str, Any] = {
        "GiveUp": GiveUp,
        "_VARINT": _VARINT,
        "_SMALL": _SMALL,
        "zigzag": zigzag,
        "PREFIX": prefix,
        **{f"encode_{kind}": helper for kind, helper in _HELPERS.items()},
    }
    lines = ["def encode(record):", "    parts = [PREFIX]", "    add = parts.append"]
    for field in plans:
        lines.append(f"    value = record[{field.name!r}]")
        indent = "    "
        if field.nullable:
            lines += ["    if value is None:", '        add(b"\\x00")', "    else:", '        add(b"\\x02")']
            indent = "        "
        if field.kind == STRING:  # the common case, inlined
            lines += [
                f"{indent}if type(value) is not str:",
                f"{indent}    raise GiveUp",
                f"{indent}data = value.encode('utf-8')",
                f"{indent}add(_VARINT[len(data)] if len(data) < _SMALL else zigzag(len(data)))",
                f"{indent}add(data)",
            ]
        elif field.kind == DECIMAL:
            lines.append(f"{indent}add(encode_{field.kind}(value, {field.precision}, {field.scale}))")
        else:
            lines.append(f"{indent}add(encode_{field.kind}(value))")
    lines.append('    return b"".join(parts)')
    source = "\n".join(lines) + "\n"
    namespace = dict(helpers)
    exec(compile(source, f"<avro encoder for {name}>", "exec"), namespace)
    generated: Callable[[Mapping[str, Any]], bytes] = namespace["encode"]

    def encode(record: Mapping[str, Any]) -> bytes | None:
        try:
            return generated(record)
        except (GiveUp, KeyError):
            return None

    encode.source = source  # type: ignore[attr-defined]
    return encode

"""A record encoder compiled for one Avro schema: the normalizer's hot path.

fastavro interprets the schema for every record, about half a microsecond per field; the normalized
event has 44 fields, so encoding cost more than parsing the vendor's JSON. This module turns the
schema, once, into one straight-line Python function for the types the event uses (string, int,
long, timestamp-micros, bytes decimal, nullable unions of those, map and array of strings).

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
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
_SMALL = 1024


def zigzag(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: Encoded lengths and small longs, looked up instead of computed.
_VARINT = [zigzag(n) for n in range(_SMALL)]


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


def _decimal(precision: int, scale: int) -> Callable[[Any], bytes]:
    def encode(value: Any) -> bytes:
        if type(value) is not Decimal:
            raise GiveUp
        _, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int) or len(digits) > precision or exponent + scale < 0:
            raise GiveUp
        unscaled = int(value.scaleb(scale))  # exact: only the exponent moves, the digits stay
        data = unscaled.to_bytes((abs(unscaled).bit_length() + 8) // 8, "big", signed=True)
        return _VARINT[len(data)] + data

    return encode


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


def _value_encoder(schema: Any) -> Callable[[Any], bytes] | None:
    """The encoder of one non-union type, or None if this module does not handle it."""
    kind = schema["type"] if isinstance(schema, dict) else schema
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if kind == "string" and logical is None:
        return _string
    if kind == "int" and logical is None:
        return _int
    if kind == "long" and logical is None:
        return _plain_long
    if kind == "long" and logical == "timestamp-micros":
        return _timestamp_micros
    if kind == "bytes" and logical == "decimal":
        return _decimal(int(schema["precision"]), int(schema.get("scale", 0)))
    if kind == "map" and schema["values"] == "string":
        return _string_map
    if kind == "array" and schema["items"] == "string":
        return _string_array
    return None


def compile_record_encoder(
    schema: dict[str, Any], prefix: bytes = b""
) -> Callable[[Mapping[str, Any]], bytes | None] | None:
    """A function from record to ``prefix`` + Avro binary body (``None`` when it gives up on that
    record), or None when the schema uses a type this module does not handle. The prefix (the
    single-object header) is joined with the fields, not added to the body after: one copy less.

    The function is generated as straight-line source, one block per field, because a loop over
    per-field closures spends more on calls than on encoding; ``encode.source`` shows what it runs."""
    if schema.get("type") != "record":
        return None
    helpers: dict[str, Any] = {
        "GiveUp": GiveUp,
        "_VARINT": _VARINT,
        "_SMALL": _SMALL,
        "zigzag": zigzag,
        "PREFIX": prefix,
    }
    lines = ["def encode(record):", "    parts = [PREFIX]", "    add = parts.append"]
    for index, f in enumerate(schema["fields"]):
        field_type = f["type"]
        nullable = isinstance(field_type, list)
        if nullable:
            if len(field_type) != 2 or field_type[0] != "null":
                return None
            field_type = field_type[1]
        encoder = _value_encoder(field_type)
        if encoder is None:
            return None
        lines.append(f"    value = record[{f['name']!r}]")
        indent = "    "
        if nullable:
            lines += ["    if value is None:", '        add(b"\\x00")', "    else:", '        add(b"\\x02")']
            indent = "        "
        if encoder is _string:  # the common case, inlined
            lines += [
                f"{indent}if type(value) is not str:",
                f"{indent}    raise GiveUp",
                f"{indent}data = value.encode('utf-8')",
                f"{indent}add(_VARINT[len(data)] if len(data) < _SMALL else zigzag(len(data)))",
                f"{indent}add(data)",
            ]
        else:
            helpers[f"encode_{index}"] = encoder
            lines.append(f"{indent}add(encode_{index}(value))")
    lines.append('    return b"".join(parts)')
    source = "\n".join(lines) + "\n"
    namespace = dict(helpers)
    exec(compile(source, f"<avro encoder for {schema.get('name', 'record')}>", "exec"), namespace)
    generated: Callable[[Mapping[str, Any]], bytes] = namespace["encode"]

    def encode(record: Mapping[str, Any]) -> bytes | None:
        try:
            return generated(record)
        except (GiveUp, KeyError):
            return None

    encode.source = source  # type: ignore[attr-defined]
    return encode

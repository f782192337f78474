"""Avro single-object encoding of normalized events, with schemas read from ``schemas/``.

Each message is ``C3 01`` + the 8-byte CRC-64-AVRO fingerprint of the writer schema + the Avro
binary body, as the Avro specification defines single-object encoding. A reader finds the writer
schema by its fingerprint among the ``.avsc`` files in ``schemas/`` (current and past versions), and
fastavro resolves it to the reader's schema, so old data stays readable as the schema evolves.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from ringback.normalized_event import NormalizedEvent
from ringback.runtime.avro_encoder import compile_record_encoder

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(SINGLE_OBJECT_MAGIC) + 8
EVENT_SCHEMA_FILE = "normalized_event.avsc"
#: What the sink's ledger counts events by.
LEDGER_FIELDS = ("route", "received_at")


class AvroDecodeError(ValueError):
    """A message is not single-object Avro of a known schema."""


def schema_fingerprint(parsed_schema: dict[str, Any]) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed_schema), "CRC-64-AVRO"))


def load_schema(path: Path) -> dict[str, Any]:
    schema = fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))
    if not isinstance(schema, dict):
        raise ValueError(f"{path}: not a record schema")
    return schema


def _read_long(buffer: bytes, pos: int) -> tuple[int, int]:
    byte = buffer[pos]
    pos += 1
    n, shift = byte & 0x7F, 7
    while byte & 0x80:
        byte = buffer[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def _prefix_plan(schema: dict[str, Any], wanted: tuple[str, ...]) -> list[tuple[str, str | None]] | None:
    """How to read ``wanted`` fields from the start of a record without decoding the rest: for each
    field up to the last wanted one, (kind, name if wanted) with kind "string" or "long"; None when a
    field before them has any other type (then the record must be decoded in full)."""
    plan: list[tuple[str, str | None]] = []
    missing = set(wanted)
    for f in schema["fields"]:
        if not missing:
            break
        kind = f["type"]["type"] if isinstance(f["type"], dict) else f["type"]
        if kind == "int":
            kind = "long"  # same zig-zag varint on the wire
        if kind not in ("string", "long"):
            return None
        plan.append((kind, f["name"] if f["name"] in missing else None))
        missing.discard(f["name"])
    return None if missing else plan


@dataclass
class EventCodec:
    """Encodes with the current schema; decodes anything written with a schema found in ``schemas/``."""

    schema: dict[str, Any]
    known_writers: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    #: Each writer schema's JSON as written in its file, by fingerprint (container files carry it).
    writer_json: dict[bytes, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.header = SINGLE_OBJECT_MAGIC + schema_fingerprint(self.schema)
        self.known_writers.setdefault(self.header[2:], self.schema)
        self.field_names = [f["name"] for f in self.schema["fields"]]
        self._field_set = frozenset(self.field_names)
        self._ledger_plans = {fp: _prefix_plan(writer, LEDGER_FIELDS) for fp, writer in self.known_writers.items()}
        self._compiled_encoder = compile_record_encoder(self.schema, prefix=self.header)

    @classmethod
    def from_dir(cls, schemas_dir: str | Path) -> EventCodec:
        directory = Path(schemas_dir)
        current = load_schema(directory / EVENT_SCHEMA_FILE)
        writers: dict[bytes, dict[str, Any]] = {}
        texts: dict[bytes, str] = {}
        for path in sorted(directory.glob("**/normalized_event*.avsc")):
            past = load_schema(path)
            writers[schema_fingerprint(past)] = past
            texts[schema_fingerprint(past)] = path.read_text(encoding="utf-8")
        return cls(schema=current, known_writers=writers, writer_json=texts)

    def encode(self, event: Mapping[str, Any]) -> bytes:
        """Avro single-object bytes of ``event``; ValueError when it has a field the schema does not
        (a misspelt field must fail, not vanish) or a value the schema refuses. Events start from
        ``blank_event`` with every field, so a key set by mistake always makes the event longer."""
        if len(event) > len(self.field_names) and (unknown := sorted(set(event) - self._field_set)):
            raise ValueError(f"fields not in the schema: {unknown}")
        if self._compiled_encoder is not None:
            encoded = self._compiled_encoder(event)  # header included
            if encoded is not None:
                return encoded
        buffer = io.BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self.schema, event)
        return buffer.getvalue()

    def writer_of(self, payload: bytes) -> bytes:
        """The fingerprint of the (known) schema ``payload`` was written with; raises if none."""
        if len(payload) < HEADER_LENGTH or payload[:2] != SINGLE_OBJECT_MAGIC:
            raise AvroDecodeError("not Avro single-object encoding (missing C3 01 marker)")
        fingerprint_ = payload[2:HEADER_LENGTH]
        if fingerprint_ not in self.known_writers:
            raise AvroDecodeError(f"unknown writer schema fingerprint {fingerprint_.hex()}")
        return fingerprint_

    def route_and_received_at(self, payload: bytes) -> tuple[str, int]:
        """The two fields the ledger counts by (route, receive time in µs), read from the front of the
        record when the writer schema allows, which costs a fraction of a full decode."""
        plan = self._ledger_plans.get(self.writer_of(payload))
        if plan is None:
            event = self.decode(payload)
            return event["route"], int(event["received_at"].timestamp() * 1_000_000)
        found: dict[str, Any] = {}
        pos = HEADER_LENGTH
        try:
            for kind, name in plan:
                byte = payload[pos]
                if byte < 0x80:  # a one-byte varint (every short string's length): no call
                    value, pos = (byte >> 1) ^ -(byte & 1), pos + 1
                else:
                    value, pos = _read_long(payload, pos)
                if kind == "string":
                    if value < 0:
                        raise AvroDecodeError("negative string length")
                    if name is not None:
                        found[name] = payload[pos : pos + value].decode("utf-8")
                    pos += value
                elif name is not None:
                    found[name] = value
        except (IndexError, UnicodeDecodeError) as exc:
            raise AvroDecodeError(f"record too short, or not text where the schema says string: {exc}") from exc
        if pos > len(payload) or not isinstance(found["route"], str) or not isinstance(found["received_at"], int):
            raise AvroDecodeError("record ends before its first fields do, or they are not the types expected")
        return found["route"], found["received_at"]

    def decode(self, payload: bytes) -> dict[str, Any]:
        writer = self.known_writers[self.writer_of(payload)]
        buffer = io.BytesIO(payload)
        buffer.seek(HEADER_LENGTH)
        reader = None if writer is self.schema else self.schema
        return fastavro.schemaless_reader(buffer, writer, reader)  # type: ignore[return-value]

    def blank_event(self) -> NormalizedEvent:
        """Every field at its schema default, so adapters set only what they know."""
        event: dict[str, Any] = {}
        for f in self.schema["fields"]:
            default = f.get("default")
            event[f["name"]] = type(default)() if isinstance(default, (dict, list)) else default
        # NormalizedEvent is generated from the schema (ringback.tools.event_typing; a test keeps them equal)
        return cast(NormalizedEvent, event)

"""Avro single-object encoding of normalized events, with schemas read from ``schemas/``.

Each message is ``C3 01`` + the 8-byte CRC-64-AVRO fingerprint of the writer schema + the Avro
binary body, as the Avro specification defines single-object encoding. A reader finds the writer
schema by its fingerprint among the ``.avsc`` files in ``schemas/`` (current and past versions), and
fastavro resolves it to the reader's schema, so old data stays readable as the schema evolves.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(SINGLE_OBJECT_MAGIC) + 8
EVENT_SCHEMA_FILE = "normalized_event.avsc"


class AvroDecodeError(ValueError):
    """A message is not single-object Avro of a known schema."""


def schema_fingerprint(parsed_schema: dict[str, Any]) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed_schema), "CRC-64-AVRO"))


def load_schema(path: Path) -> dict[str, Any]:
    return fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))


@dataclass
class EventCodec:
    """Encodes with the current schema; decodes anything written with a schema found in ``schemas/``."""

    schema: dict[str, Any]
    known_writers: dict[bytes, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.header = SINGLE_OBJECT_MAGIC + schema_fingerprint(self.schema)
        self.known_writers.setdefault(self.header[2:], self.schema)
        self.field_names = [f["name"] for f in self.schema["fields"]]

    @classmethod
    def from_dir(cls, schemas_dir: str | Path) -> "EventCodec":
        directory = Path(schemas_dir)
        current = load_schema(directory / EVENT_SCHEMA_FILE)
        writers: dict[bytes, dict[str, Any]] = {}
        for path in sorted(directory.glob("**/normalized_event*.avsc")):
            past = load_schema(path)
            writers[schema_fingerprint(past)] = past
        return cls(schema=current, known_writers=writers)

    def encode(self, event: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(self.header)
        fastavro.schemaless_writer(buffer, self.schema, event)
        return buffer.getvalue()

    def decode(self, payload: bytes) -> dict[str, Any]:
        if len(payload) < HEADER_LENGTH or payload[:2] != SINGLE_OBJECT_MAGIC:
            raise AvroDecodeError("not Avro single-object encoding (missing C3 01 marker)")
        writer = self.known_writers.get(payload[2:HEADER_LENGTH])
        if writer is None:
            raise AvroDecodeError(f"unknown writer schema fingerprint {payload[2:HEADER_LENGTH].hex()}")
        buffer = io.BytesIO(payload)
        buffer.seek(HEADER_LENGTH)
        reader = None if writer is self.schema else self.schema
        return fastavro.schemaless_reader(buffer, writer, reader)  # type: ignore[return-value]

    def blank_event(self) -> dict[str, Any]:
        """Every field at its schema default, so adapters set only what they know."""
        event: dict[str, Any] = {}
        for f in self.schema["fields"]:
            default = f.get("default")
            event[f["name"]] = type(default)() if isinstance(default, (dict, list)) else default
        return event

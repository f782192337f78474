"""Decoding by fingerprint: each message resolved from its writer's schema to the job's reader schema."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro

from ringback.runtime.avro import HEADER_LENGTH, EventCodec, load_schema, schema_fingerprint

DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[3] / "schemas"


class UndecodableEvent(ValueError):
    """A message on the topic is not an event of a known schema; nothing from it on was committed."""


class EventDecoder:
    """Avro single-object messages → event dicts, each resolved from its writer's schema (found by
    fingerprint among ``schemas_dir``'s ``normalized_event*.avsc`` files) to ``reader_schema``."""

    def __init__(self, schemas_dir: str | Path = DEFAULT_SCHEMAS_DIR, reader_schema: str | Path | None = None) -> None:
        codec = EventCodec.from_dir(schemas_dir)
        self._codec = codec
        self.reader = load_schema(Path(reader_schema)) if reader_schema is not None else codec.schema
        self._reader_fingerprint = schema_fingerprint(self.reader)
        codec.known_writers.setdefault(self._reader_fingerprint, self.reader)

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            fingerprint = self._codec.writer_of(payload)
            writer = self._codec.known_writers[fingerprint]
            reader = None if fingerprint == self._reader_fingerprint else self.reader
            return fastavro.schemaless_reader(io.BytesIO(payload[HEADER_LENGTH:]), writer, reader)  # type: ignore[return-value]
        except Exception as exc:  # whatever fastavro raises on bytes it cannot read, with one name
            raise UndecodableEvent(f"{type(exc).__name__}: {exc}") from exc

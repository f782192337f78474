"""Avro Object Container Files built from single-object messages without decoding them.

ClickHouse reads the container format (``FORMAT Avro``) natively, so the sink can hand it the bodies
of the normalized messages as they arrived: no Python decode, no row-to-column assembly. Each body
gets a block of its own, so a body that is malformed ends its own block with an error instead of
silently shifting every record after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ringback.runtime.avro_encoder import zigzag

MAGIC = b"Obj\x01"
SYNC_LENGTH = 16
_ONE_RECORD = b"\x02"  # zig-zag varint of 1


def _avro_bytes(data: bytes) -> bytes:
    return zigzag(len(data)) + data


def container_header(schema_json: str, sync: bytes) -> bytes:
    metadata = {b"avro.schema": schema_json.encode("utf-8"), b"avro.codec": b"null"}
    parts = [MAGIC, zigzag(len(metadata))]
    for key, value in metadata.items():
        parts += [_avro_bytes(key), _avro_bytes(value)]
    parts += [zigzag(0), sync]
    return b"".join(parts)


def container(schema_json: str, bodies: Iterable[bytes]) -> bytes:
    """One container file holding ``bodies`` (Avro binary records of ``schema_json``), one per block."""
    sync = os.urandom(SYNC_LENGTH)
    parts = [container_header(schema_json, sync)]
    for body in bodies:
        parts += [_ONE_RECORD, zigzag(len(body)), body, sync]
    return b"".join(parts)

"""The raw-topic message: the callback body untouched, with what the edge knew about the request.

The body is the Kafka value, byte for byte as the vendor sent it once its ``Content-Encoding`` is undone
(a gzip, deflate or zstd body is kept decoded, as the adapters read it); everything else travels in
headers so a consumer can re-read the original request without unwrapping an envelope.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

H_ROUTE = "route"
H_INGEST_ID = "ingest_id"
H_RECEIVED_AT_US = "received_at_us"
H_REMOTE_ADDR = "remote_addr"
H_CONTENT_TYPE = "content_type"
H_TENANT = "tenant"  # optional: absent on the tenant-less routes
H_TENANT_APP_ID = "tenant_app_id"  # optional: the tenant's app_id, for pushes that carry none
H_REPLAYED_AT_US = "replayed_at_us"  # optional: set by `ringback replay` on a request sent through again

_LENGTH = struct.Struct(">I")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_PAIRS = [first + second for first in _CROCKFORD for second in _CROCKFORD]


def new_ingest_id(now_ms: int | None = None) -> str:
    """A 26-character, time-ordered, unique id (ULID layout: 48-bit ms time + 80 random bits)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    v = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    pairs = _CROCKFORD_PAIRS  # 13 lookups of two characters each: ~1 µs where one per character took ~2.3
    return (
        pairs[v >> 120]
        + pairs[(v >> 110) & 1023]
        + pairs[(v >> 100) & 1023]
        + pairs[(v >> 90) & 1023]
        + pairs[(v >> 80) & 1023]
        + pairs[(v >> 70) & 1023]
        + pairs[(v >> 60) & 1023]
        + pairs[(v >> 50) & 1023]
        + pairs[(v >> 40) & 1023]
        + pairs[(v >> 30) & 1023]
        + pairs[(v >> 20) & 1023]
        + pairs[(v >> 10) & 1023]
        + pairs[v & 1023]
    )


#: RawCallback's fields, in the order its constructor takes them.
RAW_FIELDS = (
    "route",
    "ingest_id",
    "received_at_us",
    "remote_addr",
    "content_type",
    "body",
    "topic",
    "partition",
    "offset",
    "tenant",
    "tenant_app_id",
    "replayed_at_us",
)


class RawCallback:
    """One callback as the edge received it. Immutable: its attributes are ``Final``.

    A plain class rather than a frozen dataclass: one is built for every callback on the edge (twice)
    and in the normalizer, and a frozen dataclass's ``__init__`` sets each of its 12 fields through
    ``object.__setattr__`` (~1 µs a callback); compiled (ringback.compiled), this one takes ~0.05 µs
    and refuses assignment.
    """

    __slots__ = RAW_FIELDS

    def __init__(
        self,
        route: str,
        ingest_id: str,
        received_at_us: int,
        remote_addr: str,
        content_type: str,
        body: bytes,
        topic: str = "",
        partition: int = -1,
        offset: int = -1,
        tenant: str = "",
        tenant_app_id: str = "",
        replayed_at_us: int = 0,
    ) -> None:
        self.route: Final = route
        self.ingest_id: Final = ingest_id
        self.received_at_us: Final = received_at_us
        self.remote_addr: Final = remote_addr
        self.content_type: Final = content_type
        self.body: Final = body
        # Where the message was read from (empty on the edge side).
        self.topic: Final = topic
        self.partition: Final = partition
        self.offset: Final = offset
        # Whose callback this is (part of every event id); "" on the tenant-less routes.
        self.tenant: Final = tenant
        # The tenant's app_id from the tenants file, for pushes that carry none (Tencent SMS and voice).
        self.tenant_app_id: Final = tenant_app_id
        # When `ringback replay` sent this request through again (0: the edge's original publication).
        self.replayed_at_us: Final = replayed_at_us

    def _values(self) -> tuple[object, ...]:
        return (
            self.route,
            self.ingest_id,
            self.received_at_us,
            self.remote_addr,
            self.content_type,
            self.body,
            self.topic,
            self.partition,
            self.offset,
            self.tenant,
            self.tenant_app_id,
            self.replayed_at_us,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawCallback):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(RAW_FIELDS, self._values(), strict=True))
        return f"RawCallback({shown})"

    def replace(self, **changes: Any) -> RawCallback:
        """A copy with ``changes`` (field names as keywords), as ``dataclasses.replace`` would make."""
        unknown = set(changes) - set(RAW_FIELDS)
        if unknown:
            raise TypeError(f"RawCallback has no field {sorted(unknown)[0]!r}")
        values: dict[str, Any] = dict(zip(RAW_FIELDS, self._values(), strict=True))
        values.update(changes)
        return RawCallback(**values)

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.received_at_us / 1_000_000, tz=UTC)

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            (H_ROUTE, self.route.encode()),
            (H_INGEST_ID, self.ingest_id.encode()),
            (H_RECEIVED_AT_US, str(self.received_at_us).encode()),
            (H_REMOTE_ADDR, self.remote_addr.encode()),
            (H_CONTENT_TYPE, self.content_type.encode()),
        ]
        if self.tenant:
            headers.append((H_TENANT, self.tenant.encode()))
        if self.tenant_app_id:
            headers.append((H_TENANT_APP_ID, self.tenant_app_id.encode()))
        if self.replayed_at_us:
            headers.append((H_REPLAYED_AT_US, str(self.replayed_at_us).encode()))
        return headers

    def to_bytes(self) -> bytes:
        """Self-contained form (headers + body) for the edge's spool.

        The header is a JSON array; the tenant (and its app_id) are appended only when there is one, so
        a frame without a tenant is byte for byte the form spooled before tenants existed, and every
        form is read.
        """
        fields: list[object] = [self.route, self.ingest_id, self.received_at_us, self.remote_addr, self.content_type]
        if self.tenant or self.tenant_app_id:
            fields.append(self.tenant)
        if self.tenant_app_id:
            fields.append(self.tenant_app_id)
        header = orjson.dumps(fields)
        return _LENGTH.pack(len(header)) + header + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> RawCallback:
        (length,) = _LENGTH.unpack_from(data, 0)
        route, ingest_id, received_at_us, remote_addr, content_type, *rest = orjson.loads(data[4 : 4 + length])
        tenant = rest[0] if rest else ""
        tenant_app_id = rest[1] if len(rest) > 1 else ""
        return RawCallback(  # not cls(): compiled, a direct call to the constructor
            route,
            ingest_id,
            int(received_at_us),
            remote_addr,
            content_type,
            data[4 + length :],
            tenant=tenant,
            tenant_app_id=tenant_app_id,
        )

    @classmethod
    def from_message(
        cls,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None,
    ) -> RawCallback:
        found = {key: val.decode("utf-8", "replace") for key, val in (headers or ()) if val is not None}
        received_at_us = _int(found.get(H_RECEIVED_AT_US))
        return RawCallback(
            route=found.get(H_ROUTE, ""),
            ingest_id=found.get(H_INGEST_ID, ""),
            received_at_us=received_at_us,
            remote_addr=found.get(H_REMOTE_ADDR, ""),
            content_type=found.get(H_CONTENT_TYPE, ""),
            body=value or b"",
            topic=topic,
            partition=partition,
            offset=offset,
            tenant=found.get(H_TENANT, ""),
            tenant_app_id=found.get(H_TENANT_APP_ID, ""),
            replayed_at_us=_int(found.get(H_REPLAYED_AT_US)),
        )


def _int(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0

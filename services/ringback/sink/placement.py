"""Where an event's copies are stored: every copy in the partition and sort position of its first stored one.

``ringback.event_copies`` is partitioned by the day of ``occurred_at`` and sorted by its hour, so a day's
query merges that day's rows only. A vendor resend may move the vendor's time (a CDR's end time, a
hang-up's ``endCallTime``) without being another event: the event id is the same, and its copies must
share partition and sort key, or ``FINAL`` never collapses them and the event is counted twice.

So the sink stores each copy with the ``occurred_at`` of the event's first stored copy, and the copy's own
vendor time in ``reported_occurred_at``. The first stored ``occurred_at`` of every event is kept in
``ringback.event_keys_v2`` (filled by a materialized view, sorted by a hash of the event id); before a
batch is inserted, the sink looks its event ids up there. An event new to the store takes the time of
its earliest-received copy in the batch.

On the fast path the Avro bodies are still not decoded or re-encoded: the three fields needed sit at the
front of every writer schema, and the stored time is appended to the body as one more field. The
container's schema names the body's own ``occurred_at`` ``reported_occurred_at`` and the appended field
``occurred_at`` (Avro binary carries no names, so the body is valid under either).

Copies of an event reach one sink in order: the normalized topic's key is the event's call id, request
id, sid or event id — identity fields — so every copy is on one partition, and the sink stores one batch
at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from ringback.runtime.avro import HEADER_LENGTH, AvroDecodeError, EventCodec
from ringback.runtime.avro_encoder import zigzag

OCCURRED_AT = "occurred_at"
REPORTED_OCCURRED_AT = "reported_occurred_at"
#: The fields a placement is decided by (and the ledger counts by), at the front of every writer schema.
PLACEMENT_FIELDS = ("event_id", "route", "received_at", OCCURRED_AT)
KEYS_TABLE = "ringback.event_keys_v2"
#: The ids' hashes (``id_hash``, the table's primary key) as one comma-joined string of numbers: ClickHouse
#: reads one string literal instead of an array of thousands, and the index narrows the read to the
#: granules that may hold them. Rows of another id with an equal hash are left out in Python.
LOOKUP = (
    f"SELECT event_id, toUnixTimestamp64Micro({OCCURRED_AT}) FROM {KEYS_TABLE} "
    "WHERE id_hash IN CAST(splitByChar(',', {hashes:String}), 'Array(UInt64)') LIMIT 1 BY event_id"
)
#: Event ids per lookup query: a server takes query parameters in the URL, whose size it bounds (1 MiB).
LOOKUP_IDS = 5000
#: Avro union branch indexes of ["null", long].
_NULL_BRANCH = b"\x00"
_LONG_BRANCH = b"\x02"
EPOCH = datetime.fromtimestamp(0, tz=UTC)

#: A vendor time in µs since the epoch, or None when the vendor gives none.
Micros = int | None


class Placed(NamedTuple):
    """One event as the placement (and the sink's ledger) sees it (a tuple: one is made per row)."""

    route: str
    event_id: str
    received_at_us: int
    occurred_at_us: Micros


def _plan(schema: Mapping[str, Any]) -> list[tuple[str, str | None]] | None:
    """(kind, name if wanted) for each field up to the last placement field; None when one before them has
    a type other than string, int, long or ["null", long] (the body is then decoded in full)."""
    plan: list[tuple[str, str | None]] = []
    missing = set(PLACEMENT_FIELDS)
    for f in schema["fields"]:
        if not missing:
            break
        kind = _kind(f["type"])
        if kind is None:
            return None
        plan.append((kind, f["name"] if f["name"] in missing else None))
        missing.discard(f["name"])
    return None if missing else plan


def _kind(avro_type: Any) -> str | None:
    if isinstance(avro_type, list):
        branches = [_kind(branch) for branch in avro_type]
        return "optional_long" if branches == ["null", "long"] else None
    if isinstance(avro_type, dict):
        return _kind(avro_type["type"])
    if avro_type == "null":
        return "null"
    if avro_type in ("int", "long"):
        return "long"
    return "string" if avro_type == "string" else None


def _read_long(buffer: bytes, pos: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        byte = buffer[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (n >> 1) ^ -(n & 1), pos


def micros(moment: Any) -> Micros:
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        raise AvroDecodeError(f"{OCCURRED_AT} is not a time")
    return (moment - EPOCH) // timedelta(microseconds=1)


def _varint_lines(indent: str) -> list[str]:
    """Source that reads one zigzag varint at ``pos`` into ``n`` (a one-byte one, the common case, inline)."""
    return [
        f"{indent}byte = payload[pos]",
        f"{indent}if byte < 0x80:",
        f"{indent}    n = (byte >> 1) ^ -(byte & 1)",
        f"{indent}    pos += 1",
        f"{indent}else:",
        f"{indent}    n, pos = read_long(payload, pos)",
    ]


def compile_reader(plan: list[tuple[str, str | None]]) -> Callable[[bytes], Placed]:
    """The plan as one straight-line function from a single-object payload to its placement (a loop over
    the plan's steps costs more in its own bookkeeping than in reading)."""
    lines = ["def read(payload):", f"    pos = {HEADER_LENGTH}", "    try:"]
    for kind, name in plan:
        lines += _varint_lines("        ")
        target = f"found_{name}" if name is not None else None
        if kind == "string":
            lines += ["        if n < 0:", '            raise AvroDecodeError("negative string length")']
            if target is not None:
                lines.append(f"        {target} = payload[pos : pos + n].decode('utf-8')")
            lines.append("        pos += n")
        elif kind == "optional_long":
            lines += [
                "        if n == 0:",
                f"            {target or 'skipped'} = None",
                "        elif n == 1:",
                *_varint_lines("            "),
                f"            {target or 'skipped'} = n",
                "        else:",
                '            raise AvroDecodeError("a union branch the schema does not have")',
            ]
        elif target is not None:
            lines.append(f"        {target} = n")
    lines += [
        "    except (IndexError, UnicodeDecodeError) as exc:",
        "        raise AvroDecodeError(",
        '            f"record too short, or not text where the schema says string: {exc}"',
        "        ) from exc",
        "    if pos > len(payload):",
        '        raise AvroDecodeError("record ends before its first fields do")',
        f"    return Placed(found_route, found_event_id, found_received_at, found_{OCCURRED_AT})",
    ]
    namespace: dict[str, Any] = {"AvroDecodeError": AvroDecodeError, "Placed": Placed, "read_long": _read_long}
    exec(compile("\n".join(lines) + "\n", "<placement reader>", "exec"), namespace)
    reader: Callable[[bytes], Placed] = namespace["read"]
    return reader


class Placement:
    """Reads placements from normalized bodies and gives each body its stored time."""

    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self._readers = {
            fp: None if plan is None else compile_reader(plan)
            for fp, plan in ((fp, _plan(schema)) for fp, schema in codec.known_writers.items())
        }
        self._schemas: dict[bytes, tuple[str, list[str]]] = {}

    def read(self, payload: bytes) -> Placed:
        """The route, event id, receive time and vendor time of one normalized message, read from the front
        of the body (AvroDecodeError if it cannot be read)."""
        reader = self._readers.get(self.codec.writer_of(payload))
        if reader is not None:
            return reader(payload)
        event = self.codec.decode(payload)
        return Placed(
            str(event["route"]),
            str(event["event_id"]),
            micros(event["received_at"]) or 0,
            micros(event.get(OCCURRED_AT)),
        )

    def container_schema(self, writer: bytes) -> tuple[str, list[str]]:
        """The writer schema with its own ``occurred_at`` named ``reported_occurred_at`` and the stored
        time appended as ``occurred_at``; and the column names it fills, in order."""
        if writer not in self._schemas:
            schema = json.loads(self.codec.writer_json[writer])
            fields = schema["fields"]
            own = next(f for f in fields if f["name"] == OCCURRED_AT)
            own["name"] = REPORTED_OCCURRED_AT
            own.pop("default", None)
            fields.append({"name": OCCURRED_AT, "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]})
            self._schemas[writer] = (json.dumps(schema), [f["name"] for f in fields])
        return self._schemas[writer]


def with_stored_time(payload: bytes, stored_us: Micros) -> bytes:
    """The body (without its single-object header) with the stored time appended as one more field."""
    tail = _NULL_BRANCH if stored_us is None else _LONG_BRANCH + zigzag(stored_us)
    return payload[HEADER_LENGTH:] + tail


def id_hash(event_id: str) -> int:
    """The event id's ``id_hash`` in ``ringback.event_keys_v2``: ``reinterpretAsUInt64(MD5(event_id))``."""
    return int.from_bytes(hashlib.md5(event_id.encode("utf-8")).digest()[:8], "little")


def stored_times(client: Client, placed: Sequence[Placed]) -> dict[str, Micros]:
    """For every event id of the batch, the ``occurred_at`` its copies are stored with: the stored one
    for events already in the store, else the earliest-received copy's in the batch. Runs on the sink's
    ClickHouse thread."""
    ids = sorted({p.event_id for p in placed})
    times: dict[str, Micros] = {}
    for start in range(0, len(ids), LOOKUP_IDS):
        chunk = ids[start : start + LOOKUP_IDS]
        hashes = ",".join(str(id_hash(event_id)) for event_id in chunk)
        wanted = set(chunk)
        for event_id, at_us in client.query(LOOKUP, parameters={"hashes": hashes}).result_rows:
            if event_id in wanted:
                times[str(event_id)] = None if at_us is None else int(at_us)
    for p in sorted(placed, key=attrgetter("received_at_us")):
        times.setdefault(p.event_id, p.occurred_at_us)
    return times


def as_time(at_us: Micros) -> datetime | None:
    return None if at_us is None else EPOCH + timedelta(microseconds=at_us)

"""Storing a batch in ClickHouse: events, dead letters, ledger rows — and telling data from outages.

Events take the fast path: their Avro bodies go to ClickHouse as they arrived, in a container file
(``FORMAT Avro``, one record per block so a broken body cannot shift its neighbours), so Python never
decodes them; only the time every copy of the event is stored with is appended to each
(:mod:`ringback.sink.placement`), after one lookup of the batch's event ids. Errors split by kind:

- ClickHouse refusing the data for its *values* (a parse error, a value out of the column's range, a
  body that is not the Avro its header claims) sends the batch down the **checked path**: every event
  decoded in Python, a columnar insert, and the rows ClickHouse cannot take isolated by halving and
  kept in ``ringback.dead_letters`` (``unstorable_event``, ``undecodable_event``).
- Anything else — ClickHouse unreachable, out of space or memory, too many parts, a timeout — is an
  **outage**: the same insert is retried on the same path with backoff, for as long as it takes,
  never dead-lettered. ``Health`` counts how long, and raises the alarm past ``retry_alarm_after_s``.

Every insert carries an ``insert_deduplication_token`` derived from the offsets it covers, so an insert
retried after an unclear failure is not stored twice.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError

from ringback import logs, metrics
from ringback.runtime.avro import HEADER_LENGTH, SINGLE_OBJECT_MAGIC, AvroDecodeError, EventCodec
from ringback.runtime.avro_container import container
from ringback.runtime.dead_letter import DeadLetter
from ringback.runtime.ledger import LEDGER_COLUMNS, LedgerRow
from ringback.runtime.raw import H_TENANT
from ringback.runtime.stream.backend import Message
from ringback.runtime.stream.health import Health
from ringback.sink import placement
from ringback.sink.placement import OCCURRED_AT, REPORTED_OCCURRED_AT, Micros, Placed, Placement
from ringback.sink.rows import DEAD_LETTER_COLUMNS, dead_letter_columns, undecodable, unstorable

EVENTS_TABLE = "ringback.event_copies"  # every copy; analysts read the ringback.events view
DEAD_LETTERS_TABLE = "ringback.dead_letters"
LEDGER_TABLE = "ringback.ledger"
INSERT = "insert"
#: Duplicates inside one batch are left to merges and FINAL, like duplicates across batches already
#: are: collapsing them at insert costs ~25 % of the engine's insert time.
EVENTS_INSERT_SETTINGS = {"optimize_on_insert": 0}
#: Every insert: a batch may span any number of days (one push of CDRs from many days, a backfill, a
#: replay), and tables are partitioned by day; ClickHouse's default refuses a block over 100 partitions
#: (code 252), which no retry would ever get past.
INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}
#: Raised in Python while a batch is turned into ClickHouse columns when a *value* cannot be stored.
PYTHON_VALUE_ERRORS = (DataError, ValueError, TypeError, OverflowError, struct.error, AvroDecodeError)
#: What a normalized-topic message that fastavro cannot read raises.
DECODE_ERRORS = (AvroDecodeError, ValueError, EOFError, IndexError, KeyError, TypeError)
#: ClickHouse error codes that mean "these values cannot be stored", not "the store is not working":
#: parse failures, type and range errors, data that is not what its format claims.
VALUE_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        32,  # ATTEMPT_TO_READ_AFTER_EOF
        33,  # CANNOT_READ_ALL_DATA
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        190,  # SIZES_OF_ARRAYS_DONT_MATCH
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        407,  # DECIMAL_OVERFLOW
    }
)
_CODE = re.compile(r"Code: (\d+)\.")
RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

log = logs.get(__name__)
T = TypeVar("T")


def is_value_error(error: BaseException) -> bool:
    """True when retrying cannot help because the data itself cannot be stored."""
    if isinstance(error, PYTHON_VALUE_ERRORS):
        return True
    match = _CODE.search(str(error))
    return match is not None and int(match.group(1)) in VALUE_ERROR_CODES


class EventKey(NamedTuple):
    """What the sink's ledger counts an event by."""

    route: str
    received_at_us: int
    tenant: str


@dataclass(frozen=True)
class Stored:
    """What storing one batch's events came to: the key of every event taken, and the dead letters
    made of those that had to be set aside."""

    event_keys: list[EventKey]
    set_aside: list[DeadLetter]


def tenant_of(message: Message) -> str:
    """The tenant the normalizer put in the event's headers ("" when none)."""
    for name, value in message.headers:
        if name == H_TENANT:
            return value.decode("utf-8", "replace")
    return ""


class Store:
    def __init__(self, client: Client, db_thread: ThreadPoolExecutor, codec: EventCodec, health: Health) -> None:
        self.client = client
        self.db_thread = db_thread
        self.codec = codec
        self.health = health
        self.placement = Placement(codec)

    async def on_db_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    # --- events ---
    async def store_events(self, events: list[Message], token: str) -> Stored:
        try:
            placed = [self.placement.read(m.value) for m in events]
            keys = [EventKey(p.route, p.received_at_us, tenant_of(m)) for p, m in zip(placed, events, strict=True)]
            writers = [m.value[len(SINGLE_OBJECT_MAGIC) : HEADER_LENGTH] for m in events]  # each read (checked) above
        except PYTHON_VALUE_ERRORS as exc:
            return await self._checked_path(events, token, exc)
        attempt = 0
        while True:
            try:
                times = await self.on_db_thread(placement.stored_times, self.client, placed)
                await self._insert_containers(self._by_writer(events, writers, placed, times), token)
                self.health.succeeded(INSERT)
                return Stored(keys, [])
            except Exception as exc:
                if is_value_error(exc):
                    return await self._checked_path(events, token, exc)
                await self._outage(EVENTS_TABLE, exc, attempt)
                attempt += 1

    @staticmethod
    def _by_writer(
        events: list[Message], writers: list[bytes], placed: list[Placed], times: dict[str, Micros]
    ) -> dict[bytes, list[bytes]]:
        """Each writer schema's bodies, each with its event's stored time appended (see placement)."""
        by_writer: dict[bytes, list[bytes]] = {}
        for message, writer, where in zip(events, writers, placed, strict=True):
            by_writer.setdefault(writer, []).append(placement.with_stored_time(message.value, times[where.event_id]))
        return by_writer

    async def _insert_containers(self, by_writer: dict[bytes, list[bytes]], token: str) -> None:
        """The fast path: one container file per writer schema, bodies untouched but for the stored time."""
        for fingerprint, bodies in by_writer.items():
            schema_json, names = self.placement.container_schema(fingerprint)
            part_token = token if len(by_writer) == 1 else f"{token}:{fingerprint.hex()}"
            started = time.perf_counter()
            await self.on_db_thread(self._insert_container, schema_json, names, bodies, part_token)
            metrics.SINK_INSERT_SECONDS.labels(EVENTS_TABLE).observe(time.perf_counter() - started)
            metrics.SINK_ROWS.labels(EVENTS_TABLE).inc(len(bodies))
            metrics.SINK_LAST_INSERT.labels(EVENTS_TABLE).set(time.time())

    def _insert_container(self, schema_json: str, names: list[str], bodies: list[bytes], token: str) -> None:
        data = container(schema_json, bodies)
        self.client.raw_insert(
            EVENTS_TABLE,
            names,
            insert_block=data,
            fmt="Avro",
            settings={**INSERT_SETTINGS, **EVENTS_INSERT_SETTINGS, "insert_deduplication_token": token},
        )

    async def _checked_path(self, events: list[Message], token: str, reason: BaseException) -> Stored:
        """Decode each event, insert columns, and set aside what cannot be read or stored."""
        metrics.SINK_CHECKED_BATCHES.inc()
        log.warning(
            "events refused for their values, storing the batch through the checked path",
            events=len(events),
            error=str(reason)[:500],
        )
        decoded: list[dict[str, Any]] = []
        sources: list[Message] = []
        set_aside: list[DeadLetter] = []
        for message in events:
            try:
                decoded.append(self.codec.decode(message.value))
                sources.append(message)
            except DECODE_ERRORS as exc:
                set_aside.append(undecodable(message, exc))
        if decoded:
            columns = await self._columns_placed(decoded)
            for index, why in await self._store_columns(columns, token):
                set_aside.append(unstorable(sources[index], decoded[index], why))
        keys = [
            EventKey(
                str(event["route"]), int(event["received_at"].timestamp() * 1_000_000), str(event.get("tenant") or "")
            )
            for event in decoded
        ]
        return Stored(keys, set_aside)

    async def _columns_placed(self, decoded: list[dict[str, Any]]) -> list[list[Any]]:
        """The events' columns, ``occurred_at`` as stored (see placement) and the copies' own beside it."""
        placed = [
            Placed(
                str(e["route"]),
                str(e["event_id"]),
                placement.micros(e["received_at"]) or 0,
                placement.micros(e.get(OCCURRED_AT)),
            )
            for e in decoded
        ]
        attempt = 0
        while True:
            try:
                times = await self.on_db_thread(placement.stored_times, self.client, placed)
                break
            except Exception as exc:  # a lookup that fails is the store not working, never the data
                await self._outage(placement.KEYS_TABLE, exc, attempt)
                attempt += 1
        columns = [[event.get(name) for event in decoded] for name in self.codec.field_names]
        columns[self.codec.field_names.index(OCCURRED_AT)] = [placement.as_time(times[p.event_id]) for p in placed]
        columns.append([event.get(OCCURRED_AT) for event in decoded])
        return columns

    async def _store_columns(self, columns: list[list[Any]], token: str) -> list[tuple[int, str]]:
        """Insert; rows whose values ClickHouse cannot take are found by halving and returned, with why."""
        try:
            await self.insert(EVENTS_TABLE, columns, [*self.codec.field_names, REPORTED_OCCURRED_AT], token)
            return []
        except ValueRefused as refused:
            size = len(columns[0])
            if size == 1:
                return [(0, refused.reason)]
            half = size // 2
            left = await self._store_columns([column[:half] for column in columns], token + ":a")
            right = await self._store_columns([column[half:] for column in columns], token + ":b")
            return left + [(index + half, reason) for index, reason in right]

    # --- every table ---
    async def store_dead_letters(self, letters: Sequence[DeadLetter], token: str) -> None:
        await self.insert(DEAD_LETTERS_TABLE, dead_letter_columns(letters), list(DEAD_LETTER_COLUMNS), token)

    async def store_ledger(self, rows: Sequence[LedgerRow], token: str) -> None:
        columns = [[getattr(row, name) for row in rows] for name in LEDGER_COLUMNS]
        await self.insert(LEDGER_TABLE, columns, LEDGER_COLUMNS, token)

    async def insert(self, table: str, columns: list[list[Any]], names: list[str], token: str) -> None:
        """A columnar insert, retried through outages; ValueRefused when the values cannot be stored."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await self.on_db_thread(self._insert, table, columns, names, token)
            except Exception as exc:
                if is_value_error(exc):
                    raise ValueRefused(f"{type(exc).__name__}: {exc}") from exc
                await self._outage(table, exc, attempt)
                attempt += 1
                continue
            self.health.succeeded(INSERT)
            metrics.SINK_INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
            metrics.SINK_ROWS.labels(table).inc(len(columns[0]) if columns else 0)
            metrics.SINK_LAST_INSERT.labels(table).set(time.time())
            return

    def _insert(self, table: str, columns: list[list[Any]], names: list[str], token: str) -> None:
        extra = EVENTS_INSERT_SETTINGS if table == EVENTS_TABLE else {}
        self.client.insert(
            table,
            columns,
            column_names=names,
            column_oriented=True,
            settings={**INSERT_SETTINGS, **extra, "insert_deduplication_token": token},
        )

    async def _outage(self, table: str, error: BaseException, attempt: int) -> None:
        """The store is not working (not the data's fault): note it, wait, and let the caller retry."""
        metrics.SINK_INSERT_FAILURES.labels(table).inc()
        text = f"{type(error).__name__}: {error}".replace("\n", " ")[:500]
        self.health.failed(INSERT, text)
        delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
        log.warning("insert failed, retrying", table=table, attempt=attempt + 1, retry_in_s=delay, error=text)
        await asyncio.sleep(delay)


class ValueRefused(Exception):
    """ClickHouse (or the client, turning values into columns) refused these values."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

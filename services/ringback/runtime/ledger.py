"""Count deltas for reconciliation: each stage counts what it did per route and hour of receipt and
publishes the deltas to the ledger topic; the sink loads them into ``ringback.ledger``.

A delta is identified by (instance, seq), so loading it twice counts it once. A delta that could not
be published is kept and merged into the next one.

What the edge acknowledged in journal mode travels differently: as running totals of its journal
(``EDGE_ACCEPTED_TOTAL``, see :mod:`ringback.edge.accepted`), each row with the total as its seq; a
reader takes the largest total per instance, never their sum.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

EDGE_ACCEPTED = "edge.accepted"
#: Running totals of what an edge's journal took (journal mode): the largest per instance counts.
EDGE_ACCEPTED_TOTAL = "edge.accepted_total"
NORMALIZER_RAW = "normalizer.raw_messages"
NORMALIZER_REPORTS = "normalizer.reports"
NORMALIZER_EVENTS = "normalizer.events"
NORMALIZER_DEAD_LETTERS = "normalizer.dead_letters"
#: Requests `ringback replay` sent through again, counted by the normalizer instead of NORMALIZER_RAW
#: (their reports, events and dead letters count in the stages after it as usual).
REPLAY_RAW = "replay.raw_messages"
SINK_EVENTS = "sink.events"
SINK_DEAD_LETTERS = "sink.dead_letters"
STAGES = (
    EDGE_ACCEPTED,
    EDGE_ACCEPTED_TOTAL,
    NORMALIZER_RAW,
    REPLAY_RAW,
    NORMALIZER_REPORTS,
    NORMALIZER_EVENTS,
    NORMALIZER_DEAD_LETTERS,
    SINK_EVENTS,
    SINK_DEAD_LETTERS,
)


class LedgerRow(NamedTuple):
    """One ``ringback.ledger`` row: a stage's count delta for a tenant, route and hour of receipt."""

    hour: datetime
    route: str
    stage: str
    instance: str
    seq: int
    count: int  # type: ignore[assignment]  # the column's name; shadows tuple.count, which nothing here calls
    tenant: str


LEDGER_COLUMNS = list(LedgerRow._fields)


def hour_of(received_at_us: int) -> int:
    """Start of the hour, as unix seconds, of a receive time in microseconds."""
    return (received_at_us // 1_000_000) // 3600 * 3600


@dataclass
class Ledger:
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    pending: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)

    def count(self, stage: str, route: str, received_at_us: int, n: int = 1, tenant: str = "") -> None:
        if n:
            self.pending[(stage, route, hour_of(received_at_us), tenant)] += n

    def take(self) -> bytes | None:
        """The pending deltas as one message, or None; give it back with ``restore`` if not published."""
        if not self.pending:
            return None
        self.seq += 1
        rows = [[hour, route, stage, n, tenant] for (stage, route, hour, tenant), n in sorted(self.pending.items())]
        self.pending = Counter()
        return orjson.dumps({"instance": self.instance, "seq": self.seq, "rows": rows})

    def restore(self, message: bytes) -> None:
        for hour, route, stage, n, *tenant in orjson.loads(message)["rows"]:
            self.pending[(stage, route, hour, tenant[0] if tenant else "")] += n


def ledger_rows(message: bytes) -> list[LedgerRow]:
    """The ``ringback.ledger`` rows of one ledger message (a message of running totals has each total
    as its row's seq: the same total said twice is one row)."""
    data = orjson.loads(message)
    instance, seq = str(data["instance"]), int(data["seq"])
    totals = bool(data.get("totals"))
    return [  # rows written before tenants have four fields
        LedgerRow(
            datetime.fromtimestamp(int(hour), tz=UTC),
            str(route),
            str(stage),
            instance,
            int(n) if totals else seq,
            int(n),
            str(tenant[0]) if tenant else "",
        )
        for hour, route, stage, n, *tenant in data["rows"]
    ]

"""An example billing job on the normalized topic: charge, billable minutes and billed seconds per
tenant, app and (China) day — the same numbers as the billing query of docs/billing.md on ClickHouse.

It reads with ``ringback.consumer`` (decoding by fingerprint, the first copy of an event wins,
offsets committed after each batch is written) and keeps its state in one JSON file: the totals and,
per partition, the offset up to which they include the topic. A batch is applied to the totals, the
file is replaced atomically, and only then does the consumer commit; if the job dies between the two,
the batch comes again and the offsets in the file tell it which events are in the totals already.

Offsets belong to one broker incarnation: the embedded broker forgets its topics at every start of
`ringback run` and every recycle, and they begin again at 0. So the offsets in the file are kept with
the broker's cluster id (``broker_incarnation``) and count only while it stays the same; on a new one
the consumer reads the new topic from its start and its durable id store (``--state-dir``, the ids of
``--remember-hours`` of events) sets aside every event already in the totals.

    python examples/billing_job.py --data-dir ./data --out totals.json --csv totals.csv

runs until the topic is read to its end (for cron); ``--follow`` keeps it running.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ringback.consumer import (
    DEFAULT_SCHEMAS_DIR,
    DEFAULT_TOPIC,
    Batch,
    DedupeWindow,
    Delivered,
    EventDecoder,
    consume,
)

#: The vendors bill by the China day (docs/billing.md's query: toDate(occurred_at, 'Asia/Shanghai')).
BILLING_ZONE = ZoneInfo("Asia/Shanghai")
DEFAULT_GROUP = "billing-example"
#: Ids of events billed are remembered this long (stream time): longer than any vendor resends or a
#: broker restart republishes.
DEFAULT_REMEMBER_HOURS = 24
#: aiokafka's default: how long a job that stopped keeps its partitions before another member gets them.
DEFAULT_SESSION_TIMEOUT_MS = 10_000
#: Heartbeats per session timeout (Kafka's advice: at most a third of it between two).
HEARTBEATS_PER_SESSION = 3
CSV_COLUMNS = ("tenant", "app_id", "day", "events", "charge", "currency", "billable_minutes", "duration_s")

Key = tuple[str, str | None, str | None]  # tenant, app_id, day (None when the vendor gave no time)


@dataclass
class Total:
    events: int = 0
    charge: Decimal = Decimal(0)
    currency: str | None = None
    billable_minutes: int = 0
    duration_s: int = 0

    def add(self, event: dict[str, Any]) -> None:
        self.events += 1
        if event.get("charge") is not None:
            if self.currency is not None and event["currency"] != self.currency:
                raise ValueError(f"event {event['event_id']}: {event['currency']} in a total kept in {self.currency}")
            self.currency = event["currency"]
            self.charge += event["charge"]
        self.billable_minutes += event.get("billable_minutes") or 0
        self.duration_s += event.get("duration_s") or 0


@dataclass
class Ledger:
    """The job's state: totals, the offsets they include, what was set aside."""

    totals: dict[Key, Total] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> next offset included
    duplicates: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    #: The broker's cluster id the offsets in ``applied`` belong to.
    incarnation: str | None = None

    def apply(self, batch: Batch) -> None:
        if batch.incarnation != self.incarnation:
            if self.incarnation is not None:  # (a file from before incarnations were kept adopts the first)
                self.applied = {}  # offsets of a topic that is gone: the id store tells what is billed
            self.incarnation = batch.incarnation
        for copy in batch.events:
            if copy.offset < self.applied.get(_partition(copy.topic, copy.partition), 0):
                continue  # in the totals already: this batch was applied before the job died uncommitted
            self.totals.setdefault(key_of(copy), Total()).add(copy.event)
        self.duplicates += len(batch.duplicates)
        self.conflicts += [
            {"event_id": c.event_id, "partition": c.partition, "offset": c.offset, "charge": str(c.event.get("charge"))}
            for c in batch.conflicts
        ]
        for (topic, partition), offset in batch.next_offsets.items():
            name = _partition(topic, partition)
            self.applied[name] = max(self.applied.get(name, 0), offset)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "tenant": tenant,
                "app_id": app_id,
                "day": day,
                "events": t.events,
                "charge": str(t.charge),
                "currency": t.currency,
                "billable_minutes": t.billable_minutes,
                "duration_s": t.duration_s,
            }
            for (tenant, app_id, day), t in sorted(
                self.totals.items(), key=lambda item: tuple(part or "" for part in item[0])
            )
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "totals": self.rows(),
            "applied_offsets": self.applied,
            "broker_incarnation": self.incarnation,
            "duplicates_set_aside": self.duplicates,
            "conflicts": self.conflicts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        totals = {
            (row["tenant"], row["app_id"], row["day"]): Total(
                row["events"], Decimal(row["charge"]), row["currency"], row["billable_minutes"], row["duration_s"]
            )
            for row in data["totals"]
        }
        return cls(
            totals,
            dict(data["applied_offsets"]),
            data["duplicates_set_aside"],
            list(data["conflicts"]),
            data.get("broker_incarnation"),
        )


def _partition(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def key_of(copy: Delivered) -> Key:
    occurred: datetime | None = copy.event.get("occurred_at")
    day = occurred.astimezone(BILLING_ZONE).date().isoformat() if occurred is not None else None
    return copy.tenant, copy.event.get("app_id"), day


def write_atomically(path: Path, text: str) -> None:
    """The whole file or the old one, also across a crash: write aside, flush to disk, rename."""
    aside = path.with_name(f".{path.name}.tmp")
    with open(aside, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(aside, path)


def csv_text(ledger: Ledger) -> str:
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(ledger.rows())
    return out.getvalue()


def bootstrap_of(args: argparse.Namespace) -> str:
    if args.bootstrap:
        return str(args.bootstrap)
    run_file = Path(args.data_dir) / "run" / "run.json"  # written by `ringback run` while it runs
    try:
        return str(json.loads(run_file.read_text(encoding="utf-8"))["kafka_bootstrap"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        raise SystemExit(f"billing_job: no running `ringback run` found in {run_file}; give --bootstrap") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Totals per tenant, app and China day from ringback's normalized topic."
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bootstrap", help="Kafka bootstrap servers (HOST:PORT[,..]).")
    where.add_argument("--data-dir", help="The data directory of a running `ringback run` (its embedded broker).")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="The job's state and result: totals, offsets included, what was set aside (JSON).",
    )
    parser.add_argument("--csv", type=Path, help="Also write the totals as CSV.")
    parser.add_argument("--group", default=DEFAULT_GROUP, help=f"Consumer group (default {DEFAULT_GROUP}).")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"Normalized topic (default {DEFAULT_TOPIC}).")
    parser.add_argument(
        "--schemas-dir", type=Path, default=DEFAULT_SCHEMAS_DIR, help="schemas/ with history/: every writer schema."
    )
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=DEFAULT_SESSION_TIMEOUT_MS,
        help="How soon the group notices a run of the job that stopped.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="Where the ids of billed events are kept (SQLite; default: a folder next to --out).",
    )
    parser.add_argument(
        "--remember-hours",
        type=float,
        default=DEFAULT_REMEMBER_HOURS,
        help=f"How long (stream time) ids of billed events are remembered (default {DEFAULT_REMEMBER_HOURS}).",
    )
    parser.add_argument(
        "--follow", action="store_true", help="Keep running instead of stopping at the end of the topic."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ledger = Ledger.from_json(json.loads(args.out.read_text(encoding="utf-8"))) if args.out.exists() else Ledger()

    def process(batch: Batch) -> None:  # returns only once the batch is on disk: then its offsets are committed
        ledger.apply(batch)
        write_atomically(args.out, json.dumps(ledger.to_json(), indent=1) + "\n")
        if args.csv:
            write_atomically(args.csv, csv_text(ledger))

    summary = consume(
        bootstrap_of(args),
        args.group,
        process,
        until_caught_up=not args.follow,
        topic=args.topic,
        decoder=EventDecoder(args.schemas_dir),
        window=DedupeWindow(max_age=timedelta(hours=args.remember_hours)),
        state_dir=args.state_dir or args.out.with_name(f"{args.out.name}.state"),
        kafka_options={
            "session_timeout_ms": args.session_timeout_ms,
            "heartbeat_interval_ms": args.session_timeout_ms // HEARTBEATS_PER_SESSION,
        },
    )
    if not args.out.exists():  # nothing to apply yet: the (empty) result all the same
        write_atomically(args.out, json.dumps(ledger.to_json(), indent=1) + "\n")
    print(
        json.dumps(
            {
                "events": summary.events,
                "duplicates": summary.duplicates,
                "conflicts": summary.conflicts,
                "remembered": summary.remembered,
                "incarnations": summary.incarnations,
                "totals": len(ledger.totals),
            }
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

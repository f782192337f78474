"""Golden fixtures: vendor request bodies and the outcomes they must normalize to.

Layout: ``tests/fixtures/<format>/ROUTE`` names the edge route; each ``<case>.body`` is a request body
byte for byte as a vendor sends it, and ``<case>.expected.json`` the events and dead-letter reasons
it must produce. ``RINGBACK_UPDATE_GOLDEN=1 pytest tests/unit/test_golden_fixtures.py`` rewrites the
expected files from the current code, for review in the diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ringback.config import Settings
from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXED_INGEST_ID = "01GOLDENFIXTURE00000000000"
FIXED_RECEIVED_AT_US = 1_763_700_000_000_000  # 2025-11-21T04:40:00Z
VOLATILE = ("normalizer_version",)


@dataclass(frozen=True)
class Case:
    route: str
    body_path: Path

    @property
    def expected_path(self) -> Path:
        return self.body_path.with_suffix(".expected.json")

    @property
    def name(self) -> str:
        return f"{self.body_path.parent.name}/{self.body_path.stem}"


def cases() -> list[Case]:
    found = []
    for route_file in sorted(FIXTURES.glob("*/ROUTE")):
        route = route_file.read_text().strip()
        found.extend(Case(route, body) for body in sorted(route_file.parent.glob("*.body")))
    return found


def raw_for(case: Case) -> RawCallback:
    return RawCallback(
        route=case.route,
        ingest_id=FIXED_INGEST_ID,
        received_at_us=FIXED_RECEIVED_AT_US,
        remote_addr="203.0.113.7",
        content_type="application/json",
        body=case.body_path.read_bytes(),
        topic="ringback.raw.v1",
        partition=0,
        offset=42,
    )


def to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [to_json_value(v) for v in value]
    return value


def outcomes_as_json(case: Case, codec: EventCodec) -> list[dict[str, Any]]:
    ctx = Context(blank_event=codec.blank_event(), source_timezone=Settings().source_timezone)
    result = []
    for outcome in normalize_message(raw_for(case), registry(), ctx):
        if isinstance(outcome, Rejection):
            result.append(
                {
                    "dead_letter": {
                        "reason_type": outcome.reason_type,
                        "report_index": outcome.report_index,
                        "message": outcome.message,
                    }
                }
            )
        else:
            # Round-trip through Avro so the golden file shows what consumers really read.
            decoded = codec.decode(codec.encode(outcome))
            result.append({"event": {k: to_json_value(v) for k, v in decoded.items() if k not in VOLATILE}})
    return result

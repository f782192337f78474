"""Every golden fixture normalizes to exactly its expected events and dead-letter reasons."""

from __future__ import annotations

import json
import os

import pytest

from ringback.runtime.avro import EventCodec
from tests.conftest import REPO_ROOT
from tests.golden import Case, cases, outcomes_as_json

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_golden_fixture(case: Case) -> None:
    actual = outcomes_as_json(case, CODEC)
    if os.environ.get("RINGBACK_UPDATE_GOLDEN"):
        case.expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert case.expected_path.exists(), (
        f"no expected file for {case.name}; run with RINGBACK_UPDATE_GOLDEN=1 and review it"
    )
    expected = json.loads(case.expected_path.read_text(encoding="utf-8"))
    assert actual == expected


def test_every_adapter_has_golden_fixtures() -> None:
    from ringback.normalizer.adapters import registry

    covered = {case.route for case in cases()}
    assert set(registry()) <= covered, f"adapters without fixtures: {sorted(set(registry()) - covered)}"


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_a_resent_request_yields_the_same_event_ids(case: Case) -> None:
    """Vendors resend (the CDR platform up to three times): every resend must collapse to the same events."""
    from ringback.normalizer.adapters import registry
    from ringback.normalizer.event import Context
    from ringback.normalizer.step import normalize_message
    from tests.golden import raw_for

    ctx = Context(blank_event=CODEC.blank_event())
    first = normalize_message(raw_for(case), registry(), ctx)
    resent = normalize_message(
        raw_for(case).replace(
            ingest_id="01RESENT000000000000000000",
            received_at_us=raw_for(case).received_at_us + 60_000_000,
        ),
        registry(),
        ctx,
    )
    ids = [o["event_id"] for o in first if isinstance(o, dict)]
    assert ids == [o["event_id"] for o in resent if isinstance(o, dict)]
    assert len(set(ids)) == len(ids), "two different reports of one request share an event_id"

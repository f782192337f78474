"""`ringback replay` on a running pipeline: dead letters chosen by reason (and a time range of the raw
topic) go through the current adapters again; replays are idempotent (the same event ids), a request
that fails again replaces its dead letter, and the ledger counts replays as replays."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.raw import RawCallback, new_ingest_id
from tests.kafka_helpers import produce, read_topic
from tests.pipeline import Pipeline, post, ringback, sql_rows, wait_for_rows, wait_until_caught_up

pytestmark = pytest.mark.integration

SMS_ROUTE = "tencent/sms-status"
DLQ_TOPIC = "ringback.dlq.v1"


def sms_body(sid: str, reports: int = 2) -> bytes:
    return json.dumps(
        [
            {
                "user_receive_time": "2026-11-27 10:00:00",
                "nationcode": "86",
                "mobile": f"1380013800{i}",
                "report_status": "SUCCESS",
                "errmsg": "DELIVRD",
                "description": "ok",
                "sid": f"{sid}-{i}",
            }
            for i in range(reports)
        ]
    ).encode()


def replay(pipeline: Pipeline, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        ringback("replay", "--data-dir", str(pipeline.data_dir), "--json", *args), capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def count(pipeline: Pipeline, query: str) -> int:
    return int(sql_rows(pipeline.data_dir, query)[0]["n"])


def wait_for_count(pipeline: Pipeline, query: str, expected: int) -> int:
    """``query``'s count (a row with ``n``) once it is ``expected``, or when the wait ends."""
    (row,) = wait_for_rows(pipeline.data_dir, query, lambda rows: int(rows[0]["n"]) == expected)
    return int(row["n"])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path_factory.mktemp("replay") / "data").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dead(pipeline: Pipeline) -> dict[str, str]:
    """Five dead letters: four whose bodies the current adapters read (dead-lettered by an earlier
    normalizer; one for a reason not chosen below, one replayed by its ingest id only, one for a dry run
    only), and one the edge took that is still unreadable."""
    fixed, other, ledger, dry = new_ingest_id(), new_ingest_id(), new_ingest_id(), new_ingest_id()
    letters = []
    for ingest_id, sid, reason in (
        (fixed, "fixed", "missing_field"),
        (other, "other", "unexpected_shape"),
        (ledger, "ledger", "unexpected_shape"),
        (dry, "dry", "invalid_time"),
    ):
        raw = RawCallback(
            SMS_ROUTE,
            ingest_id,
            time.time_ns() // 1000,
            "10.0.0.9",
            "application/json",
            sms_body(sid),
            topic="ringback.raw.v1",
            partition=0,
            offset=1,
        )
        letter = DeadLetter.of(raw, [Failure(WHOLE_REQUEST, reason, "as an earlier adapter saw it")], 0, "0.0.1-old")
        letters.append((ingest_id.encode(), raw.body, letter.headers()))
    asyncio.run(produce(pipeline.bootstrap, DLQ_TOPIC, letters))
    status, _ = post(f"{pipeline.edge_url}/callbacks/{SMS_ROUTE}", b'[{"sid": "broken"')
    assert status == 200
    rows = wait_for_rows(pipeline.data_dir, "SELECT ingest_id, failure_type FROM ringback.dead_letters FINAL", 5)
    broken = next(r["ingest_id"] for r in rows if r["failure_type"] == "invalid_json")
    return {"fixed": fixed, "other": other, "ledger": ledger, "dry": dry, "broken": broken}


def test_a_dry_run_counts_and_publishes_nothing(pipeline: Pipeline, dead: dict[str, str]) -> None:
    summary = replay(pipeline, "--reason", "invalid_time", "--dry-run")
    assert summary["requests"] == 1 and summary["dry_run"] and summary["by_reason"] == {"invalid_time": 1}
    wait_until_caught_up(pipeline)  # anything published would have been stored by now
    assert count(pipeline, f"SELECT count() AS n FROM ringback.event_copies WHERE ingest_id = '{dead['dry']}'") == 0


def test_replayed_dead_letters_become_events_once_however_often_replayed(
    pipeline: Pipeline, dead: dict[str, str]
) -> None:
    assert replay(pipeline, "--reason", "missing_field")["requests"] == 1
    fixed = dead["fixed"].encode()
    events = f"SELECT count() AS n FROM ringback.events WHERE ingest_id = '{dead['fixed']}'"
    assert wait_for_count(pipeline, events, 2) == 2
    assert replay(pipeline, "--reason", "missing_field", "--route", SMS_ROUTE, "--since", "-1h")["requests"] == 1
    # Published twice (two events each time) ... (counted on the topic: background merges may already have
    # collapsed the stored copies)
    copies = asyncio.run(
        read_topic(
            pipeline.bootstrap, "ringback.normalized.v1", expected=4, timeout_s=60, where=lambda r: fixed in r.value
        )
    )
    assert len(copies) == 4
    wait_until_caught_up(pipeline)
    assert count(pipeline, events) == 2  # ... the same two events
    # The dead letter not chosen was not replayed.
    assert count(pipeline, f"SELECT count() AS n FROM ringback.event_copies WHERE ingest_id = '{dead['other']}'") == 0


def test_a_request_that_fails_again_replaces_its_dead_letter(pipeline: Pipeline, dead: dict[str, str]) -> None:
    replayed = (
        f"SELECT count() AS n FROM ringback.dead_letters WHERE ingest_id = '{dead['broken']}' AND replayed_at IS NOT "
        "NULL"
    )
    before = count(pipeline, replayed)  # the raw topic's replay below replays it too, if it ran first
    assert replay(pipeline, "--ingest-id", dead["broken"])["requests"] == 1
    assert wait_for_count(pipeline, replayed, before + 1) == before + 1
    assert (
        count(pipeline, f"SELECT count() AS n FROM ringback.dead_letters FINAL WHERE ingest_id = '{dead['broken']}'")
        == 1
    )


def sms_lines(pipeline: Pipeline) -> list[dict[str, Any]]:
    done = subprocess.run(
        ringback("reconcile", "--data-dir", str(pipeline.data_dir), "--json"), capture_output=True, timeout=120
    )
    # 1: a closed hour whose counts are still settling (traffic across the turn of an hour); the lines
    # are printed either way, and the callers wait until the counts they check have settled.
    assert done.returncode in (0, 1), done.stderr.decode()
    return [line for line in json.loads(done.stdout) if line["route"] == SMS_ROUTE]


def test_the_ledger_counts_replays_apart_from_what_the_edge_accepted(pipeline: Pipeline, dead: dict[str, str]) -> None:
    before = sum(line["replayed"] for line in sms_lines(pipeline))
    for _ in range(2):  # the same request replayed twice
        assert replay(pipeline, "--ingest-id", dead["ledger"])["requests"] == 1
    deadline = time.monotonic() + 60
    while True:
        lines = sms_lines(pipeline)
        replayed = sum(line["replayed"] for line in lines)
        settled = (
            replayed >= before + 2
            and sum(line["raw"] for line in lines) == sum(line["accepted"] for line in lines)
            and sum(line["duplicates"] for line in lines) >= 2
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert replayed == before + 2, (before, lines)
    assert sum(line["raw"] for line in lines) == sum(
        line["accepted"] for line in lines
    )  # replays are not counted as new requests
    assert all(not line["gaps"] for line in lines), lines
    assert sum(line["duplicates"] for line in lines) >= 2, lines  # its two reports, stored twice (by the ledger)


def test_a_time_range_of_the_raw_topic_is_replayed_without_new_events(pipeline: Pipeline, dead: dict[str, str]) -> None:
    sid = f"raw-{new_ingest_id()}"
    status, _ = post(f"{pipeline.edge_url}/callbacks/{SMS_ROUTE}", sms_body(sid, reports=3))
    assert status == 200
    events = f"SELECT count() AS n FROM ringback.events WHERE startsWith(sid, '{sid}')"
    assert wait_for_count(pipeline, events, 3) == 3
    summary = replay(pipeline, "--raw", "--since", "-10m", "--route", SMS_ROUTE)
    assert summary["requests"] >= 2  # this request and the broken one (replays of replays are left out)
    # Normalized twice, three events each time (counted on the topic: every copy of an event shares its
    # partition and sort key, so background merges may already have collapsed the stored copies) ...
    copies = asyncio.run(
        read_topic(
            pipeline.bootstrap,
            "ringback.normalized.v1",
            expected=6,
            timeout_s=60,
            where=lambda r: sid.encode() in r.value,
        )
    )
    assert len(copies) == 6
    wait_until_caught_up(pipeline)
    assert count(pipeline, events) == 3  # ... and still the same three events


def test_filters_that_are_not_ones_are_refused(pipeline: Pipeline) -> None:
    for args in (
        ("--route", "no/such-route"),
        ("--reason", "x'; DROP TABLE ringback.events"),
        ("--since", "yesterday"),
        ("--raw", "--reason", "missing_field"),
    ):
        done = subprocess.run(
            ringback("replay", "--data-dir", str(pipeline.data_dir), *args), capture_output=True, timeout=60
        )
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith(b"ringback replay: "), done.stderr

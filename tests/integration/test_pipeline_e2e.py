"""The whole pipeline as a user runs it: `ringback run`, HTTP callbacks in, rows out via `ringback sql`."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from ringback.runtime.dead_letter import DeadLetter
from tests.kafka_helpers import read_topic
from tests.pipeline import Pipeline, post, sql_rows, wait_for_rows

pytestmark = pytest.mark.integration
SMS_ROUTE = "/callbacks/tencent/sms-status"
OK = b'{"result":0,"errmsg":"OK"}'


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path_factory.mktemp("e2e") / "data").start()
    yield running
    running.stop()


def reports(tag: str, *specs: tuple[str, str, str, str]) -> bytes:
    """specs: (sid suffix, mobile, report_status, errmsg)."""
    return orjson.dumps(
        [
            {
                "user_receive_time": "2026-11-21 09:30:15",
                "nationcode": "86",
                "mobile": mobile,
                "report_status": status,
                "errmsg": errmsg,
                "description": f"{status} {errmsg}",
                "sid": f"{tag}-{sid}",
            }
            for sid, mobile, status, errmsg in specs
        ]
    )


def test_reports_become_exactly_those_rows(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    body = reports(
        tag,
        ("1", "13800138000", "SUCCESS", "DELIVRD"),
        ("2", "13900139000", "FAIL", "UNDELIV"),
        ("3", "15012345678", "FAIL", "MK:0005"),
    )
    assert post(pipeline.edge_url + SMS_ROUTE, body) == (200, OK)

    rows = wait_for_rows(
        pipeline.data_dir,
        (
            "SELECT sid, status, vendor_status, vendor_code, to_number, to_e164, occurred_at, event_type, source, "
            f"route FROM ringback.events_dedup WHERE sid LIKE '{tag}-%' ORDER BY sid"
        ),
        3,
    )
    assert rows == [
        {
            "sid": f"{tag}-1",
            "status": "delivered",
            "vendor_status": "SUCCESS",
            "vendor_code": "DELIVRD",
            "to_number": "13800138000",
            "to_e164": "+8613800138000",
            "occurred_at": "2026-11-21 01:30:15.000000",
            "event_type": "sms.delivery_report",
            "source": "tencent.sms_status",
            "route": "tencent/sms-status",
        },
        {
            "sid": f"{tag}-2",
            "status": "failed",
            "vendor_status": "FAIL",
            "vendor_code": "UNDELIV",
            "to_number": "13900139000",
            "to_e164": "+8613900139000",
            "occurred_at": "2026-11-21 01:30:15.000000",
            "event_type": "sms.delivery_report",
            "source": "tencent.sms_status",
            "route": "tencent/sms-status",
        },
        {
            "sid": f"{tag}-3",
            "status": "failed",
            "vendor_status": "FAIL",
            "vendor_code": "MK:0005",
            "to_number": "15012345678",
            "to_e164": "+8615012345678",
            "occurred_at": "2026-11-21 01:30:15.000000",
            "event_type": "sms.delivery_report",
            "source": "tencent.sms_status",
            "route": "tencent/sms-status",
        },
    ]
    (ingest,) = sql_rows(
        pipeline.data_dir,
        (
            "SELECT uniqExact(ingest_id) AS requests, count() AS events FROM ringback.events_dedup WHERE sid LIKE "
            f"'{tag}-%'"
        ),
    )
    assert ingest == {"requests": 1, "events": 3}


def test_invalid_json_is_dead_lettered_while_valid_traffic_keeps_flowing(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    broken = b'[{"sid": "' + tag.encode() + b'", "mobile": '
    assert post(pipeline.edge_url + SMS_ROUTE, broken) == (
        200,
        OK,
    )  # durable, so acknowledged; bad input goes to the DLQ
    good = reports(tag, ("after", "13800138000", "SUCCESS", "DELIVRD"))
    assert post(pipeline.edge_url + SMS_ROUTE, good) == (200, OK)

    (dead,) = wait_for_rows(
        pipeline.data_dir,
        (
            "SELECT route, failure_type, reason, body, ingest_id, source_topic FROM ringback.dead_letters WHERE "
            f"position(body, '{tag}') > 0"
        ),
        1,
    )
    assert dead["route"] == "tencent/sms-status"
    assert dead["failure_type"] == "invalid_json"
    assert "not valid JSON" in dead["reason"]
    assert dead["body"] == broken.decode()
    assert dead["source_topic"] == "ringback.raw.v1"
    assert wait_for_rows(pipeline.data_dir, f"SELECT sid FROM ringback.events_dedup WHERE sid = '{tag}-after'", 1) == [
        {"sid": f"{tag}-after"}
    ]

    records = asyncio.run(
        read_topic(pipeline.bootstrap, "ringback.dlq.v1", expected=1, where=lambda r: r.value == broken)
    )
    (letter,) = [DeadLetter.from_message(r.value, r.headers) for r in records]
    assert letter.failure_type == "invalid_json" and letter.raw.ingest_id == dead["ingest_id"]


def test_the_same_body_three_times_is_one_event_per_report(pipeline: Pipeline) -> None:
    tag = uuid.uuid4().hex[:8]
    body = reports(tag, ("a", "13800138000", "SUCCESS", "DELIVRD"), ("b", "13800138001", "FAIL", "EXPIRED"))
    for _ in range(3):
        assert post(pipeline.edge_url + SMS_ROUTE, body) == (200, OK)
    raw = asyncio.run(read_topic(pipeline.bootstrap, "ringback.raw.v1", expected=3, where=lambda r: r.value == body))
    assert len({dict(r.headers)["ingest_id"] for r in raw}) == 3  # three deliveries really arrived
    wait_for_rows(pipeline.data_dir, f"SELECT sid FROM ringback.events_dedup WHERE sid LIKE '{tag}-%'", 2)
    dedup = sql_rows(
        pipeline.data_dir,
        f"SELECT sid, count() AS n FROM ringback.events_dedup WHERE sid LIKE '{tag}-%' GROUP BY sid ORDER BY sid",
    )
    assert dedup == [{"sid": f"{tag}-a", "n": 1}, {"sid": f"{tag}-b", "n": 1}]


def test_sql_prints_readable_tables_and_refuses_writes(pipeline: Pipeline) -> None:
    import subprocess

    from tests.pipeline import ringback

    shown = subprocess.run(
        ringback("sql", "--data-dir", str(pipeline.data_dir), "--format", "PrettyCompact", "SELECT 1 AS one"),
        capture_output=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "one" in shown.stdout.decode() and "┌" in shown.stdout.decode()
    refused = subprocess.run(
        ringback("sql", "--data-dir", str(pipeline.data_dir), "DROP TABLE ringback.events"),
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "readonly" in refused.stderr.decode().lower()


def test_metrics_and_readiness_are_served(pipeline: Pipeline) -> None:
    import urllib.request

    with urllib.request.urlopen(pipeline.edge_url + "/readyz", timeout=10) as response:
        assert response.status == 200
    normalizer_metrics = pipeline.run_file("normalizer")["metrics"]
    with urllib.request.urlopen(normalizer_metrics, timeout=10) as response:
        assert b"ringback_normalizer_messages_total" in response.read()


def test_clean_shutdown_keeps_everything_and_sql_still_reads_the_store(tmp_path: Path) -> None:
    running = Pipeline(tmp_path / "data").start()
    tag = uuid.uuid4().hex[:8]
    try:
        for i in range(20):
            assert (
                post(running.edge_url + SMS_ROUTE, reports(tag, (str(i), "13800138000", "SUCCESS", "DELIVRD")))[0]
                == 200
            )
    finally:
        code = running.stop()  # immediately: the normalizer and sink must drain before exiting
    assert code == 0, running.log()
    assert "edge stopped" in running.log() and "sink stopped" in running.log()
    # upstream first, so that nothing writes into a stopped stage; each exits 0 (the broker after them)
    stopped = [
        (field(line, "role"), field(line, "exit_code")) for line in running.log().splitlines() if "role stopped" in line
    ]
    assert stopped == [("edge", "0"), ("normalizer", "0"), ("sink", "0")], running.log()
    lines = running.log().splitlines()
    last_role = max(i for i, line in enumerate(lines) if "role stopped" in line)
    broker = [i for i, line in enumerate(lines) if "embedded broker stopped" in line]
    assert len(broker) == 1 and broker[0] > last_role, running.log()  # the broker last, once every role is gone
    # Nothing is running now: `ringback sql` opens the store itself.
    (row,) = sql_rows(running.data_dir, f"SELECT count() AS n FROM ringback.events_dedup WHERE sid LIKE '{tag}-%'")
    assert row == {"n": 20}


def field(log_line: str, name: str) -> str:
    """The value of ``name=value`` in a console log line."""
    found = re.search(rf"\b{name}=(\S+)", log_line)
    assert found, (name, log_line)
    return found.group(1)


def _clickhouse_time(iso: str | None) -> str | None:
    if iso is None:
        return None
    from datetime import datetime

    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_every_route_and_every_golden_fixture_through_the_running_pipeline(pipeline: Pipeline) -> None:
    """Each vendor body is posted to its route; the vendor's reply and the stored rows must match the golden file."""
    import json

    from ringback.normalizer.adapters import registry
    from ringback.routes import BY_NAME
    from tests.golden import cases

    replies = {"tencent": (200, OK), "http-status": (200, b"")}
    expected_events: dict[str, dict] = {}
    expected_dead: list[tuple[str, bytes, str]] = []
    for case in cases():
        body = case.body_path.read_bytes()
        style = BY_NAME[case.route].reply_style
        assert post(pipeline.edge_url + "/callbacks/" + case.route, body) == replies[style], case.name
        for outcome in json.loads(case.expected_path.read_text(encoding="utf-8")):
            if "event" in outcome:
                expected_events[outcome["event"]["event_id"]] = outcome["event"]
            else:
                expected_dead.append((case.route, body, outcome["dead_letter"]["reason_type"]))
    assert {case.route for case in cases()} == set(registry())  # every route was exercised

    ids = ", ".join(f"'{event_id}'" for event_id in expected_events)
    columns = (
        "event_id, event_type, source, route, status, vendor_status, vendor_code, vendor_description, message_text, "
        "toString(charge) AS charge, currency, duration_s, billable_minutes, from_e164, to_e164, "
        "toString(occurred_at) AS occurred_at, toString(callee_answered_at) AS callee_answered_at, leg, key_digits, "
        "recording_url, conference_id, custom_param, repairs, attributes"
    )
    rows = wait_for_rows(
        pipeline.data_dir,
        f"SELECT {columns} FROM ringback.events_dedup WHERE event_id IN ({ids})",
        len(expected_events),
        timeout_s=90,
    )
    assert len(rows) == len(expected_events)
    for row in rows:
        want = expected_events[row["event_id"]]
        for name in (
            "event_type",
            "source",
            "route",
            "status",
            "vendor_status",
            "vendor_code",
            "vendor_description",
            "message_text",
            "currency",
            "duration_s",
            "billable_minutes",
            "from_e164",
            "to_e164",
            "leg",
            "key_digits",
            "recording_url",
            "conference_id",
            "custom_param",
            "repairs",
            "attributes",
        ):
            assert row[name] == want[name], (row["event_id"], name)
        assert (row["charge"] and Decimal(row["charge"])) == (want["charge"] and Decimal(want["charge"])), row[
            "event_id"
        ]
        assert row["occurred_at"] == _clickhouse_time(want["occurred_at"]), row["event_id"]
        assert row["callee_answered_at"] == _clickhouse_time(want["callee_answered_at"]), row["event_id"]

    wanted_dead = {(route, body.decode("utf-8", "replace"), reason) for route, body, reason in expected_dead}
    stored_dead: set[tuple[str, str, str]] = set()
    deadline = time.monotonic() + 60
    while not wanted_dead <= stored_dead and time.monotonic() < deadline:
        time.sleep(0.5)
        # One dead letter per request; each of its failed reports is listed with its reason.
        stored_dead = {
            (r["route"], r["body"], r["reason"])
            for r in sql_rows(
                pipeline.data_dir,
                "SELECT route, body, arrayJoin(failures.failure_type) AS reason FROM ringback.dead_letters",
            )
        }
    assert wanted_dead <= stored_dead, wanted_dead - stored_dead


def test_reconcile_shows_the_ledger_without_gaps(pipeline: Pipeline) -> None:
    import subprocess

    from tests.pipeline import ringback

    tag = uuid.uuid4().hex[:8]
    for i in range(5):
        assert (
            post(
                pipeline.edge_url + SMS_ROUTE,
                reports(
                    tag, (str(i), "13800138000", "SUCCESS", "DELIVRD"), (f"{i}b", "13800138001", "FAIL", "UNDELIV")
                ),
            )[0]
            == 200
        )
    assert post(pipeline.edge_url + "/callbacks/cdr-push", b"not json at all")[0] == 200
    wait_for_rows(pipeline.data_dir, f"SELECT sid FROM ringback.events_dedup WHERE sid LIKE '{tag}-%'", 10)

    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            ringback("reconcile", "--data-dir", str(pipeline.data_dir), "--json"), capture_output=True, timeout=60
        )
        output = done.stdout.decode()
        lines = {line["route"]: line for line in json.loads(output or "[]")}
        settled = lines and all(
            line["accepted"] == line["stored_requests"] == line["raw"]
            and line["normalized"] == line["stored_events"]
            and line["dead_lettered"] == line["stored_dead"]
            and line["check"] == "ok"
            for line in lines.values()
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done.returncode == 0, done.stderr.decode()
    assert settled, output
    assert "tencent/sms-status" in lines and "cdr-push" in lines
    assert all(line["check"] == "ok" for line in lines.values())
    text = subprocess.run(
        ringback("reconcile", "--data-dir", str(pipeline.data_dir)), capture_output=True, timeout=60
    ).stdout.decode()
    assert "stored_requests" in text and "GAP" not in text


def test_loadgen_smoke_every_unique_event_it_sent_is_stored(pipeline: Pipeline) -> None:
    import json
    import subprocess

    from tests.pipeline import ringback

    done = subprocess.run(
        ringback(
            "loadgen",
            *("--url", pipeline.edge_url, "--requests", "300", "--connections", "8", "--json"),
            *("--malformed-share", "0.05", "--resend-share", "0.05"),  # none of one of them: about 1 run in 2 million
        ),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert summary["sent"] == summary["accepted"] == 300 and summary["failed"] == 0
    assert summary["resends"] > 0 and summary["malformed"] > 0 and len(summary["by_route"]) > 3
    tag = summary["tag"]
    query = (
        f"SELECT event_id FROM ringback.events_dedup WHERE startsWith(coalesce(sid, call_id, request_id, ''), '{tag}')"
    )
    assert len(wait_for_rows(pipeline.data_dir, query, summary["expected_events"])) == summary["expected_events"]
    # no vendor id to hold the tag
    replies = (
        f"SELECT event_id FROM ringback.events_dedup WHERE event_type = 'sms.reply' AND attributes['extend'] = '{tag}'"
    )
    assert len(wait_for_rows(pipeline.data_dir, replies, summary["expected_replies"])) == summary["expected_replies"]


def test_bench_smoke_runs_every_stage_and_ends_with_the_summary_line(tmp_path: Path) -> None:
    """`make bench` in miniature, so the benchmark cannot rot; its numbers mean nothing here."""
    import json
    import shutil
    import subprocess

    from tests.pipeline import ringback

    done = subprocess.run(ringback("bench", "--quick", "--results", str(tmp_path)), capture_output=True, timeout=600)
    assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:]
    last = done.stdout.decode().strip().splitlines()[-1]
    assert last.startswith("bench: edge_ratio=") and " lost=0" in last
    values = dict(pair.split("=", 1) for pair in last.removeprefix("bench: ").split())
    per_record = ("edge_cpu_us_per_req", "edge_baseline_cpu_us_per_req", "normalizer_us_per_msg")
    per_record += ("normalizer_baseline_us_per_msg", "sink_us_per_row", "sink_baseline_us_per_row")
    e2e_keys = ("e2e_stored_cps", "e2e_reply_p99_ms", "e2e_cpu_us", "e2e_cpu_us_edge", "e2e_cpu_us_normalizer")
    e2e_keys += ("e2e_cpu_us_sink", "e2e_cpu_us_broker", "e2e_loadgen_cpu_us", "e2e_wrk")
    for key in (*per_record, *e2e_keys):
        assert key in values and float(values[key]) >= 0, (key, last)
    for key in ("normalizer_us_per_msg", "sink_us_per_row", "e2e_stored_cps", "e2e_cpu_us_normalizer"):
        assert float(values[key]) > 0, (key, last)  # the pipeline's roles did work on every stored callback
    assert sum(float(values[f"e2e_cpu_us_{role}"]) for role in ("edge", "normalizer", "sink", "broker")) <= (
        float(values["e2e_cpu_us"]) + 0.5
    )
    bare = float(values["edge_baseline_cpu_us_per_req"])
    if bare:  # the pipeline's CPU per callback in bare requests of the same run
        assert abs(float(values["e2e_cpu_per_bare_request"]) - float(values["e2e_cpu_us"]) / bare) <= 0.01, last
    (report_path,) = tmp_path.glob("bench-*.json")
    report = json.loads(report_path.read_text())
    e2e = report["e2e"]
    assert e2e["load_generator"] == ("wrk" if shutil.which("wrk") else "loadgen")
    if shutil.which("wrk"):  # unique bodies: every accepted callback stored, none collapsed by dedup
        assert e2e["failed"] == 0 and e2e["sent"] == e2e["accepted"]  # the script's requests are well formed
        assert e2e["stored_callbacks"] >= e2e["accepted"] > 0 and e2e["lost_events"] == 0
        assert e2e["stored_events"] == e2e["expected_events"] >= e2e["stored_callbacks"]
        assert float(values["edge_cpu_us_per_req"]) > 0 and values["e2e_wrk"] == "1"
    assert report["normalizer"]["events"] > 0 and report["sink"]["stored"] == report["sink"]["rows"]
    assert list(tmp_path.glob("bench-*.png"))
    if shutil.which("wrk"):  # `make test` installs it; every request of every edge run must have been answered 200
        edge = report["edge"]
        assert (
            edge["edge_rps"] > 0
            and edge["baseline_rps"] > 0
            and edge["edge_journal_rps"] > 0
            and edge["edge_tenants_rps"] > 0
        )
        assert (
            edge["edge_errors"]
            == edge["baseline_errors"]
            == edge["edge_x2_errors"]
            == edge["edge_journal_errors"]
            == edge["edge_tenants_errors"]
            == 0
        ), edge
    else:
        assert "skipped" in report["edge"]


def test_hand_written_expectations_through_the_running_pipeline(pipeline: Pipeline) -> None:
    """Bodies and the rows they must become, written from the README (event types, status vocabulary,
    times, money and numbers), not by any generator: the golden files are rewritten from the code when
    asked, these are not."""
    import json

    tag = uuid.uuid4().hex[:8]
    cdr = {
        "requestid": f"{tag}-call",
        "appid": f"app-{tag}",
        "fid": "4",
        "caller": "13810603954",
        "called": "18810207016",
        "callerstime": "2026-11-21 11:19:36.000",
        "calleretime": "2026-11-21 11:20:36.000",
        "calledstime": "2026-11-21 11:19:40.000",
        "calledetime": "2026-11-21 11:20:40.000",
        "duration": "60",
        "oriamount": "0.60",
        "stateDesc": "正常",
    }
    voice = {
        "voicecode_callback": {
            "result": "0",
            "accept_time": "1763704810",
            "call_from": "075583763333",
            "callid": f"{tag}-voice",
            "end_calltime": "1763704850",
            "fee": "1",
            "mobile": "13800138000",
            "nationcode": "86",
            "start_calltime": "1763704800",
        }
    }
    state = {"callId": f"{tag}-c2c", "callStatus": "answered", "userFlag": "dst", "timeStamp": "2026-11-21 10:00:10"}
    sms = reports(
        tag, ("contradiction", "13800138000", "SUCCESS", "UNDELIV"), ("pending", "13900139000", "", "ENROUTE")
    )
    sent = [
        ("/callbacks/cdr-push", json.dumps({"cdr": [cdr]}).encode()),
        ("/callbacks/tencent/voicecode", json.dumps(voice).encode()),
        ("/callbacks/callback-call/status", json.dumps(state).encode()),
        (SMS_ROUTE, sms),
        (
            "/callbacks/cdr-push",
            json.dumps({"cdr": [{**cdr, "requestid": f"{tag}-comma", "oriamount": "1,5"}]}).encode(),
        ),
        (
            "/callbacks/cdr-push",
            json.dumps({"cdr": [{**cdr, "requestid": f"{tag}-minus", "oriamount": "-1"}]}).encode(),
        ),
    ]
    for route, body in sent:
        assert post(pipeline.edge_url + route, body)[0] == 200, route
    columns = (
        "coalesce(request_id, call_id, sid) AS id, event_type, source, route, status, toString(charge) AS charge, "
        "currency, duration_s, billable_minutes, from_e164, to_e164, leg, toString(occurred_at) AS occurred_at"
    )
    query = (
        f"SELECT {columns} FROM ringback.events_dedup "
        f"WHERE startsWith(coalesce(request_id, call_id, sid, ''), '{tag}') ORDER BY id"
    )
    rows = wait_for_rows(pipeline.data_dir, query, 5)
    none = {"charge": None, "currency": None, "duration_s": None, "billable_minutes": None, "leg": None}
    sms_row = {
        **none,
        "event_type": "sms.delivery_report",
        "source": "tencent.sms_status",
        "route": "tencent/sms-status",
    }
    assert rows == [
        {  # the callee leg answered at 10:00:10 China time
            **none,
            "id": f"{tag}-c2c",
            "event_type": "call.state",
            "source": "callback_call",
            "route": "callback-call/status",
            "status": "answered",
            "from_e164": None,
            "to_e164": None,
            "leg": "callee",
            "occurred_at": "2026-11-21 02:00:10.000000",
        },
        {  # the later leg hung up at 11:20:40 China time
            **none,
            "id": f"{tag}-call",
            "event_type": "call.cdr",
            "source": "cdr_push",
            "route": "cdr-push",
            "status": "answered",
            "charge": "0.6",
            "currency": "CNY",
            "duration_s": 60,
            "from_e164": "+8613810603954",
            "to_e164": "+8618810207016",
            "occurred_at": "2026-11-21 03:20:40.000000",
        },
        {  # SUCCESS with a failure code: the codes contradict each other
            **sms_row,
            "id": f"{tag}-contradiction",
            "status": "unknown",
            "from_e164": None,
            "to_e164": "+8613800138000",
            "occurred_at": "2026-11-21 01:30:15.000000",
        },
        {  # no report_status, the receipt still on its way
            **sms_row,
            "id": f"{tag}-pending",
            "status": "pending",
            "from_e164": None,
            "to_e164": "+8613900139000",
            "occurred_at": "2026-11-21 01:30:15.000000",
        },
        {  # answered; one Tencent minute; no duration given, none derived; ended at 06:00:50 UTC
            **none,
            "id": f"{tag}-voice",
            "event_type": "voice.code_status",
            "source": "tencent.voicecode",
            "route": "tencent/voicecode",
            "status": "answered",
            "billable_minutes": 1,
            "from_e164": "+8675583763333",  # the landline shown, its trunk 0 dropped
            "to_e164": "+8613800138000",
            "occurred_at": "2025-11-21 06:00:50.000000",
        },
    ]
    dead = wait_for_rows(
        pipeline.data_dir,
        "SELECT failure_type, position(body, '-comma') > 0 AS comma FROM ringback.dead_letters WHERE "
        f"position(body, '{tag}-comma') > 0 OR position(body, '{tag}-minus') > 0 ORDER BY comma",
        2,
    )
    assert dead == [{"failure_type": "invalid_amount", "comma": 0}, {"failure_type": "invalid_amount", "comma": 1}]

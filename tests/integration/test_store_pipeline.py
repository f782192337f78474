"""What the store makes of resends and apps, on a running `ringback run` with one tenant whose app_id is
its Tencent app: a resend that moves a time is billed once, at its first values; calls, ASR and ACD
count under the app each call belongs to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.pipeline import Pipeline, post, sql_rows, wait_for_rows

pytestmark = pytest.mark.integration
SECRET = "acme-secret-4f9a2c71d0"
TENCENT_APP = "1400123456"
TENANTS_FILE = f"""
allow_anonymous = false
[[tenants]]
id = "acme"
secret = "{SECRET}"
app_id = "{TENCENT_APP}"
"""
DAY = "2026-12-01"
WAIT_S = 120.0


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("store")
    (home / "tenants.toml").write_text(TENANTS_FILE)
    running = Pipeline(
        home / "data",
        extra_args=["--tenants-file", str(home / "tenants.toml"), "--conflict-check-interval-s", "1"],
    ).start()
    yield running
    running.stop()


def send(pipeline: Pipeline, route: str, body: dict[str, Any]) -> None:
    url = f"{pipeline.edge_url}/t/acme/{SECRET}/callbacks/{route}"
    status, reply = post(url, json.dumps(body).encode())
    assert status == 200, reply


MONEY_2 = {
    "requestid": "MONEY-2",
    "appid": "appM",
    "fid": "2",
    "tel": "13800000001",
    "stime": "2026-12-01 11:19:36",
    "etime": "2026-12-01 11:19:58",
    "duration": "10",
    "oriamount": "0.06",
}
MONEY_4 = {
    "requestid": "MONEY-4",
    "appid": "appM",
    "fid": "4",
    "caller": "13810603954",
    "called": "18810207016",
    "callerstime": "2026-12-01 11:19:36",
    "calleretime": "2026-12-01 11:20:36",
    "calledstime": "2026-12-01 11:19:40",
    "calledetime": "2026-12-01 11:20:36",
    "duration": "56",
    "oriamount": "0.60",
    "stateDesc": "正常",
}
MONEY_H = {
    "callId": "MONEY-H",
    "appId": "appH",
    "src": "008613631686024",
    "dst": "008613800138000",
    "startSrcCallTime": "2026-12-01 14:00:00",
    "srcAcceptTime": "2026-12-01 14:00:03",
    "dstAcceptTime": "2026-12-01 14:00:05",
    "endCallTime": "2026-12-01 14:00:35",
    "callEndStatus": "1",
    "duration": "30",
}


def test_a_resend_that_moves_a_time_is_one_event_billed_at_its_first_values(pipeline: Pipeline) -> None:
    ids = "('MONEY-2', 'MONEY-4', 'MONEY-H')"
    copies = f"SELECT event_id FROM ringback.event_copies WHERE ifNull(request_id, call_id) IN {ids}"
    send(pipeline, "cdr-push", {"cdr": [MONEY_2]})
    send(pipeline, "cdr-push", {"cdr": [MONEY_4]})
    send(pipeline, "callback-call/hangup", MONEY_H)
    rows_of(pipeline, copies, lambda rows: len(rows) == 3)  # stored: the resends come in later batches
    resent_2 = {**MONEY_2, "etime": "2026-12-03 11:19:58", "duration": "9999", "oriamount": "999.99"}
    send(pipeline, "cdr-push", {"cdr": [resent_2]})
    send(pipeline, "cdr-push", {"cdr": [{**MONEY_4, "calleretime": "2026-12-01 13:20:36", "oriamount": "9.60"}]})
    send(pipeline, "callback-call/hangup", {**MONEY_H, "endCallTime": "2026-12-02 14:00:35", "duration": "3000"})
    rows_of(pipeline, copies, lambda rows: len(rows) == 6)
    # then the conflicts of all three are recorded
    conflicts = rows_of(
        pipeline,
        f"SELECT event_id, request_id, call_id, tenant, app_id, source, toUInt32(versions) AS versions "
        "FROM ringback.event_conflicts FINAL "
        f"WHERE ifNull(request_id, call_id) IN {ids}",
        lambda rows: len(rows) == 3,
    )
    assert {(row["tenant"], row["app_id"], row["source"], row["versions"]) for row in conflicts} == {
        ("acme", "appM", "cdr_push", 2),
        ("acme", "appH", "callback_call", 2),
    } and len(conflicts) == 3
    events = sql_rows(
        pipeline.data_dir,
        f"SELECT ifNull(request_id, call_id) AS id, toString(charge) AS charge, toInt32(duration_s) AS duration_s, "
        f"toString(occurred_at) AS occurred_at FROM ringback.events WHERE ifNull(request_id, call_id) IN {ids} "
        "ORDER BY id",
    )
    assert [(e["id"], e["charge"], e["duration_s"], e["occurred_at"]) for e in events] == [
        ("MONEY-2", "0.06", 10, "2026-12-01 03:19:58.000000"),
        ("MONEY-4", "0.6", 56, "2026-12-01 03:20:36.000000"),
        ("MONEY-H", None, 30, "2026-12-01 06:00:35.000000"),
    ]
    (total,) = sql_rows(
        pipeline.data_dir, f"SELECT toString(sum(charge)) AS charge FROM ringback.events WHERE request_id IN {ids}"
    )
    assert Decimal(total["charge"]) == Decimal("0.66")


def rows_of(pipeline: Pipeline, query: str, done: Any) -> list[dict[str, Any]]:
    """The rows of ``query`` once ``done(rows)`` holds (asserted)."""
    rows = wait_for_rows(pipeline.data_dir, query, done, WAIT_S)
    assert done(rows), rows
    return rows


def cdr_states(request_id: str, *states: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "requestid": request_id,
            "src": "13800138000",
            "dsc": "13900139000",
            "state": state,
            "timestamp": f"{DAY} {at}",
        }
        for state, at in states
    ]


def two_way(request_id: str, app: str, answered: bool, seconds: int, start: str, end: str) -> dict[str, Any]:
    return {
        "requestid": request_id,
        "appid": app,
        "fid": "4",
        "caller": "13800138000",
        "called": "13900139000",
        "callerstime": f"{DAY} {start}",
        "calleretime": f"{DAY} {end}",
        "calledstime": f"{DAY} {start}" if answered else "",
        "calledetime": f"{DAY} {end}" if answered else "",
        "duration": str(seconds),
        "oriamount": "0.10",
        "stateDesc": "正常" if answered else "无人接听",
    }


def test_calls_asr_and_acd_count_under_each_calls_own_app(pipeline: Pipeline) -> None:
    # Two CDR-platform apps under one tenant whose app_id is its Tencent app. The state pushes carry no app.
    ring = (("callout", "10:00:00"), ("alerting", "10:00:02"))
    for body in [
        *cdr_states("APPS-A1", *ring, ("answer", "10:00:05")),
        *cdr_states("APPS-A2", *ring),
        *cdr_states("APPS-A3", *ring),  # its CDR has not come yet: no app to count it under
        *cdr_states("APPS-B1", *ring, ("answer", "10:00:05")),
    ]:
        send(pipeline, "cdr-push", body)
    send(pipeline, "cdr-push", {"cdr": [two_way("APPS-A1", "appA", True, 60, "10:00:05", "10:01:05")]})
    send(pipeline, "cdr-push", {"cdr": [two_way("APPS-A2", "appA", False, 0, "10:00:00", "10:00:30")]})
    send(pipeline, "cdr-push", {"cdr": [two_way("APPS-B1", "appB", True, 30, "10:00:05", "10:00:35")]})
    voice = {
        "result": "0",
        "accept_time": "1796083210",
        "call_from": "075583763333",
        "callid": "APPS-T1",
        "end_calltime": "1796083250",
        "fee": "1",
        "mobile": "13800138000",
        "nationcode": "86",
        "start_calltime": "1796083200",
    }
    send(pipeline, "tencent/voicecode", {"voicecode_callback": voice})
    calls = "ifNull(call_id, request_id) LIKE 'APPS-%'"
    rows_of(pipeline, f"SELECT event_id FROM ringback.events WHERE {calls}", lambda rows: len(rows) == 14)
    per_call = sql_rows(pipeline.data_dir, "SELECT call_key, app_id FROM ringback.calls WHERE call_key LIKE 'APPS-%'")
    assert {row["call_key"]: row["app_id"] for row in per_call} == {
        "APPS-A1": "appA",
        "APPS-A2": "appA",
        "APPS-A3": None,
        "APPS-B1": "appB",
        "APPS-T1": TENCENT_APP,
    }
    usage = sql_rows(
        pipeline.data_dir,
        "SELECT app_id, toUInt32(calls) AS calls, toUInt32(answered) AS answered, asr, acd_s FROM ringback.daily_usage "
        f"WHERE tenant = 'acme' AND app_id IN ('appA', 'appB', '{TENCENT_APP}') ORDER BY app_id",
    )
    # by hand: appA 2 calls, A1 answered for 60 s; appB 1 call answered for 30 s; the Tencent app's one
    # call answered, and Tencent gives no duration, so no ACD
    assert [(u["app_id"], u["calls"], u["answered"], u["asr"], u["acd_s"]) for u in usage] == [
        (TENCENT_APP, 1, 1, 1, None),
        ("appA", 2, 1, 0.5, 60),
        ("appB", 1, 1, 1, 30),
    ]


def test_one_push_of_cdrs_from_many_days_is_stored_whole(pipeline: Pipeline) -> None:
    """A push (or a backfill) whose events fall on more days than ClickHouse takes partitions in one insert
    block by default (100) is stored, not retried for ever; a callback after it is stored too."""
    days = 150
    cdrs = [
        {
            "requestid": f"MANY-DAYS-{day}",
            "appid": "appM",
            "fid": "2",
            "tel": "13800000001",
            "stime": f"{(date(2026, 1, 1) + timedelta(days=day)).isoformat()} 11:19:36",
            "etime": f"{(date(2026, 1, 1) + timedelta(days=day)).isoformat()} 11:19:58",
            "duration": "22",
            "oriamount": "0.06",
        }
        for day in range(days)
    ]
    send(pipeline, "cdr-push", {"cdr": cdrs})
    send(pipeline, "cdr-push", {"cdr": [{**cdrs[0], "requestid": "MANY-DAYS-AFTER"}]})
    rows = rows_of(
        pipeline,
        "SELECT count() AS n, uniqExact(toDate(occurred_at)) AS days FROM ringback.events "
        "WHERE request_id LIKE 'MANY-DAYS-%'",
        lambda rows: rows and int(rows[0]["n"]) == days + 1,
    )
    assert int(rows[0]["days"]) == days

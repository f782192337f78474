"""The analysts' views on the real engine, against numbers worked out by hand, with vendor resends and
replays among the events (the views must not count them twice). Events come from the real adapters
and are stored by the real sink."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ringback.config import Settings
from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.dead_letter import WHOLE_REQUEST, DeadLetter, Failure
from ringback.runtime.raw import RawCallback, new_ingest_id
from ringback.sink.worker import Sink
from tests import docs
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration
DAY = "2026-01-05"
RECEIVED_US = 1_767_600_000_000_000  # 2026-01-05T08:00:00Z, the same for every copy: replays


def sms(sid: str, mobile: str, status: str, code: str, at: str) -> bytes:
    return json.dumps(
        [
            {
                "user_receive_time": f"{DAY} {at}",
                "nationcode": "86",
                "mobile": mobile,
                "report_status": status,
                "errmsg": code,
                "description": code,
                "sid": sid,
            }
        ]
    ).encode()


def click_to_call(tag: str) -> list[tuple[str, bytes]]:
    call = f"{tag}-x"
    state = [
        (
            "callback-call/status",
            json.dumps(
                {"callId": call, "callStatus": word, "userFlag": leg, "timeStamp": f"{DAY} 10:00:{second:02d}"}
            ).encode(),
        )
        for word, leg, second in (
            ("invite", "src", 0),
            ("ringing", "dst", 5),
            ("answered", "dst", 10),
            ("disaccept", "dst", 40),
        )
    ]
    cdr = json.dumps(
        {
            "callId": call,
            "src": "13800138000",
            "dst": "13900139000",
            "startSrcCallTime": f"{DAY} 10:00:00",
            "dstAcceptTime": f"{DAY} 10:00:10",
            "endCallTime": f"{DAY} 10:01:10",
            "callEndStatus": "1",
            "duration": "60",
        }
    ).encode()
    return [
        *state,
        ("callback-call/hangup", cdr),
        ("callback-call/hangup", cdr),  # the CDR resent
        ("callback-call/record", json.dumps({"callId": call, "recordUrl": "https://rec.example/x.mp3"}).encode()),
        ("callback-call/keypress", json.dumps({"callId": call, "key": "1", "timeStamp": f"{DAY} 10:00:20"}).encode()),
        *caller_answered_only(f"{tag}-u"),
    ]


def caller_answered_only(call: str) -> list[tuple[str, bytes]]:
    """Click-to-call rings the caller first: the caller's leg answers, the callee's is still ringing. Not answered."""
    return [
        (
            "callback-call/status",
            json.dumps(
                {"callId": call, "callStatus": word, "userFlag": leg, "timeStamp": f"{DAY} 10:05:{second:02d}"}
            ).encode(),
        )
        for word, leg, second in (("invite", "src", 0), ("answered", "src", 3), ("ringing", "dst", 5))
    ]


def cdr_platform(tag: str) -> list[tuple[str, bytes]]:
    answered = {
        "requestid": f"{tag}-y",
        "appid": f"{tag}-app",
        "fid": "4",
        "caller": "13800138000",
        "called": "13900139000",
        "callerstime": f"{DAY} 11:00:00.000",
        "calleretime": f"{DAY} 11:01:05.000",
        "calledstime": f"{DAY} 11:00:05.000",
        "calledetime": f"{DAY} 11:01:05.000",
        "duration": "60",
        "oriamount": "0.60",
        "stateDesc": "正常",
        "tapesurl": "NoTapes",
    }
    unanswered = {
        "requestid": f"{tag}-z",
        "appid": f"{tag}-app",
        "fid": "4",
        "caller": "13800138000",
        "called": "13700137000",
        "callerstime": f"{DAY} 12:00:00.000",
        "calleretime": f"{DAY} 12:00:30.000",
        "calledstime": "",
        "calledetime": "",
        "duration": "0",
        "oriamount": "0",
        "stateDesc": "无人接听",
        "tapesurl": "NoTapes",
    }
    states = [
        (
            "cdr-push",
            json.dumps(
                {
                    "requestid": f"{tag}-y",
                    "src": "13800138000",
                    "dsc": "13900139000",
                    "state": state,
                    "timestamp": f"{DAY} 11:00:{second:02d}.000",
                }
            ).encode(),
        )
        for state, second in (("callout", 0), ("alerting", 2), ("answer", 5))
    ]
    cdrs = json.dumps({"cdr": [answered, unanswered]}).encode()
    return [*states, ("cdr-push", cdrs), ("cdr-push", cdrs)]  # the platform resends on a 500


def tencent_voice(tag: str) -> list[tuple[str, bytes]]:
    body = {
        "voicecode_callback": {
            "result": "0",
            "accept_time": "1767607210",
            "call_from": "075583763333",
            "callid": f"{tag}-v",
            "end_calltime": "1767607250",
            "fee": "1",
            "mobile": "13800138000",
            "nationcode": "86",
            "start_calltime": "1767607200",
        }
    }
    # A prompt whose key press has arrived and its status not yet: a call whose outcome is unknown so far.
    key_only = {
        "voicekey_callback": {
            "callid": f"{tag}-w",
            "keypress": "2",
            "mobile": "13900139000",
            "nationcode": "86",
            "call_from": "075583763333",
        }
    }
    return [("tencent/voicecode", json.dumps(body).encode()), ("tencent/voiceprompt", json.dumps(key_only).encode())]


def sms_traffic(tag: str) -> list[tuple[str, bytes]]:
    a, b, c, d = f"{tag}-a", f"{tag}-b", f"{tag}-c", f"{tag}-d"
    delivered = sms(a, "13800138000", "SUCCESS", "DELIVRD", "10:00:05")
    return [
        ("tencent/sms-status", sms(a, "13800138000", "FAIL", "ENROUTE", "10:00:00")),
        ("tencent/sms-status", delivered),
        ("tencent/sms-status", delivered),  # resent
        ("tencent/sms-status", sms(b, "13900139000", "SUCCESS", "DELIVRD", "10:01:00")),
        ("tencent/sms-status", sms(c, "13700137000", "FAIL", "UNDELIV", "10:02:00")),
        # the vendor's in-progress receipt (no report_status, ENROUTE: pending), then the final one
        ("tencent/sms-status", sms(d, "13600136000", "", "ENROUTE", "10:03:00")),
        ("tencent/sms-status", sms(d, "13600136000", "SUCCESS", "DELIVRD", "10:03:09")),
    ]


@pytest.fixture
async def stored(
    broker: EmbeddedBroker, chdb_dir: Path, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Sink, str]]:
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{chdb_dir}", conflict_check_interval_s=0.01
    )
    await kafka.ensure_topics(settings)
    sink = Sink(settings)
    await sink.start()
    tenant = f"views-{uuid.uuid4().hex[:8]}"
    ctx = Context(blank_event=sink.codec.blank_event())
    payloads = []
    for route, body in [*sms_traffic(tenant), *click_to_call(tenant), *cdr_platform(tenant), *tencent_voice(tenant)]:
        raw = RawCallback(
            route,
            new_ingest_id(),
            RECEIVED_US,
            "10.0.0.1",
            "application/json",
            body,
            tenant=tenant,
            tenant_app_id=f"{tenant}-app",
        )
        outcomes = normalize_message(raw, registry(), ctx)
        assert not [o for o in outcomes if isinstance(o, Rejection)], (route, outcomes)
        payloads += [sink.codec.encode(event) for event in outcomes]
    await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, payload, []) for payload in payloads])
    taken = 0
    for _ in range(100):
        taken += await sink.step()
        if taken >= len(payloads):
            break
    await sink.flush()
    yield sink, tenant
    await sink.stop()


async def query(sink: Sink, sql: str) -> list[dict[str, Any]]:
    result = await sink.on_db_thread(lambda: sink.client.query(sql))
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


async def test_sms_messages_have_their_final_status_and_resends_count_once(stored: tuple[Sink, str]) -> None:
    sink, tenant = stored
    rows = await query(
        sink,
        (
            "SELECT sid, final_status, final_code, reports, statuses, carrier FROM ringback.sms_messages WHERE "
            f"tenant = '{tenant}' ORDER BY sid"
        ),
    )
    assert [(r["sid"], r["final_status"], r["final_code"], r["reports"], r["statuses"]) for r in rows] == [
        (
            f"{tenant}-a",
            "delivered",
            "DELIVRD",
            2,
            ["failed", "delivered"],
        ),  # FAIL/ENROUTE (failed, README), then DELIVRD (resent once)
        (f"{tenant}-b", "delivered", "DELIVRD", 1, ["delivered"]),
        (f"{tenant}-c", "failed", "UNDELIV", 1, ["failed"]),
        (f"{tenant}-d", "delivered", "DELIVRD", 2, ["pending", "delivered"]),
    ]
    assert all(r["carrier"] == "China Mobile" for r in rows)
    (hourly,) = await query(
        sink,
        f"SELECT messages, delivered, failed, pending, sum(messages) OVER () AS total FROM "
        "(SELECT sum(messages) AS messages, sum(delivered) AS delivered, sum(failed) AS failed, sum(pending) AS "
        "pending "
        f"FROM ringback.sms_delivery_hourly WHERE tenant = '{tenant}')",
    )
    assert (hourly["messages"], hourly["delivered"], hourly["failed"], hourly["pending"]) == (4, 3, 1, 0)


async def test_one_row_per_call_with_the_same_meaning_from_every_source(stored: tuple[Sink, str]) -> None:
    sink, tenant = stored
    rows = {r["call_key"]: r for r in await query(sink, f"SELECT * FROM ringback.calls WHERE tenant = '{tenant}'")}
    assert set(rows) == {f"{tenant}-{k}" for k in "xuyzvw"}
    x, u, y, z, v, w = (rows[f"{tenant}-{k}"] for k in "xuyzvw")
    assert (
        x["call_source"],
        x["answered"],
        x["duration_s"],
        x["status"],
        x["recording_url"] if "recording_url" in x else x["recording"],
        x["keys_pressed"],
    ) == ("callback_call", True, 60, "answered", "https://rec.example/x.mp3", ["1"])
    assert (
        x["answered_at"].strftime("%H:%M:%S") == "02:00:10" and x["ended_at"].strftime("%H:%M:%S") == "02:01:10"
    )  # 10:00:10 China time
    assert x["events"] == 7  # 4 states, the CDR (resent: once), the recording, the key press
    assert (u["answered"], u["answered_at"], u["status"]) == (False, None, "ringing")  # only the caller's leg answered
    assert (y["call_source"], y["answered"], y["duration_s"], y["charge"], y["status"]) == (
        "cdr_push",
        True,
        60,
        Decimal("0.6"),
        "answered",
    )
    assert y["answered_at"].strftime("%H:%M:%S") == "03:00:05" and y["events"] == 4  # 3 state pushes and the CDR
    assert (z["answered"], z["duration_s"], z["status"], z["answered_at"]) == (False, 0, "no_answer", None)
    assert (v["call_source"], v["answered"], v["billable_minutes"], v["duration_s"]) == ("tencent.voice", True, 1, None)
    assert (w["call_source"], w["answered"], w["status"], w["keys_pressed"]) == (
        "tencent.voice",
        False,
        "unknown",
        ["2"],
    )  # not "key_pressed"


async def test_daily_usage_adds_up_once_whatever_was_resent(stored: tuple[Sink, str]) -> None:
    sink, tenant = stored
    (day,) = await query(
        sink,
        "SELECT toString(day) AS day, sum(calls) AS calls, sum(answered) AS answered, any(asr) AS asr, any(acd_s) AS "
        "acd_s, "
        f"sum(billable_minutes) AS minutes, sum(billed_seconds) AS seconds, sum(charge) AS charge, sum(sms) AS sms "
        f"FROM ringback.daily_usage WHERE tenant = '{tenant}' GROUP BY day",
    )
    # 6 calls (w with only its key press so far, u whose callee never answered), 3 answered (x, y, v); ACD over
    # the answered calls with a duration (x 60 s, y 60 s); billed: the CDRs' 60 + 60 + 0 seconds (the click-to-call
    # CDR once despite its resend), 1 Tencent minute, 0.60 yuan (the CDR-platform push resent: once); 4 SMS messages.
    assert day == {
        "day": DAY,
        "calls": 6,
        "answered": 3,
        "asr": 0.5,
        "acd_s": 60.0,
        "minutes": 1,
        "seconds": 120,
        "charge": Decimal("0.6"),
        "sms": 4,
    }
    billed = await query(
        sink, f"SELECT sum(charge) AS charge, count() AS events FROM ringback.events WHERE tenant = '{tenant}'"
    )
    copies = await query(sink, f"SELECT count() AS copies FROM ringback.event_copies WHERE tenant = '{tenant}'")
    assert (
        billed[0]["charge"] == Decimal("0.6") and copies[0]["copies"] > billed[0]["events"]
    )  # the copies are there; the view counts each once


def cookbook_queries() -> list[str]:
    """The SQL of the docs' "Analyst cookbook", in its order."""
    section = docs.section("Analyst cookbook")
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)


async def test_the_readme_cookbook_answers_over_stored_events(stored: tuple[Sink, str]) -> None:
    sink, tenant = stored
    queries = cookbook_queries()
    assert len(queries) >= 10, "the cookbook's queries are not where this test looks"
    conflicts_and_dead = [sql for sql in queries if "event_conflicts" in sql or "dead_letters_by_reason" in sql]
    assert len(conflicts_and_dead) == 2, "the cookbook's conflict and dead-letter queries are not where expected"
    for sql in queries:
        if sql in conflicts_and_dead:  # below, once this tenant has a conflict and a dead letter
            continue
        timeline = "WHERE call_id = '" in sql
        sql = re.sub(r"call_id = '[^']*'", f"call_id = '{tenant}-x'", sql)
        rows = await query(sink, sql)
        assert rows, sql
        if timeline:  # the click-to-call call: every event about it, in order, the resent CDR once
            assert [(r["event_type"], r["status"]) for r in rows] == [
                ("call.state", "initiated"),
                ("call.state", "ringing"),
                ("call.state", "answered"),
                ("call.key_press", "key_pressed"),
                ("call.state", "ended"),
                ("call.cdr", "answered"),
                ("call.recording", "recorded"),
            ], rows

    # A differing resend of the CDR platform's answered call (0.90 instead of 0.60) and an unreadable request.
    await store_a_conflict_and_a_dead_letter(sink, tenant)
    conflicts_sql, dead_sql = sorted(conflicts_and_dead, key=lambda sql: "dead_letters_by_reason" in sql)
    conflicts = await query(
        sink,
        f"SELECT event_type, versions, arrayMap(c -> toString(c), charge) AS charges FROM ({conflicts_sql}) "
        f"WHERE event_id IN (SELECT event_id FROM ringback.events WHERE tenant = '{tenant}')",
    )
    assert conflicts == [{"event_type": "call.cdr", "versions": 2, "charges": ["0.6", "0.9"]}]
    dead = await query(sink, f"SELECT * FROM ({dead_sql}) WHERE tenant = '{tenant}'")
    assert dead == [
        {
            "tenant": tenant,
            "route": "tencent/sms-status",
            "failure_type": "invalid_json",
            "dead_requests": 1,
            "bodies": 1,
            "reports": 1,
        }
    ]


async def store_a_conflict_and_a_dead_letter(sink: Sink, tenant: str) -> None:
    ctx = Context(blank_event=sink.codec.blank_event())
    _route, cdrs = cdr_platform(tenant)[-1]
    dearer = cdrs.replace(b'"oriamount": "0.60"', b'"oriamount": "0.90"')
    assert dearer != cdrs
    raw = RawCallback(
        "cdr-push", new_ingest_id(), RECEIVED_US + 60_000_000, "10.0.0.1", "application/json", dearer, tenant=tenant
    )
    resent = [o for o in normalize_message(raw, registry(), ctx) if not isinstance(o, Rejection)]
    broken = RawCallback(
        "tencent/sms-status", new_ingest_id(), RECEIVED_US, "10.0.0.1", "application/json", b"[{oops", tenant=tenant
    )
    letter = DeadLetter.of(broken, [Failure(WHOLE_REQUEST, "invalid_json", "body is not valid JSON")], 0, "t")
    settings = sink.settings
    await produce(
        settings.kafka_bootstrap, settings.topic_normalized, [(None, sink.codec.encode(e), []) for e in resent]
    )
    await produce(settings.kafka_bootstrap, settings.topic_dlq, [(None, broken.body, letter.headers())])
    await step_until_stored(sink, len(resent) + 1)
    # The conflict watcher looks after a batch is stored: one more batch (an identical resend) makes it look.
    await produce(settings.kafka_bootstrap, settings.topic_normalized, [(None, sink.codec.encode(resent[0]), [])])
    await step_until_stored(sink, 1)


async def step_until_stored(sink: Sink, expected: int) -> None:
    taken = 0
    for _ in range(100):
        taken += await sink.step()
        if taken >= expected:
            break
    assert taken >= expected, f"{taken} of {expected} records taken"
    await sink.flush()

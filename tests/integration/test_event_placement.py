"""One row per event in ringback.events, the first arrival's, whatever a resend changes that is not an
identity field (times, amounts, durations, statuses) — on the real sink and the real embedded engine,
with events made by the real adapters, before and after every merge."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringback.config import Settings
from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.raw import RawCallback, new_ingest_id
from ringback.sink.worker import Sink
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration
BASE = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
CHINA = timedelta(hours=8)
#: Vendor times move this far either way in a resend: across hours and days (partitions).
MOVE_MINUTES = 4 * 24 * 60
RECEIVED_US = 1_796_000_000_000_000
#: What the first arrival must be seen with in ringback.events.
CHECKED = (
    "occurred_at",
    "status",
    "charge",
    "duration_s",
    "billable_minutes",
    "started_at",
    "answered_at",
    "ended_at",
    "app_id",
    "request_id",
    "from_number",
    "to_number",
    "vendor_code",
    "vendor_description",
    "key_digits",
    "attributes",
)
BILLING = ("status", "charge", "duration_s", "billable_minutes")


def local(minutes: int) -> str:
    return (BASE + CHINA + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S")


moments = st.integers(-MOVE_MINUTES, MOVE_MINUTES)
amounts = st.decimals(min_value=0, max_value=9999, places=2, allow_nan=False, allow_infinity=False).map(str)
seconds = st.integers(0, 99_999).map(str)


@st.composite
def cdr_voice_code(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # fid 2: fid, requestid, appid, tel are identity
    start = draw(moments)
    return {
        "requestid": f"{tag}-2",
        "appid": "appM",
        "fid": "2",
        "tel": "13800000001",
        "stime": local(start),
        "etime": local(start + draw(st.integers(0, 3000))),
        "duration": draw(seconds),
        "oriamount": draw(amounts),
    }


@st.composite
def cdr_two_way(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # fid 4: fid, requestid, appid, caller, called
    start = draw(moments)
    return {
        "requestid": f"{tag}-4",
        "appid": "appM",
        "fid": "4",
        "caller": "13800138000",
        "called": "13900139000",
        "callerstime": local(start),
        "calleretime": local(start + draw(st.integers(0, 3000))),
        "calledstime": local(start + 1),
        "calledetime": local(start + draw(st.integers(1, 3000))),
        "duration": draw(seconds),
        "oriamount": draw(amounts),
        "stateDesc": draw(st.sampled_from(["正常", "无人接听", "用户正忙", "关机", "正在处理中"])),
        "tapesurl": "NoTapes",
    }


@st.composite
def cdr_conference(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # fid 5: its times are identity
    return {
        "requestid": f"{tag}-5",
        "appid": "appM",
        "fid": "5",
        "tel": "15801445465",
        "confid": "516152",
        "stime": local(0),
        "etime": local(91),
        "duration": draw(seconds),
        "singleoriamount": draw(amounts),
    }


@st.composite
def hangup(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # callId, appId are identity
    start = draw(moments)
    return {
        "callId": f"{tag}-h",
        "appId": "appC",
        "src": "008613631686024",
        "dst": "008613800138000",
        "startSrcCallTime": local(start),
        "srcAcceptTime": local(start + 1),
        "dstAcceptTime": draw(st.sampled_from(["", local(start + 2)])),
        "endCallTime": local(start + draw(st.integers(2, 3000))),
        "callEndStatus": draw(st.sampled_from(["0", "1", "2", "3", "4", "5"])),
        "duration": draw(seconds),
        "recordUrl": "",
    }


@st.composite
def recording(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # callId, recordUrl; its time may be absent
    moment = draw(st.one_of(st.none(), moments))
    body: dict[str, Any] = {"callId": f"{tag}-r", "recordUrl": f"http://rec.example.com/{tag}.mp3"}
    if moment is not None:
        body["timeStamp"] = local(moment)
    return body


@st.composite
def voice_status(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # every field but fee is identity
    return {
        "voicecode_callback": {
            "result": "0",
            "accept_time": "1796100010",
            "call_from": "075583763333",
            "callid": f"{tag}-v",
            "end_calltime": "1796100050",
            "fee": draw(st.integers(0, 999).map(str)),
            "mobile": "13800138000",
            "nationcode": "86",
            "start_calltime": "1796100000",
        }
    }


@st.composite
def voice_prompt_status(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # fee and call_from are not identity
    return {
        "voiceprompt_callback": {
            "result": "1",
            "accept_time": "0",
            "call_from": draw(st.sampled_from(["", "075583763333", "4001234567"])),
            "callid": f"{tag}-p",
            "end_calltime": "1796190000",
            "fee": draw(st.integers(0, 999).map(str)),
            "mobile": "13900139000",
            "nationcode": "86",
            "start_calltime": "1796189990",
        }
    }


@st.composite
def voice_key_press(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # callid, keypress, mobile, nationcode
    return {
        "voicekey_callback": {
            "call_from": draw(st.sampled_from(["", "075583763333"])),
            "callid": f"{tag}-k",
            "keypress": "1#",
            "mobile": "13800138000",
            "nationcode": "86",
        }
    }


@st.composite
def voice_failure(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # the code as a number, 8 or "8"
    return {
        "voice_failure_callback": {
            "call_from": "",
            "callid": f"{tag}-f",
            "failure_code": draw(st.sampled_from([8, "8"])),
            "failure_reason": draw(st.sampled_from(["空号", "号码不存在", ""])),
            "mobile": "13800138000",
            "nationcode": "86",
        }
    }


#: Receipts of one send (report_status, errmsg, description): each is its own event.
SMS_STATES = (("SUCCESS", "DELIVRD", "用户短信送达成功"), ("", "ACCEPTD", ""), ("FAIL", "UNDELIV", "用户短信接收失败"))
SMS_RECEIPTS = len(SMS_STATES)


def sms_receipt(tag: str, index: int) -> dict[str, Any]:
    """Receipt ``index`` of the send ``tag``: every field the adapter reads is identity; each receipt at
    its own time, days apart."""
    state, errmsg, description = SMS_STATES[index]
    return {
        "user_receive_time": local(index * -MOVE_MINUTES // 2),
        "nationcode": "86",
        "mobile": "13800138000",
        "report_status": state,
        "errmsg": errmsg,
        "description": description,
        "sid": f"{tag}-s",
    }


@st.composite
def sms_receipts(draw: st.DrawFn, tag: str) -> list[dict[str, Any]]:
    """A request of the send's three receipts in any order (each at another report index), each with a
    field the adapter keeps as an attribute that a resend may change."""
    receipts = []
    for index in draw(st.permutations(range(SMS_RECEIPTS))):
        receipt = sms_receipt(tag, index)
        if draw(st.booleans()):
            receipt["ext"] = draw(st.sampled_from(["", "order-1", "order-2"]))
        receipts.append(receipt)
    return receipts


@st.composite
def call_state(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # callId, callStatus, userFlag, timeStamp, errorCode
    return {
        "callId": f"{tag}-cs",
        "callStatus": "answered",
        "userFlag": "dst",
        "timeStamp": local(-MOVE_MINUTES),
        "appId": draw(st.sampled_from(["appC", "appD"])),
        "requestId": draw(st.sampled_from(["req-1", "req-2"])),
        "src": draw(st.sampled_from(["008613631686024", "13631686024"])),
        "dst": "008613800138000",
    }


@st.composite
def call_key_press(draw: st.DrawFn, tag: str) -> dict[str, Any]:  # callId, key, timeStamp, phone
    return {
        "callId": f"{tag}-ck",
        "key": "5",
        "timeStamp": "1796100020",
        "phone": "13800138000",
        "appId": draw(st.sampled_from(["appC", "appD"])),
        "requestId": draw(st.sampled_from(["req-1", "req-2"])),
        "dst": draw(st.sampled_from(["008613800138000", "13800138000"])),
    }


#: A report kind: its route, the strategy of one request's report(s) for a tag, and how it is sent.
Kind = tuple[str, Callable[[str], st.SearchStrategy[Any]], Callable[[Any], bytes]]
ROUTES: dict[str, Kind] = {
    "fid2": ("cdr-push", cdr_voice_code, lambda r: json.dumps({"cdr": [r]}).encode()),
    "fid4": ("cdr-push", cdr_two_way, lambda r: json.dumps({"cdr": [r]}).encode()),
    "fid5": ("cdr-push", cdr_conference, lambda r: json.dumps({"cdr": [r]}).encode()),
    "hangup": ("callback-call/hangup", hangup, lambda r: json.dumps(r).encode()),
    "record": ("callback-call/record", recording, lambda r: json.dumps(r).encode()),
    "voice": ("tencent/voicecode", voice_status, lambda r: json.dumps(r).encode()),
    "prompt": ("tencent/voiceprompt", voice_prompt_status, lambda r: json.dumps(r).encode()),
    "voicekey": ("tencent/voiceprompt", voice_key_press, lambda r: json.dumps(r).encode()),
    "failure": ("tencent/voicecode", voice_failure, lambda r: json.dumps(r).encode()),
    "sms": ("tencent/sms-status", sms_receipts, lambda r: json.dumps(r).encode()),
    "state": ("callback-call/status", call_state, lambda r: json.dumps(r).encode()),
    "keypress": ("callback-call/keypress", call_key_press, lambda r: json.dumps(r).encode()),
}


@dataclass(frozen=True)
class Copy:
    route: str
    body: bytes
    #: 0: stored in the first batch, with the first copies; 1: in a later batch.
    wave: int


@st.composite
def traffic(draw: st.DrawFn) -> tuple[str, list[Copy]]:
    """Every route's report, then one to three resends of each that change anything but its identity."""
    tag = uuid.uuid4().hex[:10]
    copies: list[Copy] = []
    for name in draw(st.lists(st.sampled_from(sorted(ROUTES)), min_size=1, max_size=len(ROUTES), unique=True)):
        route, reports, encoded = ROUTES[name]
        copies.append(Copy(route, encoded(draw(reports(tag))), 0))
        for _ in range(draw(st.integers(1, 3))):
            copies.append(Copy(route, encoded(draw(reports(tag))), draw(st.integers(0, 1))))
    return tag, copies


@dataclass
class Running:
    loop: asyncio.AbstractEventLoop
    sink: Sink

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        assert self.sink.client is not None
        result = self.run(self.sink.on_db_thread(lambda: self.sink.client.query(sql)))  # type: ignore[union-attr]
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


@pytest.fixture
def running(broker: EmbeddedBroker, chdb_dir: Path, make_settings: Callable[..., Settings]) -> Iterator[Running]:
    settings_ = make_settings(
        kafka_bootstrap=broker.bootstrap, clickhouse_dsn=f"chdb://{chdb_dir}", conflict_check_interval_s=0.01
    )
    loop = asyncio.new_event_loop()
    loop.run_until_complete(kafka.ensure_topics(settings_))
    sink = loop.run_until_complete(started(settings_))
    try:
        yield Running(loop, sink)
    finally:
        loop.run_until_complete(sink.stop())
        loop.close()


async def started(settings_: Settings) -> Sink:
    sink = Sink(settings_)  # its consumer must be made inside the loop it runs on
    await sink.start()
    return sink


def normalized(tenant: str, copies: list[Copy], sink: Sink) -> list[tuple[int, dict[str, Any]]]:
    """(wave, event) of every copy, each received a second after the one before."""
    ctx = Context(blank_event=sink.codec.blank_event())
    events = []
    for order, copy in enumerate(copies):
        raw = RawCallback(
            copy.route,
            new_ingest_id(),
            RECEIVED_US + order * 1_000_000,
            "10.0.0.1",
            "application/json",
            copy.body,
            tenant=tenant,
        )
        outcomes = normalize_message(raw, registry(), ctx)
        assert not [o for o in outcomes if isinstance(o, Rejection)], (copy, outcomes)
        events += [(copy.wave, event) for event in outcomes]
    return events


async def store(sink: Sink, events: list[dict[str, Any]]) -> None:
    assert sink.step_ is not None
    await produce(
        sink.settings.kafka_bootstrap,
        sink.settings.topic_normalized,
        [(str(e["event_id"]).encode(), sink.codec.encode(e), []) for e in events],
    )
    taken = 0
    for _ in range(200):
        taken += await sink.step()
        if taken >= len(events):
            break
    assert taken >= len(events)
    await sink.flush()  # the conflict look follows every stored batch (its interval is a few ms)


def comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def check_one_row_each(running: Running, tenant: str, first: dict[str, dict[str, Any]]) -> None:
    rows = running.rows(f"SELECT event_id, {', '.join(CHECKED)} FROM ringback.events WHERE tenant = '{tenant}'")
    assert sorted(row["event_id"] for row in rows) == sorted(first)  # one row per event id, no more
    for row in rows:
        expected = first[row["event_id"]]
        assert {k: comparable(row[k]) for k in CHECKED} == {k: comparable(expected[k]) for k in CHECKED}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example=traffic())
def test_resends_that_change_anything_but_identity_leave_one_row_the_first_arrivals(
    running: Running, example: tuple[str, list[Copy]]
) -> None:
    tag, copies = example
    tenant = f"place-{tag}"
    events = normalized(tenant, copies, running.sink)
    first: dict[str, dict[str, Any]] = {}
    versions: dict[str, set[tuple[Any, ...]]] = {}
    for _, event in events:
        first.setdefault(str(event["event_id"]), event)
        versions.setdefault(str(event["event_id"]), set()).add(tuple(comparable(event[k]) for k in BILLING))
    assert len(first) < len(events)  # resends share their report's event id
    for wave in (0, 1):
        running.run(store(running.sink, [event for w, event in events if w == wave]))
        check_one_row_each(running, tenant, first)
    running.rows("OPTIMIZE TABLE ringback.event_copies FINAL")
    check_one_row_each(running, tenant, first)
    merged = running.rows(
        f"SELECT event_id, count() AS n FROM ringback.event_copies WHERE tenant = '{tenant}' GROUP BY event_id"
    )
    assert {row["event_id"]: row["n"] for row in merged} == dict.fromkeys(first, 1)  # merges collapsed every copy
    conflicting = {event_id for event_id, seen in versions.items() if len(seen) > 1}
    ids = ", ".join(f"'{event_id}'" for event_id in first)
    recorded = running.rows(f"SELECT event_id, tenant FROM ringback.event_conflicts FINAL WHERE event_id IN ({ids})")
    assert {(row["event_id"], row["tenant"]) for row in recorded} == {(event_id, tenant) for event_id in conflicting}

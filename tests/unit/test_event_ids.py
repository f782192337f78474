"""Event ids, per route: different reports get different ids, a resent report gets the same id.

Properties (hypothesis), for every route and every kind of body it receives: two reports that differ
in any identity field have different ids; the same report resent — keys in another order, numbers
written as strings or as numbers, other JSON whitespace, padded string values, another request,
another position in the array — has the same id. Then the collisions found in production, one test
each.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringback import config
from ringback.normalizer.adapters import registry
from ringback.normalizer.adapters.tencent_voice_status import BODIES as VOICE_BODIES
from ringback.normalizer.event import Context
from ringback.normalizer.identity import event_id, identity_value
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
PROFILE = settings(
    max_examples=int(os.environ.get("RINGBACK_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Identity text with what used to break ids: the old separator, quotes, escapes, JSON punctuation.
ID_CHARACTERS = st.sampled_from([*"abcXYZ019-_.:|/ ", "\x1f", '"', "\\", "应", "\u00e9"])
ids = st.text(ID_CHARACTERS, min_size=1, max_size=8).filter(lambda text: text.strip() != "")
digits = st.text(st.sampled_from("0123456789"), min_size=1, max_size=12)
local_times = st.builds(
    lambda d, s, ms: f"2026-11-{d:02d} 10:{s // 60:02d}:{s % 60:02d}" + (f".{ms:03d}" if ms is not None else ""),
    st.integers(1, 28),
    st.integers(0, 3599),
    st.none() | st.integers(0, 999),
)
unix_seconds = st.integers(1_600_000_000, 1_900_000_000).map(str)
unix_seconds_as_numbers = st.integers(1_600_000_000, 1_900_000_000)  # resent_form writes some of them as digits
failure_codes = st.integers(1, 20) | st.integers(1, 20).map(str)
key_digits = st.text(st.sampled_from("0123456789*#"), min_size=1, max_size=4)
reply_texts = st.text(ID_CHARACTERS, max_size=12)
VOICE_ROUTES = ("tencent/voicecode", "tencent/voiceprompt")


def maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A field the vendor may leave empty."""
    return st.just("") | strategy


@dataclass(frozen=True)
class Format:
    """One vendor format: how its reports look, which fields are identity, how a body wraps them."""

    name: str
    route: str
    identity: dict[str, st.SearchStrategy[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)  # identity fields with one value per format (fid)
    other: dict[str, st.SearchStrategy[Any]] = field(default_factory=dict)  # read, but not identity
    wrap: Callable[[list[dict[str, Any]]], Any] = lambda reports: reports
    many: bool = True  # several reports per request
    kind: str = ""  # which of a route's bodies (a Tencent voice wrapper)

    def reports(self) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({**{k: st.just(v) for k, v in self.fixed.items()}, **self.identity, **self.other})


def wrapped(wrapper: str) -> Callable[[list[dict[str, Any]]], Any]:
    return lambda reports: {wrapper: reports[0]}


def voice_formats(route: str) -> list[Format]:
    """The four bodies a Tencent voice URL receives (each voice URL receives all four)."""
    status_identity = {
        "callid": ids,
        "result": st.sampled_from(["0", "1", "2", "7"]),
        "start_calltime": unix_seconds,
        "accept_time": maybe(unix_seconds),
        "end_calltime": unix_seconds,
        "mobile": digits,
        "nationcode": digits,
    }
    parties = {"callid": ids, "mobile": digits, "nationcode": digits}
    return [
        Format(
            f"voice code status on {route}",
            route,
            status_identity,
            other={"fee": digits, "call_from": maybe(digits)},
            wrap=wrapped("voicecode_callback"),
            many=False,
            kind="voicecode_callback",
        ),
        Format(
            f"voice prompt status on {route}",
            route,
            status_identity,
            other={"fee": digits},
            wrap=wrapped("voiceprompt_callback"),
            many=False,
            kind="voiceprompt_callback",
        ),
        Format(
            f"voice key press on {route}",
            route,
            {**parties, "keypress": key_digits},
            other={"call_from": maybe(digits)},
            wrap=wrapped("voicekey_callback"),
            many=False,
            kind="voicekey_callback",
        ),
        Format(
            f"voice call failure on {route}",
            route,
            {**parties, "failure_code": failure_codes},
            other={"call_from": maybe(digits), "failure_reason": st.sampled_from(["空号", "关机", "用户正忙", ""])},
            wrap=wrapped("voice_failure_callback"),
            many=False,
            kind="voice_failure_callback",
        ),
    ]


REPLY_IDENTITY = {
    "mobile": digits,
    "nationcode": maybe(digits),
    "time": unix_seconds_as_numbers,
    "text": reply_texts,
    "sign": maybe(ids),
    "extend": maybe(ids),
}
SMS_STATUS = st.sampled_from(["SUCCESS", "FAIL", "success", "PENDING"])
FORMATS = [
    Format(
        "sms receipt",
        "tencent/sms-status",
        {
            "sid": ids,
            "nationcode": maybe(digits),
            "mobile": digits,
            "report_status": SMS_STATUS,
            "errmsg": maybe(ids),
            "description": maybe(ids),
            "user_receive_time": maybe(local_times),
        },
    ),
    *(fmt for route in VOICE_ROUTES for fmt in voice_formats(route)),
    Format("sms reply", "tencent/sms-reply", REPLY_IDENTITY, wrap=lambda reports: reports[0], many=False),
    Format("sms replies in an array", "tencent/sms-reply", REPLY_IDENTITY),
    Format(
        "voice code CDR (fid 2)",
        "cdr-push",
        {"requestid": ids, "appid": maybe(ids), "tel": digits},
        fixed={"fid": "2"},
        other={
            "stime": local_times,
            "etime": local_times,
            "duration": digits,
            "oriamount": st.sampled_from(["0.06", "2.94", ""]),
        },
        wrap=lambda reports: {"cdr": reports},
    ),
    Format(
        "two-way call CDR (fid 4)",
        "cdr-push",
        {"requestid": ids, "appid": maybe(ids), "caller": digits, "called": digits},
        fixed={"fid": "4"},
        other={
            "callerstime": local_times,
            "calleretime": local_times,
            "calledstime": maybe(local_times),
            "duration": digits,
            "oriamount": st.sampled_from(["0.06", "2.94"]),
            "stateDesc": st.sampled_from(["正常", "未应答", "应答|正常"]),
            "tapesurl": st.just("NoTapes"),
        },
        wrap=lambda reports: {"cdr": reports},
    ),
    Format(
        "conference CDR (fid 5)",
        "cdr-push",
        {
            "requestid": ids,
            "appid": maybe(ids),
            "confid": ids,
            "tel": digits,
            "stime": local_times,
            "etime": maybe(local_times),
        },
        fixed={"fid": "5"},
        other={"duration": digits, "singleoriamount": st.sampled_from(["0.044", "1"])},
        wrap=lambda reports: {"cdr": reports},
    ),
    Format(
        "two-way call state",
        "cdr-push",
        {
            "requestid": ids,
            "state": st.sampled_from(["callout", "alerting", "answer", "disconnect"]),
            "timestamp": local_times,
            "src": digits,
            "dsc": digits,
        },
        wrap=lambda reports: reports[0],
        many=False,
    ),
    Format(
        "click-to-call status bit",
        "callback-call/status",
        {
            "callId": ids,
            "status": st.sampled_from(["1", "2", "4", "8", "16", "32", "256", "512", "1024", "2048", "4096", "8192"]),
            "timeStamp": unix_seconds,
        },
        other={"src": digits, "dst": digits},
    ),
    Format(
        "click-to-call status word",
        "callback-call/status",
        {
            "callId": ids,
            "callStatus": st.sampled_from(["invite", "ringing", "answered", "refused", "disaccept", "failed"]),
            "userFlag": st.sampled_from(["src", "dst"]),
            "timeStamp": unix_seconds,
            "errorCode": maybe(digits),
        },
    ),
    Format(
        "click-to-call hangup",
        "callback-call/hangup",
        {"callId": ids, "appId": maybe(ids)},
        other={"duration": digits, "callEndStatus": st.sampled_from(["0", "1", "2"]), "endCallTime": unix_seconds},
    ),
    Format(
        "click-to-call record",
        "callback-call/record",
        {"callId": ids, "recordUrl": ids.map(lambda path: f"https://r.example.com/{path}")},
    ),
    Format(
        "click-to-call keypress",
        "callback-call/keypress",
        {
            "callId": ids,
            "key": st.sampled_from(["1", "#", "*", "12"]),
            "timeStamp": unix_seconds,
            "phone": maybe(digits),
        },
    ),
]
FORMAT = {fmt.name: fmt for fmt in FORMATS}


def test_every_route_and_every_body_it_receives_has_a_format() -> None:
    assert {fmt.route for fmt in FORMATS} == set(registry())
    for route in VOICE_ROUTES:
        assert {fmt.kind for fmt in FORMATS if fmt.route == route} == set(VOICE_BODIES), route


def outcome_of(
    fmt: Format,
    reports: list[dict[str, Any]],
    position: int,
    *,
    body: bytes | None = None,
    ingest_id: str = "first",
    tenant: str = "",
    route: str | None = None,
    ctx: Context = CTX,
) -> Any:
    body = orjson.dumps(fmt.wrap(reports)) if body is None else body
    raw = RawCallback(
        route=route or fmt.route,
        ingest_id=ingest_id,
        received_at_us=1_763_700_000_000_000,
        remote_addr="",
        content_type="",
        body=body,
        tenant=tenant,
    )
    (outcome,) = [
        o
        for o in normalize_message(raw, registry(), ctx)
        if (o.report_index if isinstance(o, Rejection) else o["report_index"]) == position
    ]
    assert not isinstance(outcome, Rejection), outcome
    return outcome


def id_of(fmt: Format, report: dict[str, Any], **resend: Any) -> str:
    return outcome_of(fmt, [report], 0, **resend)["event_id"]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@PROFILE
@given(data=st.data())
def test_reports_that_differ_in_an_identity_field_have_different_ids(fmt: Format, data: st.DataObject) -> None:
    report = data.draw(fmt.reports())
    name = data.draw(st.sampled_from(sorted(fmt.identity)))
    other_value = data.draw(
        fmt.identity[name].filter(lambda value: identity_value(value) != identity_value(report[name]))
    )
    assert id_of(fmt, report) != id_of(fmt, {**report, name: other_value})


def resent_form(report: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The same report as a vendor may write it again: keys reordered, integers as JSON numbers or
    strings, string values padded with whitespace."""
    keys = list(report)
    rng.shuffle(keys)
    resent = {}
    for key in keys:
        value = report[key]
        if type(value) is int and rng.random() < 0.5:
            value = str(value)
        elif (
            isinstance(value, str)
            and value.isascii()
            and value.isdigit()
            and str(int(value)) == value
            and rng.random() < 0.5
        ):
            value = int(value)
        elif isinstance(value, str) and value and rng.random() < 0.3:
            value = rng.choice([" ", "\t", "  "]) + value + rng.choice(["", " ", "\n"])
        resent[key] = value
    return resent


def json_text(value: Any, style: int) -> bytes:
    """One JSON document, written in one of several styles: compact, indented, spaced, ASCII-escaped."""
    if style == 0:
        return orjson.dumps(value)
    if style == 1:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2)
    if style == 2:
        return json.dumps(value, separators=(" , ", " : "), ensure_ascii=False).encode()
    return json.dumps(value, indent="\t", ensure_ascii=True).encode()


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@PROFILE
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), style=st.integers(0, 3))
def test_a_resent_report_has_the_same_id(fmt: Format, data: st.DataObject, seed: int, style: int) -> None:
    report = data.draw(fmt.reports())
    others = data.draw(st.lists(fmt.reports(), max_size=3)) if fmt.many else []
    position = data.draw(st.integers(0, len(others)))
    resent = [*others[:position], resent_form(report, random.Random(seed)), *others[position:]]
    first = id_of(fmt, report)
    again = outcome_of(fmt, resent, position, body=json_text(fmt.wrap(resent), style), ingest_id="resent")
    assert again["event_id"] == first


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_the_tenant_is_part_of_the_id(fmt: Format, data: st.DataObject) -> None:
    report = data.draw(fmt.reports())
    assert id_of(fmt, report) != id_of(fmt, report, tenant="acme")
    assert id_of(fmt, report, tenant="acme") == id_of(fmt, report, tenant="acme", ingest_id="other")


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt.route == VOICE_ROUTES[0]], ids=lambda f: f.kind)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_a_voice_report_has_one_id_on_either_voice_url(fmt: Format, data: st.DataObject) -> None:
    """Tencent sends all voice pushes of an application to the one URL it was given: which one is not identity."""
    report = data.draw(fmt.reports())
    assert id_of(fmt, report) == id_of(fmt, report, route=VOICE_ROUTES[1])


REPLY = FORMAT["sms reply"]


def with_text_setting(policy: str) -> Context:
    return Context(blank_event=CODEC.blank_event(), sms_reply_text=policy)


@pytest.mark.parametrize("policy", [config.SMS_REPLY_TEXT_MASK, config.SMS_REPLY_TEXT_DROP])
@PROFILE
@given(data=st.data())
def test_a_reply_id_counts_the_real_text_whatever_is_kept_of_it(policy: str, data: st.DataObject) -> None:
    """Masked or dropped, the text still tells two replies apart, and a resend still collapses."""
    report = data.draw(REPLY.reports())
    other_text = data.draw(reply_texts.filter(lambda text: identity_value(text) != identity_value(report["text"])))
    kept = id_of(REPLY, report, ctx=with_text_setting(policy))
    assert kept == id_of(REPLY, report)
    assert kept != id_of(REPLY, {**report, "text": other_text}, ctx=with_text_setting(policy))


# --- the collisions found in production -----------------------------------------------------

SMS = FORMAT["sms receipt"]
FID4, FID5 = FORMAT["two-way call CDR (fid 4)"], FORMAT["conference CDR (fid 5)"]
RECEIPT = {
    "user_receive_time": "2026-11-21 08:00:00",
    "nationcode": "86",
    "mobile": "13800138000",
    "report_status": "SUCCESS",
    "errmsg": "DELIVRD",
    "description": "ok",
    "sid": "2019:6547341248361425301",
}


def test_values_cannot_run_into_each_other() -> None:
    """Joined with an unescaped separator, ("SUCCESS␟MK", "1") and ("SUCCESS", "MK␟1") were one id."""
    a = {**RECEIPT, "report_status": "SUCCESS\x1fMK", "errmsg": "1"}
    b = {**RECEIPT, "report_status": "SUCCESS", "errmsg": "MK\x1f1"}
    assert id_of(SMS, a) != id_of(SMS, b)
    assert event_id("s", "", "t", {"a": "x\x1fy", "b": ""}) != event_id("s", "", "t", {"a": "x", "b": "y\x1f"})


def test_sms_receipts_that_differ_only_in_description_are_two_events() -> None:
    assert id_of(SMS, RECEIPT) != id_of(SMS, {**RECEIPT, "description": "用户短信送达成功"})


def test_a_conference_participant_who_joins_twice_has_two_legs() -> None:
    leg = {
        "requestid": "2016010000000207",
        "appid": "ff80",
        "fid": "5",
        "tel": "15801445465",
        "confid": "516152",
        "stime": "2016-03-14 10:43:42.000",
        "etime": "2016-03-14 10:44:13.000",
        "duration": "31",
        "singleoriamount": "0.044",
    }
    again = {
        **leg,
        "stime": "2016-03-14 10:50:00.000",
        "etime": "2016-03-14 11:20:00.000",
        "duration": "1800",
        "singleoriamount": "0.9",
    }
    first, second = (outcome_of(FID5, [leg, again], i) for i in (0, 1))
    assert first["event_id"] != second["event_id"]
    assert (first["duration_s"], second["duration_s"]) == (31, 1800)


def test_a_requestid_reused_under_another_app_is_another_cdr() -> None:
    cdr = {
        "requestid": "2016010000000206",
        "appid": "app-a",
        "fid": "4",
        "caller": "13810603954",
        "called": "18810207016",
        "callerstime": "2016-02-02 11:19:36.000",
        "calleretime": "2016-02-02 11:20:36.000",
        "duration": "60",
        "oriamount": "2.94",
        "stateDesc": "正常",
    }
    reused = {
        **cdr,
        "appid": "app-b",
        "callerstime": "2016-02-03 09:00:00.000",
        "calleretime": "2016-02-03 09:10:00.000",
        "duration": "600",
        "oriamount": "29.40",
    }
    assert id_of(FID4, cdr) != id_of(FID4, reused)


@pytest.mark.parametrize(
    ("fmt", "report", "billing"),
    [
        (
            FID4,
            {
                "requestid": "r",
                "appid": "a",
                "fid": "4",
                "caller": "13810603954",
                "called": "18810207016",
                "duration": "60",
                "oriamount": "2.94",
                "stateDesc": "正常",
            },
            {"duration": "61", "oriamount": "3.00", "stateDesc": "未应答"},
        ),
        (
            FID5,
            {
                "requestid": "r",
                "appid": "a",
                "fid": "5",
                "confid": "c",
                "tel": "15801445465",
                "stime": "2016-03-14 10:43:42.000",
                "duration": "31",
                "singleoriamount": "0.044",
            },
            {"duration": "32", "singleoriamount": "0.05"},
        ),
        (
            FORMAT["voice code status on tencent/voicecode"],
            {
                "callid": "c",
                "result": "0",
                "start_calltime": "1470196821",
                "end_calltime": "1470196843",
                "mobile": "13800138000",
                "nationcode": "86",
                "fee": "1",
            },
            {"fee": "2"},
        ),
        (
            FORMAT["click-to-call hangup"],
            {"callId": "c", "appId": "a", "duration": "61", "callEndStatus": "1"},
            {"duration": "62"},
        ),
        (
            FORMAT["voice call failure on tencent/voicecode"],
            {"callid": "c", "failure_code": 8, "failure_reason": "空号", "mobile": "13800138000", "nationcode": "86"},
            {"failure_reason": "号码不存在", "call_from": "075583763333"},
        ),
        (
            FORMAT["voice key press on tencent/voiceprompt"],
            {"callid": "c", "keypress": "1", "mobile": "13800138000", "nationcode": "86", "call_from": ""},
            {"call_from": "075583763333"},
        ),
    ],
    ids=["fid 4", "fid 5", "voice fee", "hangup duration", "failure reason", "key press caller"],
)
def test_a_resend_with_other_billing_values_keeps_its_id(
    fmt: Format, report: dict[str, Any], billing: dict[str, Any]
) -> None:
    """Billing values, a CDR's outcome, a code's text and the number shown are not identity: the resend
    is a conflict to flag, not a new event."""
    assert id_of(fmt, report) == id_of(fmt, {**report, **billing})


def test_the_id_is_32_hex_characters() -> None:
    value = id_of(SMS, RECEIPT)
    assert re.fullmatch("[0-9a-f]{32}", value), value

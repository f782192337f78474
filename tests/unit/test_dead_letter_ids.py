"""A dead letter carries the vendor ids its failed reports still hold, so it can be found by the id of
the message or call it is about, and its listed failures survive the trip through the topic."""

from __future__ import annotations

import orjson

from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import readable_ids
from ringback.normalizer.step import failures_of, normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.dead_letter import H_FAILURES, DeadLetter
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

CTX = Context(blank_event=EventCodec.from_dir(REPO_ROOT / "schemas").blank_event())


def raw(route: str, body: object) -> RawCallback:
    return RawCallback(route, "01ING", 1_763_700_000_000_000, "10.0.0.1", "application/json", orjson.dumps(body))


def letter_of(request: RawCallback) -> DeadLetter:
    outcomes = normalize_message(request, registry(), CTX)
    return DeadLetter.of(request, failures_of(outcomes), len(outcomes), "test")


def test_a_rejected_sms_receipt_keeps_its_sid() -> None:
    body = [
        {
            "sid": "sid-good",
            "mobile": "13800138000",
            "nationcode": "86",
            "report_status": "SUCCESS",
            "errmsg": "DELIVRD",
            "user_receive_time": "2026-11-27 10:00:00",
        },
        {"sid": "sid-bad", "nationcode": "86", "report_status": "SUCCESS"},  # no mobile
        {"sid": "sid-bad2", "mobile": "", "report_status": "FAIL"},
    ]
    letter = letter_of(raw("tencent/sms-status", body))
    assert [f.ids for f in letter.failures] == [{"sid": "sid-bad"}, {"sid": "sid-bad2"}]
    assert letter.ids == {"sid": ["sid-bad", "sid-bad2"]}


def test_a_rejected_cdr_keeps_its_request_and_app_ids() -> None:
    body = {"cdr": [{"fid": "9", "requestid": "req-9", "appid": "app-1"}]}  # a fid the adapter does not know
    letter = letter_of(raw("cdr-push", body))
    assert letter.failed_reports == 1
    assert letter.ids == {"request_id": ["req-9"], "app_id": ["app-1"]}


def test_a_whole_request_rejection_keeps_the_call_id_it_could_read() -> None:
    body = {
        "voice_failure_callback": {
            "callid": "call-77",
            "mobile": "13800138000",
            "nationcode": "86",
            "failure_code": "no such code",
        }
    }
    letter = letter_of(raw("tencent/voicecode", body))
    assert letter.report_index == -1 and letter.failure_type == "invalid_code"
    assert letter.ids.get("call_id") == ["call-77"]


def test_unreadable_json_has_no_ids() -> None:
    request = RawCallback("cdr-push", "01ING", 1, "10.0.0.1", "application/json", b'{"cdr": [')
    assert letter_of(request).ids == {}


def test_ids_are_bounded_and_only_text_or_whole_numbers() -> None:
    assert readable_ids(
        {"CallId": 12345, "sid": True, "requestId": "x" * 500, "appid": {"nested": 1}, "SID": "s1"}
    ) == {"call_id": "12345", "sid": "s1"}
    assert readable_ids(["not", "a", "report"]) == {}


def test_ids_travel_in_the_headers_and_old_three_field_failures_still_read() -> None:
    letter = letter_of(raw("tencent/sms-status", [{"sid": "sid-bad", "report_status": "SUCCESS"}]))
    again = DeadLetter.from_message(letter.raw.body, letter.headers())
    assert again.failures == letter.failures and again.ids == {"sid": ["sid-bad"]}
    old_headers = [(k, v) for k, v in letter.headers() if k != H_FAILURES]
    old_headers.append((H_FAILURES, orjson.dumps([[0, "missing_field", "report 0 lacks mobile"]])))
    old = DeadLetter.from_message(letter.raw.body, old_headers)
    assert old.failures[0].failure_type == "missing_field" and old.ids == {}

"""The Tencent SMS delivery-status adapter, from the seed's example and from multi-report arrays."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import FIXTURES, REPO_ROOT

ROUTE = "tencent/sms-status"
CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event(), source_timezone="Asia/Shanghai")


def normalize(body: bytes, ingest_id: str = "ingest-1") -> list:
    raw = RawCallback(
        route=ROUTE,
        ingest_id=ingest_id,
        received_at_us=1_700_000_000_000_000,
        remote_addr="127.0.0.1",
        content_type="application/json",
        body=body,
    )
    return normalize_message(raw, registry(), CTX)


def report(**fields: str) -> dict:
    base = {
        "user_receive_time": "2026-11-21 08:00:00",
        "nationcode": "86",
        "mobile": "13800138000",
        "report_status": "SUCCESS",
        "errmsg": "DELIVRD",
        "description": "ok",
        "sid": "sid-1",
    }
    base.update(fields)
    return base


def test_seed_example_becomes_one_delivered_event() -> None:
    (event,) = normalize((FIXTURES / "tencent_sms_status" / "seed_003_example.body").read_bytes())
    assert event["event_type"] == "sms.delivery_report"
    assert event["source"] == "tencent.sms_status"
    assert event["status"] == "delivered"
    assert (event["vendor_status"], event["vendor_code"]) == ("SUCCESS", "DELIVRD")
    assert event["vendor_description"] == "The SMS message is successfully delivered"
    assert event["sid"] == "xxxxxxx"
    # 08:03:04 in Asia/Shanghai (UTC+8) is 00:03:04 UTC.
    assert event["occurred_at"] == datetime(2015, 10, 17, 0, 3, 4, tzinfo=UTC)
    assert event["to_number"] == "13xxxxxxxxx"
    assert event["to_e164"] is None  # a masked number has no E.164 form; the raw one is kept
    assert event["attributes"] == {"nationcode": "86"}
    CODEC.encode(event)  # valid against the Avro schema


def test_multi_report_array_mixing_success_and_fail() -> None:
    body = orjson.dumps(
        [
            report(sid="a", mobile="13800138000", report_status="SUCCESS", errmsg="DELIVRD"),
            report(sid="b", mobile="13900139000", report_status="FAIL", errmsg="UNDELIV", description="用户短信未送达"),
            report(sid="c", mobile="15012345678", report_status="FAIL", errmsg="MK:0001"),
            report(sid="d", mobile="13700137000", report_status="SUCCESS", errmsg="DELIVRD"),
        ]
    )
    events = normalize(body)
    assert [e["sid"] for e in events] == ["a", "b", "c", "d"]
    assert [e["status"] for e in events] == ["delivered", "failed", "failed", "delivered"]
    assert [e["report_index"] for e in events] == [0, 1, 2, 3]
    assert [e["to_e164"] for e in events] == ["+8613800138000", "+8613900139000", "+8615012345678", "+8613700137000"]
    assert events[1]["vendor_description"] == "用户短信未送达"
    assert len({e["event_id"] for e in events}) == 4


def test_event_id_is_the_same_when_the_report_is_resent() -> None:
    body = orjson.dumps([report()])
    first = normalize(body, ingest_id="first")[0]
    resent = normalize(body, ingest_id="second")[0]
    assert first["ingest_id"] != resent["ingest_id"]
    assert first["event_id"] == resent["event_id"]


def test_a_different_report_for_the_same_sid_is_a_different_event() -> None:
    delivered = normalize(orjson.dumps([report(report_status="SUCCESS", errmsg="DELIVRD")]))[0]
    failed = normalize(orjson.dumps([report(report_status="FAIL", errmsg="EXPIRED")]))[0]
    assert delivered["event_id"] != failed["event_id"]


def test_unknown_report_status_keeps_raw_value_and_maps_to_unknown() -> None:
    (event,) = normalize(orjson.dumps([report(report_status="PENDING", errmsg="XQ:77")]))
    assert event["status"] == "unknown"
    assert (event["vendor_status"], event["vendor_code"]) == ("PENDING", "XQ:77")


@pytest.mark.parametrize(
    ("report_status", "errmsg", "expected"),
    [
        ("SUCCESS", "DELIVRD", "delivered"),
        ("FAIL", "UNDELIV", "failed"),
        ("FAIL", "EXPIRED", "failed"),
        ("FAIL", "REJECTD", "failed"),
        ("FAIL", "MK:0001", "failed"),
        ("FAIL", "MN:0017", "failed"),
        ("FAIL", "ENROUTE", "failed"),  # the platform gave up while the carrier still had it
        ("", "DELIVRD", "delivered"),  # no report_status: the receipt state decides
        ("", "ENROUTE", "pending"),
        ("", "ACCEPTD", "pending"),
        ("", "MA:0051", "failed"),
        ("SUCCESS", "UNDELIV", "unknown"),  # contradiction: never a guess
        ("FAIL", "DELIVRD", "unknown"),
        ("SUCCESS", "MK:0001", "unknown"),
        ("SUCCESS", "", "delivered"),
        ("success", "delivrd", "delivered"),
        ("WHATEVER", "", "unknown"),
    ],
)
def test_canonical_status_from_report_status_and_receipt_code(report_status: str, errmsg: str, expected: str) -> None:
    from ringback.normalizer.adapters.tencent_sms_status import canonical_status

    assert canonical_status(report_status, errmsg) == expected


def test_unknown_fields_are_kept_in_attributes() -> None:
    (event,) = normalize(orjson.dumps([{**report(), "ext": {"a": 1}, "retry": 2}]))
    assert event["attributes"] == {"nationcode": "86", "ext": '{"a":1}', "retry": "2"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"sid": "x",', "invalid_json"),
        (b"", "empty_body"),
        (b'"SUCCESS"', "unexpected_shape"),
        (b"[]", "no_reports"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
    ],
)
def test_unreadable_request_is_one_rejection_with_a_reason(body: bytes, reason: str) -> None:
    (outcome,) = normalize(body)
    assert isinstance(outcome, Rejection)
    assert outcome.reason_type == reason
    assert outcome.report_index is None
    assert outcome.message


def test_one_bad_report_does_not_sink_the_others() -> None:
    body = orjson.dumps(
        [
            report(sid="good"),
            report(sid="late", user_receive_time="2026-13-40 99:00:00"),
            {"mobile": "1"},
            report(sid="good2"),
        ]
    )
    outcomes = normalize(body)
    assert [o["sid"] if isinstance(o, dict) else o.reason_type for o in outcomes] == [
        "good",
        "invalid_time",
        "missing_field",
        "good2",
    ]
    assert [o.report_index for o in outcomes if isinstance(o, Rejection)] == [1, 2]


def test_unknown_route_is_rejected() -> None:
    raw = RawCallback(
        route="nobody/knows", ingest_id="i", received_at_us=0, remote_addr="", content_type="", body=b"{}"
    )
    (outcome,) = normalize_message(raw, registry(), CTX)
    assert isinstance(outcome, Rejection) and outcome.reason_type == "unknown_route"


@pytest.mark.parametrize("missing", [{"report_status": ""}, {"report_status": None}, "drop"])
def test_a_receipt_state_without_report_status_is_read_from_errmsg(missing: object) -> None:
    enroute = report(errmsg="ENROUTE", description="not received yet")
    if missing == "drop":
        del enroute["report_status"]
    else:
        enroute.update(missing)  # type: ignore[call-overload]
    (event,) = normalize(orjson.dumps([enroute]))
    assert event["status"] == "pending" and event["vendor_code"] == "ENROUTE"


def test_without_report_status_errmsg_must_be_a_receipt_state() -> None:
    (rejection,) = normalize(orjson.dumps([report(report_status="", errmsg="something else")]))
    assert (
        isinstance(rejection, Rejection)
        and rejection.reason_type == "missing_field"
        and "report_status" in rejection.message
    )
    assert rejection.ids == {"sid": "sid-1"}

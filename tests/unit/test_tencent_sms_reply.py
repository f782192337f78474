"""Tencent SMS replies: the end user as sender, the time read strictly, the text kept as the setting says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ringback import config
from ringback.config import SMS_REPLY_TEXT_POLICIES, Settings
from ringback.normalizer import status
from ringback.normalizer.adapters import registry
from ringback.normalizer.adapters.tencent_sms_reply import stored_text, text_policy
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

ROUTE = "tencent/sms-reply"
CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
REPLY = {
    "extend": "",
    "mobile": "13800138000",
    "nationcode": "86",
    "sign": "腾讯云",
    "text": "退订",
    "time": 1763704800,
}


def outcomes(body: Any, policy: str | None = None) -> list[Any]:
    ctx = (
        Context(blank_event=CODEC.blank_event())
        if policy is None
        else Context(blank_event=CODEC.blank_event(), sms_reply_text=policy)
    )
    raw = RawCallback(
        route=ROUTE,
        ingest_id="i",
        received_at_us=1_763_700_000_000_000,
        remote_addr="",
        content_type="",
        body=json.dumps(body, ensure_ascii=False).encode(),
    )
    return normalize_message(raw, registry(), ctx)


def reply(policy: str | None = None, **fields: object) -> dict[str, Any]:
    (event,) = outcomes({**REPLY, **fields}, policy)
    assert not isinstance(event, Rejection), event
    return event


def rejection(**fields: object) -> Rejection:
    (dead,) = outcomes({k: v for k, v in {**REPLY, **fields}.items() if v is not None})
    assert isinstance(dead, Rejection), dead
    return dead


def test_a_reply_is_the_end_users_message() -> None:
    event = reply()
    assert (event["event_type"], event["source"], event["status"]) == (
        "sms.reply",
        "tencent.sms_reply",
        status.RECEIVED,
    )
    assert (event["from_number"], event["from_e164"], event["to_number"], event["to_e164"]) == (
        "13800138000",
        "+8613800138000",
        None,
        None,
    )
    assert event["occurred_at"] == datetime(2025, 11, 21, 6, 0, tzinfo=UTC)
    assert event["message_text"] == "退订"
    assert event["attributes"] == {"extend": "", "nationcode": "86", "sign": "腾讯云"}


@pytest.mark.parametrize(
    ("policy", "text", "kept"),
    [
        ("store", "好的，明天见 👍", "好的，明天见 👍"),
        ("mask", "好的，明天见 👍", "********"),  # one * per character: CJK, punctuation, space and emoji alike
        ("mask", "Y", "*"),
        ("mask", "", ""),
        ("drop", "好的，明天见 👍", None),
        ("drop", "", None),
    ],
)
def test_the_setting_decides_what_message_text_holds(policy: str, text: str, kept: str | None) -> None:
    assert reply(policy, text=text)["message_text"] == kept


def test_the_text_stays_out_of_attributes_whatever_the_setting() -> None:
    for policy in SMS_REPLY_TEXT_POLICIES:
        assert "退订" not in json.dumps(reply(policy)["attributes"], ensure_ascii=False)


def test_a_policy_the_adapter_does_not_know_keeps_nothing() -> None:
    assert stored_text("退订", "publish") is None


def test_without_the_setting_the_text_is_stored() -> None:
    assert text_policy(Context(blank_event=CODEC.blank_event())) == config.SMS_REPLY_TEXT_STORE


def test_the_running_normalizer_hands_the_setting_to_the_adapter() -> None:
    from ringback.normalizer.step import NormalizeStep

    step = NormalizeStep(Settings(sms_reply_text=config.SMS_REPLY_TEXT_MASK), producer=None, guard=None)  # type: ignore[arg-type]
    assert text_policy(step.ctx) == config.SMS_REPLY_TEXT_MASK


@pytest.mark.parametrize("time", [1763704800, "1763704800", " 1763704800 "])
def test_time_is_whole_unix_seconds_as_a_number_or_digits(time: object) -> None:
    assert reply(time=time)["occurred_at"] == datetime(2025, 11, 21, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "time",
    [
        1763704800.5,
        1763704800.0,
        "1763704800.5",
        -1763704800,
        "-1763704800",
        "+1763704800",
        True,
        "１７６３７０４８００",
        "2025-11-21 14:00:00",
        10**12,
    ],
)
def test_any_other_time_is_invalid_time(time: object) -> None:
    dead = rejection(time=time)
    assert (dead.reason_type, dead.report_index) == ("invalid_time", 0)


@pytest.mark.parametrize(
    ("fields", "lacking"),
    [
        ({"time": None}, "time"),
        ({"time": 0}, "time"),
        ({"mobile": ""}, "mobile"),
        ({"text": None}, "text"),
        ({"mobile": None, "text": None}, "mobile, text"),
    ],
)
def test_a_reply_without_its_identity_is_a_missing_field(fields: dict[str, object], lacking: str) -> None:
    dead = rejection(**fields)
    assert (dead.reason_type, dead.message) == ("missing_field", f"reply 0 lacks {lacking}")


def test_an_empty_text_is_a_reply() -> None:
    assert reply(text="")["message_text"] == ""


def test_an_array_is_one_reply_each_and_a_bad_one_holds_back_no_other() -> None:
    first, bad, last = outcomes([REPLY, {**REPLY, "time": "soon"}, {**REPLY, "text": "Y"}])
    assert (first["message_text"], last["message_text"]) == ("退订", "Y")
    assert isinstance(bad, Rejection) and (bad.reason_type, bad.report_index) == ("invalid_time", 1)
    assert [first["report_index"], last["report_index"]] == [0, 2]


@pytest.mark.parametrize(
    ("body", "reason"),
    [("退订", "unexpected_shape"), (7, "unexpected_shape"), ([], "no_reports"), (["退订"], "unexpected_shape")],
)
def test_a_body_that_is_no_reply_is_dead_lettered(body: Any, reason: str) -> None:
    (dead,) = outcomes(body)
    assert isinstance(dead, Rejection) and dead.reason_type == reason


def test_the_setting_is_validated() -> None:
    assert config.load({}, environ={"RINGBACK_SMS_REPLY_TEXT": "mask"}).sms_reply_text == "mask"
    assert config.load({}, environ={}).sms_reply_text == "store"
    with pytest.raises(config.ConfigError, match="sms_reply_text"):
        config.load({"sms_reply_text": "hide"}, environ={})

"""Tencent voice pushes: both voice URLs read all four bodies; call failures map onto the vocabulary."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ringback.normalizer import status
from ringback.normalizer.adapters import registry
from ringback.normalizer.adapters.tencent_voice_status import BODIES, FAILURE_STATUS, MAX_KEYS_NAMED
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
VOICE_ROUTES = ("tencent/voicecode", "tencent/voiceprompt")

PARTIES = {"call_from": "075583763333", "callid": "cid-1", "mobile": "13800138000", "nationcode": "86"}
REPORTS: dict[str, dict[str, Any]] = {
    "voicecode_callback": {
        **PARTIES,
        "result": "0",
        "accept_time": "1763704990",
        "end_calltime": "1763705010",
        "fee": "1",
        "start_calltime": "1763704980",
    },
    "voiceprompt_callback": {
        **PARTIES,
        "result": "1",
        "accept_time": "0",
        "end_calltime": "1763705010",
        "fee": "0",
        "start_calltime": "1763704980",
    },
    "voicekey_callback": {**PARTIES, "keypress": "2"},
    "voice_failure_callback": {**PARTIES, "failure_code": 8, "failure_reason": "空号"},
}
EXPECTED = {  # wrapper -> (source, event_type, status)
    "voicecode_callback": ("tencent.voicecode", "voice.code_status", status.ANSWERED),
    "voiceprompt_callback": ("tencent.voiceprompt", "voice.prompt_status", status.NO_ANSWER),
    "voicekey_callback": ("tencent.voicekey", "voice.key_press", status.KEY_PRESSED),
    "voice_failure_callback": ("tencent.voice_failure", "voice.call_failure", status.INVALID_NUMBER),
}
# The table of the vendor's "推送回执相关错误码" in docs/event.md.
DOCUMENTED_FAILURE_STATUS = {
    1: status.UNREACHABLE,
    2: status.BUSY,
    3: status.UNREACHABLE,
    4: status.UNREACHABLE,
    5: status.NO_ANSWER,
    6: status.UNREACHABLE,
    7: status.UNREACHABLE,
    8: status.INVALID_NUMBER,
    9: status.CALL_FAILED,
    10: status.BUSY,
    11: status.CALL_FAILED,
    12: status.REJECTED,
    13: status.UNREACHABLE,
    14: status.CALL_FAILED,
    15: status.INVALID_NUMBER,
    16: status.UNREACHABLE,
    17: status.UNREACHABLE,
    18: status.CALL_FAILED,
    19: status.CALL_FAILED,
    20: status.NO_ANSWER,
}


def normalize(route: str, body: Any) -> list[Any]:
    """``body`` as JSON (``json``, not orjson: integers beyond 64 bits are written too)."""
    raw = RawCallback(
        route=route,
        ingest_id="i",
        received_at_us=1_763_700_000_000_000,
        remote_addr="",
        content_type="",
        body=json.dumps(body, ensure_ascii=False).encode(),
    )
    return normalize_message(raw, registry(), CTX)


def event(route: str, body: Any) -> dict[str, Any]:
    (outcome,) = normalize(route, body)
    assert not isinstance(outcome, Rejection), outcome
    return outcome


def rejection(route: str, body: Any) -> Rejection:
    (outcome,) = normalize(route, body)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def failure(code: object, **fields: object) -> dict[str, Any]:
    return {"voice_failure_callback": {**REPORTS["voice_failure_callback"], "failure_code": code, **fields}}


@pytest.mark.parametrize("wrapper", sorted(REPORTS))
def test_every_voice_url_reads_every_body_as_the_same_event(wrapper: str) -> None:
    """Tencent sends all voice pushes of an application to one URL: the URL changes only `route`."""
    on_code_url, on_prompt_url = (event(route, {wrapper: REPORTS[wrapper]}) for route in VOICE_ROUTES)
    assert (on_code_url["source"], on_code_url["event_type"], on_code_url["status"]) == EXPECTED[wrapper]
    assert on_code_url["event_id"] == on_prompt_url["event_id"]
    assert {**on_code_url, "route": None} == {**on_prompt_url, "route": None}
    assert (on_code_url["call_id"], on_code_url["to_e164"], on_code_url["from_e164"]) == (
        "cid-1",
        "+8613800138000",
        "+8675583763333",
    )


def test_the_bodies_are_the_four_tencent_sends() -> None:
    assert set(BODIES) == set(REPORTS)


def test_a_key_press_keeps_the_keys_and_every_other_field() -> None:
    pressed = event(
        "tencent/voiceprompt",
        {"voicekey_callback": {**REPORTS["voicekey_callback"], "keypress": " 1# ", "lang": "zh"}, "appid": "1400"},
    )
    assert pressed["key_digits"] == "1#"
    assert pressed["attributes"] == {"nationcode": "86", "lang": "zh", "appid": "1400"}
    assert pressed["occurred_at"] is None  # the push carries no time


@pytest.mark.parametrize(("code", "state"), sorted(DOCUMENTED_FAILURE_STATUS.items()))
def test_every_failure_code_maps_as_documented(code: int, state: str) -> None:
    failed = event("tencent/voicecode", failure(code, failure_reason="原因"))
    assert (failed["status"], failed["vendor_code"], failed["vendor_description"]) == (state, str(code), "原因")


def test_the_mapping_covers_exactly_the_codes_1_to_20() -> None:
    assert FAILURE_STATUS == DOCUMENTED_FAILURE_STATUS


@pytest.mark.parametrize("code", [8, "8", " 8 ", "08"])
def test_a_failure_code_as_a_number_or_as_digits_is_one_code(code: object) -> None:
    assert event("tencent/voicecode", failure(code))["event_id"] == event("tencent/voicecode", failure(8))["event_id"]


@pytest.mark.parametrize(
    "code",
    [0, 21, 99, -1, 2**70, 8.0, 8.5, True, "0", "21", "-1", "+8", "8.0", "008", "八", "８", "0x8", [8], {"code": 8}],
)
def test_a_failure_code_outside_the_table_is_invalid_code(code: object) -> None:
    dead = rejection("tencent/voicecode", failure(code))
    assert dead.reason_type == "invalid_code"
    assert "failure_code" in dead.message and "1-20" in dead.message


@pytest.mark.parametrize("code", [None, ""])
def test_a_missing_failure_code_is_a_missing_field(code: object) -> None:
    assert rejection("tencent/voiceprompt", failure(code)).reason_type == "missing_field"


def test_a_failure_with_an_empty_call_from_is_read() -> None:
    failed = event("tencent/voicecode", failure(5, call_from=""))
    assert (failed["from_number"], failed["from_e164"], failed["status"]) == ("", None, status.NO_ANSWER)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            {"voicecode_callback": REPORTS["voicecode_callback"], "voicekey_callback": REPORTS["voicekey_callback"]},
            ["2 wrappers", "'voicecode_callback'", "'voicekey_callback'"],
        ),
        ({"voicemail_callback": {"callid": "c"}}, ["unknown wrapper 'voicemail_callback'"]),
        ({"VOICEKEY_CALLBACK": REPORTS["voicekey_callback"]}, ["unknown wrapper 'VOICEKEY_CALLBACK'"]),
        ({"callid": "c", "keypress": "1"}, ["none in the keys 'callid', 'keypress'"]),
        ({}, ["(no keys)"]),
        ({"voicekey_callback": ["2"]}, ["voicekey_callback is list"]),
        ([REPORTS["voicekey_callback"]], ["got list"]),
    ],
    ids=[
        "two wrappers",
        "unknown wrapper",
        "wrapper in capitals",
        "no wrapper",
        "empty object",
        "wrapper not an object",
        "array",
    ],
)
def test_a_body_without_exactly_one_known_wrapper_is_unexpected_shape(body: Any, named: list[str]) -> None:
    for route in VOICE_ROUTES:
        dead = rejection(route, body)
        assert dead.reason_type == "unexpected_shape" and dead.report_index is None
        for text in named:
            assert text in dead.message, dead.message


def test_a_dead_letter_names_a_few_keys_of_a_hostile_body() -> None:
    dead = rejection("tencent/voicecode", {f"x{i}_callback": {} for i in range(10_000)})
    assert f"and {10_000 - MAX_KEYS_NAMED} more" in dead.message and len(dead.message) < 1000


@pytest.mark.parametrize("wrapper", ["voicekey_callback", "voice_failure_callback"])
def test_a_push_without_a_call_id_is_a_missing_field(wrapper: str) -> None:
    assert rejection("tencent/voicecode", {wrapper: {**REPORTS[wrapper], "callid": ""}}).reason_type == "missing_field"


def test_a_key_press_without_keys_is_a_missing_field() -> None:
    dead = rejection("tencent/voiceprompt", {"voicekey_callback": {**REPORTS["voicekey_callback"], "keypress": " "}})
    assert (dead.reason_type, dead.message) == ("missing_field", "keypress is missing")

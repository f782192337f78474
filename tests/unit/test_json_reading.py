"""Reading bodies as JSON: the missing-comma repair, nesting limits, and fields given twice."""

from __future__ import annotations

import orjson
import pytest

from ringback.normalizer.adapters import registry
from ringback.normalizer.document import MAX_DEPTH
from ringback.normalizer.event import Context
from ringback.normalizer.jsonbody import REPAIR_KEY_WHITESPACE, REPAIR_MISSING_COMMA, parse_json
from ringback.normalizer.missing_comma import insert_missing_commas
from ringback.normalizer.outcome import Rejected, Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
ROUTES = sorted(registry())


def normalize(route: str, body: bytes) -> list:
    raw = RawCallback(
        route=route, ingest_id="i", received_at_us=1_763_700_000_000_000, remote_addr="", content_type="", body=body
    )
    return normalize_message(raw, registry(), CTX)


def sms(**fields: object) -> dict[str, object]:
    return {
        "user_receive_time": "2026-11-21 08:00:00",
        "nationcode": "86",
        "mobile": "13800138000",
        "report_status": "SUCCESS",
        "errmsg": "DELIVRD",
        "description": "ok",
        "sid": "s",
        **fields,
    }


# --- the missing-comma repair ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"customParm":"123456"" stateDesc ":"x"}', '{"customParm":"123456"," stateDesc ":"x"}'),  # seed 002
        ('{"a":"b" "c":"d"}', '{"a":"b", "c":"d"}'),
        ('{"a":"b"\t"c" :"d"}', '{"a":"b",\t"c" :"d"}'),
        ('{"a" : "b" "c":"d" "e":"f" "g":"h"}', '{"a" : "b", "c":"d", "e":"f", "g":"h"}'),  # a whole chain
        ('{"a":\n"b" "c":"d"}', '{"a":\n"b", "c":"d"}'),
    ],
)
def test_a_pair_running_into_the_next_key_gets_its_comma(text: str, expected: str) -> None:
    repaired, count = insert_missing_commas(text)
    assert repaired == expected
    assert count == expected.count(",") - text.count(",")


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"b"\n"c":"d"}',  # the next key on another line: not "directly followed"
        '{"a":1 "c":"d"}',  # the value is not a string
        '{"a":"b" "c" "d":1}',  # a string that is not a key
        '["a" "b"]',
        '{"a":"x\\" \\"y":"z"}',  # quotes inside a string are not tokens
        '{"a":"never closed "b":"c"}',
        '{"a":"b", "c":"d"}',
    ],
)
def test_nothing_else_gets_a_comma(text: str) -> None:
    assert insert_missing_commas(text) == (text, 0)


def test_the_repair_is_recorded_and_the_seed_body_reads() -> None:
    parsed = parse_json(
        b'{"cdr":[{"customParm":"123456"" stateDesc ":"\xe5\xba\x94\xe7\xad\x94|\xe6\xad\xa3\xe5\xb8\xb8"}]}'
    )
    assert parsed.value == {"cdr": [{"customParm": "123456", "stateDesc": "应答|正常"}]}
    assert parsed.repairs == [REPAIR_MISSING_COMMA, REPAIR_KEY_WHITESPACE]


def test_a_repair_that_does_not_make_json_reports_the_original_error() -> None:
    with pytest.raises(Rejected) as caught:
        parse_json(b'{"a":"b" "c":"d"')
    assert caught.value.reason_type == "invalid_json"


# --- nesting --------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 1024, 1025, 100_000])
def test_deep_nesting_is_invalid_json_with_a_clear_message(route: str, depth: int) -> None:
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    for body in (nested, b"[" * depth, b'{"cdr":[' + orjson.dumps(sms())[:-1] + b',"x":' + nested + b"}]}"):
        (outcome,) = normalize(route, body)
        assert isinstance(outcome, Rejection)
        assert (outcome.reason_type, outcome.report_index) == ("invalid_json", None)
        assert f"nested deeper than {MAX_DEPTH} levels" in outcome.message


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 3  # the array, the report, "ext", then the nested objects
    nested = {"a": 1}
    for _ in range(depth - 1):
        nested = {"a": nested}
    (event,) = normalize("tencent/sms-status", orjson.dumps([sms(ext=nested)]))
    assert not isinstance(event, Rejection)
    assert event["attributes"]["ext"].startswith('{"a":{"a":')


# --- fields given twice ---------------------------------------------------------------------


def test_duplicate_keys_that_disagree_dead_letter_only_their_report() -> None:
    good = orjson.dumps(sms(sid="a"))
    twice = orjson.dumps(sms(sid="b"))[:-1] + b',"sid":"c"}'
    outcomes = normalize("tencent/sms-status", b"[" + good + b"," + twice + b"," + good.replace(b'"a"', b'"d"') + b"]")
    assert [o["sid"] if isinstance(o, dict) else (o.reason_type, o.report_index) for o in outcomes] == [
        "a",
        ("ambiguous_field", 1),
        "d",
    ]
    assert "'sid'" in outcomes[1].message and "[1]" in outcomes[1].message


def test_identical_duplicates_are_harmless() -> None:
    body = orjson.dumps(sms())[:-1] + b',"sid":"s","Sid":"s"," sid ":"s"}'
    (event,) = normalize("tencent/sms-status", b"[" + body + b"]")
    assert event["sid"] == "s"
    assert event["attributes"] == {"nationcode": "86", "Sid": "s"}  # the vendor's other spelling, kept


@pytest.mark.parametrize(
    "cdr",
    [
        b'{"requestid":"r","appid":"a","fid":"2","tel":"13800138000","oriamount":"0.06","oriamount":"9.99"}',
        b'{"requestid":"r","appid":"a","fid":"2","tel":"13800138000","oriamount":"0.06","OriAmount":"9.99"}',
        b'{"requestid":"r","appid":"a","fid":"2","tel":"13800138000","oriamount":"0.06"," oriamount ":"9.99"}',
        # a string is not a number
        b'{"requestid":"r","appid":"a","fid":"2","tel":"13800138000","oriamount":"0.06","ORIAMOUNT" : 0.06}',
    ],
    ids=["same key", "letter case", "whitespace", "string vs number"],
)
def test_two_spellings_of_one_field_with_different_values_are_ambiguous(cdr: bytes) -> None:
    ok = b'{"requestid":"ok","appid":"a","fid":"2","tel":"13800138000","oriamount":"0.06"}'
    bad, good = normalize("cdr-push", b'{"cdr":[' + cdr + b"," + ok + b"]}")
    assert isinstance(bad, Rejection) and (bad.reason_type, bad.report_index) == ("ambiguous_field", 0)
    assert "'oriamount'" in bad.message
    assert good["request_id"] == "ok"


def test_ambiguity_nested_inside_a_report_is_that_reports() -> None:
    outcomes = normalize("callback-call/record", b'[{"callId":"a","ext":{"x":1,"x":2}},{"callId":"b"}]')
    assert [(o.reason_type, o.report_index) if isinstance(o, Rejection) else o["call_id"] for o in outcomes] == [
        ("ambiguous_field", 0),
        "b",
    ]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("cdr-push", b'{"cdr":[{"requestid":"a","fid":"2"}],"cdr":[{"requestid":"b","fid":"2"}]}'),
        ("cdr-push", b'{"cdr":[{"requestid":"a","fid":"2"}],"CDR":[]}'),
        ("cdr-push", b'{"requestid":"r","state":"answer","State":"callout","timestamp":"2026-11-21 10:00:00"}'),
        ("tencent/voicecode", b'{"voicecode_callback":{"callid":"c","result":"0","result":"1"}}'),
        ("tencent/voicecode", b'{"voicecode_callback":{"callid":"c"},"voicecode_callback":{"callid":"d"}}'),
        ("tencent/voiceprompt", b'{"voicekey_callback":{"callid":"c","keypress":"1","keypress":"2"}}'),
        (
            "tencent/voicecode",
            b'{"voice_failure_callback":{"callid":"c","failure_code":8,"failure_code":"8"}}',
        ),  # a number is not a string
        ("tencent/voiceprompt", b'{"voice_failure_callback":{"callid":"c","failure_code":8,"Failure_Code":5}}'),
        (
            "tencent/voicecode",
            b'{"voicekey_callback":{"callid":"c","keypress":"1"},"VoiceKey_Callback":{"callid":"c","keypress":"2"}}',
        ),
    ],
)
def test_ambiguity_in_the_envelope_dead_letters_the_request(route: str, body: bytes) -> None:
    (outcome,) = normalize(route, body)
    assert isinstance(outcome, Rejection)
    assert (outcome.reason_type, outcome.report_index) == ("ambiguous_field", None)


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("callback-call/status", b'{"callId":"c","status":"4","Status":"8"}'),
        ("tencent/sms-reply", b'{"mobile":"13800138000","time":1763704800,"text":"Y","text":"N"}'),
        ("tencent/sms-reply", b'{"mobile":"13800138000","time":1763704800," text ":"N","text":"Y"}'),
    ],
)
def test_a_lone_report_object_is_report_0(route: str, body: bytes) -> None:
    (outcome,) = normalize(route, body)
    assert isinstance(outcome, Rejection) and (outcome.reason_type, outcome.report_index) == ("ambiguous_field", 0)


def test_a_reply_given_twice_the_same_is_read_once() -> None:
    (event,) = normalize("tencent/sms-reply", b'{"mobile":"13800138000","time":1763704800,"text":"Y","text":"Y"}')
    assert not isinstance(event, Rejection) and event["message_text"] == "Y"


def test_an_ambiguous_reply_in_an_array_holds_back_no_other() -> None:
    reply = b'{"mobile":"13800138000","time":1763704800,"text":"Y"}'
    outcomes = normalize(
        "tencent/sms-reply",
        b"[" + reply + b',{"mobile":"13800138000","time":1763704801,"text":"Y","TEXT":"N"},' + reply + b"]",
    )
    assert [(o.reason_type, o.report_index) if isinstance(o, Rejection) else o["report_index"] for o in outcomes] == [
        0,
        ("ambiguous_field", 1),
        2,
    ]


def test_exact_numbers_keep_their_digits_on_the_slow_path() -> None:
    body = (
        b'{"cdr":[{"requestid":"r","appid":"a","fid":2,"tel":"13800138000","duration":20,'
        b'"oriamount":2.94,"oriamount":2.94}]}'
    )
    (event,) = normalize("cdr-push", body)
    assert str(event["charge"]) == "2.940000"


@pytest.mark.parametrize("route", ["tencent/sms-status", "callback-call/record"])
def test_integers_beyond_64_bits_keep_every_digit(route: str) -> None:
    """orjson reads them as floats; the body is read again so that an id sent as a number stays exact."""
    big = 20180635240289460415365120401
    body = b'[{"sid":%d,"mobile":"13800138000","report_status":"SUCCESS","callId":%d}]' % (big, big)
    (event,) = normalize(route, body)
    assert str(big) in (event["sid"], event["call_id"])

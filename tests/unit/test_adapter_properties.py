"""Property-based: whatever a vendor sends, every adapter yields events or dead-letter reasons.

No input may make an adapter raise anything but its own rejection (an ``internal_error`` outcome
would mean a bug surfaced as an exception), and every event it yields must fit the Avro schema and
carry a status of the canonical vocabulary.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringback.normalizer import status
from ringback.normalizer.adapters import registry
from ringback.normalizer.adapters.tencent_voice_status import BODIES as VOICE_BODIES
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT
from tests.golden import cases

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
ROUTES = sorted(registry())
SEED_BODIES = [(case.route, case.body_path.read_bytes()) for case in cases()]
PARSEABLE = []
for route, body in SEED_BODIES:
    with contextlib.suppress(orjson.JSONDecodeError):
        PARSEABLE.append((route, orjson.loads(body)))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
PROFILE = settings(
    max_examples=int(os.environ.get("RINGBACK_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def check(route: str, body: bytes) -> None:
    raw = RawCallback(
        route=route, ingest_id="prop", received_at_us=1_763_700_000_000_000, remote_addr="", content_type="", body=body
    )
    outcomes = normalize_message(raw, registry(), CTX)
    assert outcomes, "every request must produce at least one event or dead letter"
    for outcome in outcomes:
        if isinstance(outcome, Rejection):
            assert outcome.reason_type != "internal_error", outcome.message
            assert outcome.message
        else:
            assert CODEC.decode(CODEC.encode(outcome))["event_id"] == outcome["event_id"]
            assert outcome["status"] in status.ALL, outcome["status"]


@PROFILE
@given(route=st.sampled_from(ROUTES), body=st.binary(max_size=300))
def test_any_bytes(route: str, body: bytes) -> None:
    check(route, body)


@PROFILE
@given(route=st.sampled_from(ROUTES), value=json_values)
def test_any_json(route: str, value: Any) -> None:
    check(route, orjson.dumps(value))


def mutate(value: Any, path: list[int], replacement: Any, delete: bool) -> Any:
    """Replace (or delete) one field somewhere in ``value``, chosen by the integers in ``path``."""
    if not path or not isinstance(value, (dict, list)) or not value:
        return replacement
    step, rest = path[0], path[1:]
    if isinstance(value, list):
        index = step % len(value)
        copy = list(value)
        copy[index] = mutate(copy[index], rest, replacement, delete)
        return copy
    key = sorted(value)[step % len(value)]
    copy = dict(value)
    if delete and (not rest or not isinstance(value[key], (dict, list))):
        del copy[key]
    else:
        copy[key] = mutate(value[key], rest, replacement, delete)
    return copy


@PROFILE
@given(
    sample=st.sampled_from(PARSEABLE),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    replacement=json_values,
    delete=st.booleans(),
)
def test_any_field_mutation_of_real_payloads(
    sample: tuple[str, Any], path: list[int], replacement: Any, delete: bool
) -> None:
    route, value = sample
    check(route, orjson.dumps(mutate(value, path, replacement, delete)))


@PROFILE
@given(sample=st.sampled_from(SEED_BODIES), cut=st.integers(min_value=0, max_value=2000))
def test_truncated_real_payloads(sample: tuple[str, bytes], cut: int) -> None:
    route, body = sample
    check(route, body[: cut % (len(body) + 1)])


# The fields the Tencent voice bodies and the SMS reply are read from, to reach every reader with any value.
VOICE_FIELDS = (
    "callid",
    "mobile",
    "nationcode",
    "call_from",
    "result",
    "fee",
    "start_calltime",
    "accept_time",
    "end_calltime",
    "keypress",
    "failure_code",
    "failure_reason",
)
REPLY_FIELDS = ("extend", "mobile", "nationcode", "sign", "text", "time")
# Values close to the real ones, besides any JSON: digits, codes, times, as text and as numbers.
near_values = (
    json_values
    | st.integers(0, 25)
    | st.integers(0, 25).map(str)
    | st.sampled_from(["", " ", "1470196835", "13800138000", "空号", "1#"])
)


@PROFILE
@given(
    route=st.sampled_from(["tencent/voicecode", "tencent/voiceprompt"]),
    wrapper=st.sampled_from(sorted(VOICE_BODIES)),
    report=st.dictionaries(st.sampled_from(VOICE_FIELDS), near_values),
    envelope=st.dictionaries(st.text(max_size=12), json_values, max_size=2),
)
def test_any_values_in_every_voice_body(
    route: str, wrapper: str, report: dict[str, Any], envelope: dict[str, Any]
) -> None:
    check(route, orjson.dumps({**envelope, wrapper: report}))


@PROFILE
@given(
    replies=st.lists(st.dictionaries(st.sampled_from(REPLY_FIELDS), near_values), min_size=1, max_size=3),
    lone=st.booleans(),
)
def test_any_values_in_sms_replies(replies: list[dict[str, Any]], lone: bool) -> None:
    check("tencent/sms-reply", orjson.dumps(replies[0] if lone else replies))

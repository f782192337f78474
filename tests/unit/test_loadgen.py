"""The simulated vendors: every route in the mix, every voice push on the voice URLs, bodies that read."""

from __future__ import annotations

from collections import Counter

from ringback.loadgen import DEFAULT_MIX, TAG_IN_EXTEND, VOICE_BODIES, TrafficMaker
from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from tests.conftest import REPO_ROOT

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
TAG = "lgtest01"
BODIES = 4000


def made() -> list[tuple[str, list[object], int]]:
    maker = TrafficMaker(TAG, dict(DEFAULT_MIX), seed=3)
    found = []
    for _ in range(BODIES):
        generated = maker.next()
        raw = RawCallback(generated.route, "i", 1_763_700_000_000_000, "", "application/json", generated.body)
        found.append((generated.route, normalize_message(raw, registry(), CTX), generated.events))
    return found


def test_the_default_mix_covers_every_route() -> None:
    assert set(DEFAULT_MIX) == set(registry())


def test_every_body_reads_as_the_events_it_promises_each_tagged() -> None:
    kinds: Counter[tuple[str, str]] = Counter()
    for route, outcomes, events in made():
        assert not any(isinstance(o, Rejection) for o in outcomes), outcomes
        assert len(outcomes) == events
        for event in outcomes:
            kinds[(route, event["event_type"])] += 1
            tagged_in = event["attributes"]["extend"] if route in TAG_IN_EXTEND else event["sid"] or event["call_id"] or event["request_id"]
            assert tagged_in.startswith(TAG), (route, event)
    for route, bodies in VOICE_BODIES.items():
        assert {event_type for (on, event_type) in kinds if on == route} == {
            {"voicecode_callback": "voice.code_status", "voiceprompt_callback": "voice.prompt_status",
             "voicekey_callback": "voice.key_press", "voice_failure_callback": "voice.call_failure"}[wrapper]
            for wrapper in bodies
        }, route
    assert kinds[("tencent/sms-reply", "sms.reply")] > 0

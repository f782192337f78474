"""The simulated vendors: every route in the mix, bodies that read as the events they promise, calls told
coherently over time with times near the moment of sending, realistic answer ratios and durations, SMS
receipts ENROUTE before DELIVRD, several apps and tenants, bounded memory, deterministic for a seed."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ringback.normalizer.adapters import registry
from ringback.normalizer.adapters.cdr_push import STATE_DESC
from ringback.normalizer.adapters.tencent_sms_status import canonical_status
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback
from ringback.tools import loadgen
from ringback.tools.loadgen import DEFAULT_MIX, TAG_IN_EXTEND, Generated, Tenant, TrafficMaker
from ringback.tools.loadgen.calls import TALK_S
from ringback.tools.loadgen.parties import APP_FEN_PER_MINUTE, DEFAULT_APPS, MOBILE_BLOCKS
from ringback.tools.loadgen.tencent_sms import SMS_FAILURE_CODES
from ringback.tools.loadgen.traffic import WARM_START_S
from tests.conftest import REPO_ROOT

CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")
CTX = Context(blank_event=CODEC.blank_event())
TAG = "lgtest01"
T0 = 1_763_700_000.0
STEP_S = 0.08  # 12.5 requests a second: an 8,000-request stream covers ten minutes, calls finish
TIME_FIELDS = (
    "occurred_at",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "caller_started_at",
    "caller_ringing_at",
    "caller_answered_at",
    "caller_ended_at",
    "callee_started_at",
    "callee_ringing_at",
    "callee_answered_at",
    "callee_ended_at",
)
#: The longest a vendor time may lie before its push: a 30-minute call told after the warm start, and delays.
OLDEST_S = WARM_START_S + TALK_S.high + 300
PRICES_PER_MINUTE = {Decimal(fen) / 100 for fen in APP_FEN_PER_MINUTE}


class Clock:
    def __init__(self, step_s: float = STEP_S) -> None:
        self.now, self.step_s = T0, step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


@dataclass
class Sent:
    at: float  # the clock when the body was made (the moment of sending)
    generated: Generated
    events: list[dict[str, Any]]
    rejections: list[Rejection]


def stream(
    count: int, mix: dict[str, int] | None = None, seed: int = 3, step_s: float = STEP_S, **options: Any
) -> Iterator[Sent]:
    clock = Clock(step_s)
    maker = TrafficMaker(TAG, dict(mix or DEFAULT_MIX), seed=seed, clock=clock, **options)
    for _ in range(count):
        generated = maker.next()
        raw = RawCallback(
            generated.route,
            "i",
            int(clock.now * 1_000_000),
            "",
            "application/json",
            generated.body,
            tenant=generated.tenant,
        )
        outcomes = normalize_message(raw, registry(), CTX)
        yield Sent(
            clock.now,
            generated,
            [o for o in outcomes if not isinstance(o, Rejection)],
            [o for o in outcomes if isinstance(o, Rejection)],
        )


@cache
def default_stream() -> list[Sent]:
    return list(stream(8_000))


@cache
def calls_stream() -> list[Sent]:
    """A few thousand calls of every product: only the pushes that settle each call's outcome."""
    return list(
        stream(
            10_000, {"callback-call/hangup": 2, "cdr-push": 6, "tencent/voicecode": 1, "tencent/voiceprompt": 1}, seed=5
        )
    )


def events() -> Iterator[tuple[int, Sent, dict[str, Any]]]:
    for index, sent in enumerate(default_stream()):
        for event in sent.events:
            yield index, sent, event


def by(key: str, source: str, types: tuple[str, ...] | None = None) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for index, _, event in events():
        if event["source"] == source and (types is None or event["event_type"] in types):
            grouped[event[key]].append((index, event))
    return grouped


def is_prefix_of_one(sequence: list[str], allowed: list[list[str]]) -> bool:
    return any(sequence == path[: len(sequence)] for path in allowed)


def test_the_default_mix_covers_every_route() -> None:
    assert set(DEFAULT_MIX) == set(registry())
    assert {route for routes in loadgen.PRODUCT_ROUTES.values() for route in routes} == set(DEFAULT_MIX)
    assert {sent.generated.route for sent in default_stream()} == set(DEFAULT_MIX)


def test_every_body_reads_as_the_events_it_promises_each_tagged_and_none_twice() -> None:
    """What `expected_events` and `expected_replies` count: unique events, each carrying the run tag."""
    ids: Counter[str] = Counter()
    for sent in default_stream():
        assert not sent.rejections, (sent.generated.route, sent.rejections)
        assert len(sent.events) == sent.generated.events
        for event in sent.events:
            ids[event["event_id"]] += 1
            if sent.generated.route in TAG_IN_EXTEND:
                assert event["attributes"]["extend"] == TAG
            else:  # as ClickHouse's coalesce(sid, call_id, request_id) reads it
                assert next(
                    v for v in (event["sid"], event["call_id"], event["request_id"]) if v is not None
                ).startswith(TAG), event
    assert ids and max(ids.values()) == 1  # two bodies never carry the same event: only resends do
    keys = [sent.generated.key for sent in default_stream()]
    assert len(set(keys)) == len(keys)


def test_each_voice_url_gets_the_pushes_of_its_calls() -> None:
    kinds = {(sent.generated.route, event["event_type"]) for sent in default_stream() for event in sent.events}
    assert {kind for route, kind in kinds if route == "tencent/voicecode"} == {
        "voice.code_status",
        "voice.call_failure",
    }
    assert {kind for route, kind in kinds if route == "tencent/voiceprompt"} == {
        "voice.prompt_status",
        "voice.key_press",
        "voice.call_failure",
    }


def test_vendor_times_are_whole_seconds_shortly_before_the_moment_of_sending() -> None:
    lags = []
    for _, sent, event in events():
        sent_at = datetime.fromtimestamp(sent.at, UTC)
        for name in TIME_FIELDS:
            if event[name] is not None:
                assert event[name] <= sent_at, (name, event)
                assert sent_at - event[name] < timedelta(seconds=OLDEST_S), (name, event)
                assert event[name].microsecond == 0
        if event["occurred_at"] is not None:
            lags.append((sent_at - event["occurred_at"]).total_seconds())
    assert statistics.median(lags) < 60  # most pushes follow their event within seconds


def test_after_the_warm_start_pushes_follow_their_events_within_seconds() -> None:
    lags = [
        (datetime.fromtimestamp(sent.at, UTC) - event["occurred_at"]).total_seconds()
        for sent in stream(3000, warm_start_s=0)
        for event in sent.events
        if event["occurred_at"] is not None
    ]
    assert min(lags) >= 0 and statistics.median(lags) < 15 and statistics.quantiles(lags, n=10)[-1] < 60


def test_click_to_call_pushes_each_leg_in_order_then_the_cdr_then_the_recording() -> None:
    leg_paths = [
        ["initiated", "ringing", "answered", "ended"],
        ["initiated", "ringing", "call_failed"],
        ["initiated", "ringing", "rejected"],
        ["initiated", "call_failed"],
        ["initiated", "rejected"],
    ]
    complete = 0
    for call_id, timeline in by("call_id", "callback_call").items():
        assert len({event["app_id"] for _, event in timeline}) == 1, call_id
        indexes = [index for index, _ in timeline]
        assert indexes == sorted(indexes)
        states = [event for _, event in timeline if event["event_type"] == "call.state"]
        times = [event["occurred_at"] for event in states]
        assert times == sorted(times), call_id
        legs = {leg: [event["status"] for event in states if event["leg"] == leg] for leg in ("caller", "callee")}
        assert is_prefix_of_one(legs["caller"], leg_paths) and is_prefix_of_one(legs["callee"], leg_paths), (
            call_id,
            legs,
        )
        if legs["callee"]:  # the callee is dialled once the caller answered (and pressed a key, where asked)
            caller_answered = next(
                e["occurred_at"] for e in states if e["leg"] == "caller" and e["status"] == "answered"
            )
            callee_invited = next(e["occurred_at"] for e in states if e["leg"] == "callee")
            assert all(
                caller_answered <= e["occurred_at"] < callee_invited
                for _, e in timeline
                if e["event_type"] == "call.key_press"
            )
        cdrs = [(index, event) for index, event in timeline if event["event_type"] == "call.cdr"]
        if not cdrs:
            continue
        complete += 1
        ((cdr_index, cdr),) = cdrs
        assert all(index < cdr_index for index, e in timeline if e["event_type"] in ("call.state", "call.key_press"))
        assert cdr["ended_at"] == max(times)
        if cdr["status"] == "answered":
            assert legs["callee"] == ["initiated", "ringing", "answered", "ended"] and legs["caller"][-1] == "ended"
            assert cdr["answered_at"] < cdr["ended_at"]
            assert abs(cdr["duration_s"] - (cdr["ended_at"] - cdr["answered_at"]).total_seconds()) <= 1
            assert cdr["answered_at"] == next(
                e["occurred_at"] for e in states if e["leg"] == "callee" and e["status"] == "answered"
            )
        else:
            assert cdr["duration_s"] == 0 and cdr["answered_at"] is None and "answered" not in legs["callee"]
        for index, recording in timeline:
            if recording["event_type"] == "call.recording":
                assert (
                    index > cdr_index
                    and cdr["status"] == "answered"
                    and recording["recording_url"] == cdr["recording_url"]
                )
    assert complete > 100


def test_cdr_platform_calls_push_their_states_then_the_cdr_with_the_same_requestid() -> None:
    paths = [["initiated", "ringing", "answered", "ended"], ["initiated", "ringing", "ended"], ["initiated", "ended"]]
    rates: dict[str, set[Decimal]] = defaultdict(set)
    complete = 0
    for request_id, timeline in by("request_id", "cdr_push", ("call.state", "call.cdr")).items():
        states = [event for _, event in timeline if event["event_type"] == "call.state"]
        assert is_prefix_of_one([event["status"] for event in states], paths), request_id
        assert [event["occurred_at"] for event in states] == sorted(event["occurred_at"] for event in states)
        cdrs = [event for _, event in timeline if event["event_type"] == "call.cdr"]
        if not cdrs:
            continue
        complete += 1
        (cdr,) = cdrs
        assert timeline[-1][1] is cdr and [event["status"] for event in states][-1] == "ended"
        assert cdr["caller_ended_at"] == states[-1]["occurred_at"]
        assert {cdr["from_number"], cdr["to_number"]} == {states[0]["from_number"], states[0]["to_number"]}
        assert STATE_DESC[cdr["vendor_status"].split("|")[0]] == cdr["status"]
        answered = "answered" in [event["status"] for event in states]
        assert (cdr["status"] == "answered") == answered
        if answered:
            assert cdr["callee_answered_at"] < cdr["callee_ended_at"]
            assert cdr["duration_s"] == (cdr["callee_ended_at"] - cdr["callee_answered_at"]).total_seconds()
            minutes = -(-cdr["duration_s"] // 60)
            rates[cdr["app_id"]].add(cdr["charge"] / minutes)
        else:
            assert cdr["duration_s"] == 0 and cdr["charge"] == 0 and cdr["callee_answered_at"] is None
    assert complete > 200
    assert len(rates) > 1 and all(len(per_minute) == 1 for per_minute in rates.values())  # one price a minute per app


def test_cdr_platform_voice_codes_and_conferences_bill_their_minutes() -> None:
    conferences: dict[str, int] = Counter()
    for _, _, event in events():
        if event["event_type"] in ("voice.code_cdr", "conference.cdr"):
            assert event["status"] == "answered" and event["answered_at"] < event["ended_at"]
            assert event["duration_s"] == (event["ended_at"] - event["answered_at"]).total_seconds()
            assert event["charge"] / -(-event["duration_s"] // 60) in PRICES_PER_MINUTE
        if event["event_type"] == "conference.cdr":
            conferences[event["conference_id"]] += 1
    assert conferences and min(conferences.values()) >= 2


def test_tencent_voice_calls_push_a_key_press_then_one_status_with_its_fee_or_a_failure() -> None:
    for call_id, timeline in by("call_id", "tencent.voicecode").items():
        assert len(timeline) == 1, call_id
    pushes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, _, event in events():
        if event["source"].startswith("tencent.voice"):
            pushes[event["call_id"]].append(event)
    failures = 0
    for call_id, timeline in pushes.items():
        kinds = [event["event_type"] for event in timeline]
        assert kinds in (
            ["voice.call_failure"],
            ["voice.code_status"],
            ["voice.prompt_status"],
            ["voice.key_press", "voice.prompt_status"],
            ["voice.key_press"],
        ), (call_id, kinds)
        failures += kinds == ["voice.call_failure"]
        status = timeline[-1]
        if status["event_type"] == "voice.call_failure":
            continue
        if "voice.key_press" in kinds and len(kinds) == 2:
            assert status["status"] == "answered"
        if status["status"] == "answered":
            assert status["started_at"] < status["answered_at"] < status["ended_at"]
            assert (
                status["billable_minutes"]
                == -(-int((status["ended_at"] - status["answered_at"]).total_seconds()) // 60)
                >= 1
            )
        elif status["event_type"] in ("voice.code_status", "voice.prompt_status"):
            assert (
                status["answered_at"] is None
                and status["billable_minutes"] == 0
                and status["started_at"] < status["ended_at"]
            )
    assert failures > 20


def test_sms_receipts_go_enroute_then_delivrd_or_a_failure_code_and_a_few_end_users_reply() -> None:
    receipts = by("sid", "tencent.sms_status")
    delivered_at: dict[str, datetime] = {}
    for sid, timeline in receipts.items():
        codes = [event["vendor_code"] for _, event in timeline]
        assert len(codes) in (1, 2) and "ENROUTE" not in codes[1:], sid
        if len(codes) == 2:
            assert (
                codes[0] == "ENROUTE"
                and timeline[0][0] < timeline[1][0]
                and timeline[0][1]["occurred_at"] < timeline[1][1]["occurred_at"]
            )
        final = timeline[-1][1]
        if final["vendor_code"] == "DELIVRD":
            delivered_at[final["to_number"]] = final["occurred_at"]
        elif final["vendor_code"] != "ENROUTE":
            assert final["status"] == "failed", final
    replies = [event for _, _, event in events() if event["event_type"] == "sms.reply"]
    assert replies and all(
        reply["from_number"] in delivered_at and reply["occurred_at"] > delivered_at[reply["from_number"]]
        for reply in replies
    )
    assert 0.005 < len(replies) / len(delivered_at) < 0.04


def test_sms_delivery_mix_most_delivrd_at_once_some_enroute_first_and_real_failure_codes() -> None:
    finals: Counter[str] = Counter()
    enroute = 0
    sids = by("sid", "tencent.sms_status")
    for timeline in sids.values():
        enroute += timeline[0][1]["vendor_code"] == "ENROUTE"
        if len(timeline) == 2 or timeline[0][1]["vendor_code"] != "ENROUTE":
            finals[timeline[-1][1]["vendor_code"]] += 1
    assert 0.08 < enroute / len(sids) < 0.16
    assert 0.88 < finals["DELIVRD"] / finals.total() < 0.98
    assert len(finals) > 8  # a mix of carriers' failure codes
    for code in SMS_FAILURE_CODES.items:
        assert canonical_status("FAIL", code) == "failed", code  # each one the pipeline reads as a failure


def test_answer_ratios_and_talk_times_are_realistic_over_thousands_of_calls() -> None:
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    talk: dict[str, list[float]] = defaultdict(list)
    for sent in calls_stream():
        assert not sent.rejections
        for event in sent.events:
            kind = {
                "callback_call": "click-to-call",
                "cdr_push": "two-way call",
                "tencent.voicecode": "voice",
                "tencent.voiceprompt": "voice",
                "tencent.voice_failure": "voice",
                "tencent.voicekey": "voice",
            }[event["source"]]
            if event["event_type"] in ("call.cdr", "voice.code_status", "voice.prompt_status", "voice.call_failure"):
                outcomes[kind][event["status"]] += 1
            if event["event_type"] == "call.cdr" and event["status"] == "answered":
                talk[kind].append(event["duration_s"])
    assert sum(counted.total() for counted in outcomes.values()) > 3000
    for kind, counted in outcomes.items():
        assert counted.total() > 800, kind
        assert 0.40 <= counted["answered"] / counted.total() <= 0.60, (kind, counted)
    for status in ("no_answer", "busy", "unreachable", "invalid_number"):  # every reason a call is not answered
        assert outcomes["two-way call"][status] / outcomes["two-way call"].total() > 0.02, status
        assert outcomes["voice"][status] > 0, status
    for kind, seconds in talk.items():  # log-normal around a minute or two: skewed right, a long tail
        assert 50 <= statistics.median(seconds) <= 110 and statistics.mean(seconds) > statistics.median(seconds), kind
        assert min(seconds) >= 1 and max(seconds) <= TALK_S.high and max(seconds) > 300, kind


def test_several_apps_with_their_own_answer_ratios() -> None:
    apps: dict[str, Counter[str]] = defaultdict(Counter)
    for sent in calls_stream():
        for event in sent.events:
            if event["event_type"] == "call.cdr":
                apps[event["app_id"]][event["status"] == "answered"] += 1
    assert len(apps) >= 2 * DEFAULT_APPS  # each app has its id on the CDR platform and on click-to-call
    sizes = sorted((counted.total() for counted in apps.values()), reverse=True)
    assert sizes[0] > 2 * sizes[-1]  # a big customer and a tail


def test_every_party_has_a_number_of_its_own_with_a_known_carrier() -> None:
    import phonenumbers
    from phonenumbers import carrier

    maker = TrafficMaker(TAG, dict(DEFAULT_MIX), seed=4, clock=Clock())
    numbers = [maker.kit.mobile() for _ in range(20_000)]
    assert len(set(numbers)) == len(numbers)
    carriers = Counter(carrier.name_for_number(phonenumbers.parse("+86" + number), "en") for number in numbers)
    assert set(carriers) == set(MOBILE_BLOCKS)
    for name, (share, _) in MOBILE_BLOCKS.items():
        assert abs(carriers[name] / len(numbers) - share / 100) < 0.02, carriers


def test_tenants_get_their_urls_and_the_anonymous_run_the_tenant_less_routes() -> None:
    tenants = [Tenant("acme", "acme-secret-0123456789"), Tenant("globex", "glo/bex secret 98765")]
    sent = list(stream(600, tenants=tenants, apps=3))
    paths = Counter(s.generated.path.split("/callbacks/")[0] for s in sent)
    assert set(paths) == {"/t/acme/acme-secret-0123456789", "/t/globex/glo%2Fbex%20secret%2098765"}
    assert all(s.generated.path.endswith("/callbacks/" + s.generated.route) for s in sent)
    assert Counter(s.generated.tenant for s in sent).keys() == {"acme", "globex"}
    assert all(s.generated.path == "/callbacks/" + s.generated.route and s.generated.tenant == "" for s in stream(200))


def test_tenants_come_from_the_command_line_or_the_tenants_file(tmp_path: Path) -> None:
    assert loadgen.tenants_for([], [], "") == ([], [])
    assert loadgen.tenants_for(["acme"], ["s" * 16], "") == ([Tenant("acme", "s" * 16)], [])
    for ids, secrets in ((["acme"], []), (["Acme!"], ["s" * 16]), (["acme"], ["a/b"])):
        with pytest.raises(ValueError):
            loadgen.tenants_for(ids, secrets, "")
    path = tmp_path / "tenants.toml"
    path.write_text(
        '[[tenants]]\nid = "acme"\nsecret = "acme-secret-0123456789"\n'
        '[[tenants]]\nid = "rotating"\nsecrets = ["old-secret-0123456789", "new-secret-9876543210"]\n'
        f'[[tenants]]\nid = "hashed"\nsecret_sha256 = "{"ab" * 32}"\n'
    )
    assert loadgen.tenants_for([], [], str(path)) == (
        [Tenant("acme", "acme-secret-0123456789"), Tenant("rotating", "old-secret-0123456789")],
        ["hashed"],
    )
    assert loadgen.tenants_for(["x"], ["y" * 16], str(path))[0] == [Tenant("x", "y" * 16)]  # the command line first
    path.write_text('[[tenants]]\nid = "acme"\nsecret = "short"\n')
    with pytest.raises(ValueError, match="at least 16"):
        loadgen.tenants_for([], [], str(path))


def test_the_queue_of_pushes_is_bounded_and_a_story_over_it_is_told_at_once() -> None:
    clock = Clock(step_s=0.0)  # no time passes: nothing a story planned for later ever comes due
    maker = TrafficMaker(TAG, dict(DEFAULT_MIX), seed=1, clock=clock, max_pending=300)
    sent = []
    for _ in range(3000):
        sent.append(maker.next())
        assert (
            len(maker.pending) <= 300 + 64
        )  # over the bound by the pushes of the last stories started below it at most
    now = datetime.fromtimestamp(clock.now, UTC)
    for generated in sent:  # told at once, as already over: every vendor time before the moment of sending
        raw = RawCallback(generated.route, "i", int(clock.now * 1_000_000), "", "application/json", generated.body)
        for event in normalize_message(raw, registry(), CTX):
            assert not isinstance(event, Rejection) and all(
                event[name] is None or event[name] <= now for name in TIME_FIELDS
            )


def test_queued_pushes_take_the_memory_of_their_bodies() -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        maker = TrafficMaker(TAG, dict(DEFAULT_MIX), seed=1, clock=Clock(step_s=0.0), max_pending=3000)
        for _ in range(3000):
            maker.next()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(maker.pending) >= 3000
    assert held < len(maker.pending) * 1024  # about the bodies' size: no serializer buffer (4 KB each) kept with them


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    def bodies(seed: int) -> list[tuple[str, bytes]]:
        maker = TrafficMaker(TAG, dict(DEFAULT_MIX), seed=seed, clock=Clock())
        return [(g.path, g.body) for g in (maker.next() for _ in range(500))]

    assert bodies(11) == bodies(11)
    assert bodies(11) != bodies(12)


def test_a_mix_reaches_only_its_routes_and_a_mix_of_nothing_is_refused() -> None:
    mix = loadgen.parse_mix("tencent/sms-status=8,cdr-push=2")
    routes = Counter(sent.generated.route for sent in stream(1000, mix))
    assert set(routes) == {"tencent/sms-status", "cdr-push"}
    assert 0.7 < routes["tencent/sms-status"] / routes.total() < 0.9  # each product its share of requests
    with pytest.raises(ValueError):
        TrafficMaker(TAG, {"cdr-push": 0})


def test_malformed_bodies_are_cut_short_and_promise_nothing() -> None:
    maker = TrafficMaker(TAG, dict(DEFAULT_MIX), seed=2, clock=Clock())
    for _ in range(200):
        broken = maker.malformed()
        raw = RawCallback(broken.route, "i", 0, "", "application/json", broken.body)
        assert broken.events == 0 and broken.key.endswith("#broken")
        assert all(isinstance(o, Rejection) for o in normalize_message(raw, registry(), CTX))

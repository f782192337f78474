"""Rate cards on a running pipeline: the card loaded from --rates-file prices every event by query,
exactly under vendor resends, and a changed file re-rates without a restart from its valid_from on."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.billing_traffic import (
    CDR_ROUTE,
    HANGUP_ROUTE,
    SMS_ROUTE,
    STATUS_ROUTE,
    VOICE_CODE_ROUTE,
    call_state,
    click_to_call_hangup,
    click_to_call_status,
    send,
    sms_receipt,
    tencent_voice_code,
    two_way_cdr,
    voice_code_cdr,
    write_card,
)
from tests.pipeline import Pipeline, open_tenants_file, ringback, sql_rows

pytestmark = pytest.mark.integration
SETTLE_S = 90.0
CNY = "CNY"
SMS_LINE = {"event_type": "sms.delivery_report", "unit": "message", "price": "0.045", "currency": CNY}
SIX_SECONDS = {"event_type": "call.cdr", "unit": "minute", "price": "0.1", "currency": CNY, "increment_s": 6}
WHOLE_MINUTES = {**SIX_SECONDS, "app_id": "app-min60", "increment_s": 60}
CHANGE_BEFORE = {**SIX_SECONDS, "app_id": "app-change", "increment_s": 60}
CHANGE_AFTER = {**CHANGE_BEFORE, "price": "0.3", "valid_from": "2026-11-22"}
ACME, GLOBEX = "acme", "globex"
TENANT_SECRET = "tenant-secret-0f9e8d7c6b"
TENANTS_FILE = open_tenants_file((ACME, GLOBEX), TENANT_SECRET)
# Lines of every precedence level for call.cdr (SIX_SECONDS is the default line), each 60 s increments.
ACME_APP_PREC = {**SIX_SECONDS, "tenant": ACME, "app_id": "app-prec", "price": "0.5", "increment_s": 60}
APP_PREC = {**SIX_SECONDS, "app_id": "app-prec", "price": "0.3", "increment_s": 60}
ACME_ANY_APP = {**SIX_SECONDS, "tenant": ACME, "price": "0.2", "increment_s": 60}
APP_SHARED = {**SIX_SECONDS, "app_id": "app-shared", "price": "0.4", "increment_s": 60}
# acme's own lines for the second and event units.
ACME_SECONDS = {**SIX_SECONDS, "tenant": ACME, "event_type": "voice.code_cdr", "unit": "second", "price": "0.002"}
ACME_EVENTS = {"tenant": ACME, "event_type": "call.state", "unit": "event", "price": "0.01", "currency": CNY}
VOICE_CODE_MINUTES = {**SIX_SECONDS, "event_type": "voice.code_status", "price": "0.05", "increment_s": 60}
CARD = (
    SMS_LINE,
    SIX_SECONDS,
    WHOLE_MINUTES,
    CHANGE_BEFORE,
    ACME_APP_PREC,
    APP_PREC,
    ACME_ANY_APP,
    APP_SHARED,
    ACME_SECONDS,
    ACME_EVENTS,
    VOICE_CODE_MINUTES,
)


def tenant_route(tenant: str, route: str) -> str:
    return f"/t/{tenant}/{TENANT_SECRET}{route}"


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rates") / "rates.toml"
    write_card(path, *CARD)
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, card: Path) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("billing")
    (home / "tenants.toml").write_text(TENANTS_FILE)
    running = Pipeline(
        home / "data",
        [
            "--rates-file",
            str(card),
            "--assurance-check-interval-s",
            "0.5",
            "--tenants-file",
            str(home / "tenants.toml"),
        ],
    ).start()
    try:
        yield running
    finally:
        running.stop()


def wait_for(data_dir: Path, query: str, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + SETTLE_S
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = sql_rows(data_dir, query)
        if found == expected:
            return found
        time.sleep(0.5)
    return found


def sink_gauge_reaches(pipeline: Pipeline, name: str, good: Callable[[float], bool]) -> bool:
    """Wait until the sink's /metrics shows gauge ``name`` with a value ``good`` accepts."""
    url = pipeline.run_file("sink")["metrics"]
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
        if values and good(values[0]):
            return True
        time.sleep(0.5)
    return False


def stored(data_dir: Path, where: str, count: int) -> None:
    """Wait until ``count`` distinct events match ``where`` (so every copy sent has been stored once)."""
    query = f"SELECT toString(count()) AS n FROM ringback.events WHERE {where}"
    assert wait_for(data_dir, query, [{"n": str(count)}]) == [{"n": str(count)}]


def test_an_sms_is_priced_once_across_its_receipts(pipeline: Pipeline) -> None:
    for sid, codes in (("rate-sms-1", ("ENROUTE", "DELIVRD")), ("rate-sms-2", ("ENROUTE", "UNDELIV"))):
        for second, code in enumerate(codes):
            send(pipeline, SMS_ROUTE, sms_receipt(sid, "13800138000", code, f"2026-11-17 10:00:0{second}"))
    stored(pipeline.data_dir, "sid LIKE 'rate-sms-%'", 4)
    priced = sql_rows(
        pipeline.data_dir,
        "SELECT sid, unit, toString(units) AS units, toString(rated_charge) AS charge, rate_currency, "
        "toString(day) AS day FROM ringback.rated_events WHERE sid LIKE 'rate-sms-%' ORDER BY sid",
    )
    assert priced == [
        {"sid": sid, "unit": "message", "units": "1", "charge": "0.045", "rate_currency": CNY, "day": "2026-11-17"}
        for sid in ("rate-sms-1", "rate-sms-2")
    ]
    (usage,) = sql_rows(
        pipeline.data_dir,
        "SELECT toString(events) AS events, toString(rated_charge) AS charge FROM ringback.rated_usage "
        "WHERE event_type = 'sms.delivery_report' AND day = '2026-11-17'",
    )
    assert usage == {"events": "2", "charge": "0.09"}


def test_minutes_are_priced_in_started_increments(pipeline: Pipeline) -> None:
    for request_id, app, seconds in (
        ("rate-min-1", "app-inc6", 61),  # 11 increments of 6 s: 1.1 minutes
        ("rate-min-2", "app-inc6", 60),  # 10 increments: 1 minute
        ("rate-min-3", "app-min60", 61),  # 2 whole minutes
        ("rate-min-4", "app-min60", 0),  # nothing to bill
    ):
        send(pipeline, CDR_ROUTE, two_way_cdr(request_id, app, "2026-11-21 11:00:00", seconds, Decimal("0.1")))
    stored(pipeline.data_dir, "request_id LIKE 'rate-min-%'", 4)
    priced = sql_rows(
        pipeline.data_dir,
        "SELECT call_key, increment_s, toString(billed_seconds) AS billed_seconds, toString(units) AS units, "
        "toString(rated_charge) AS charge, "
        "toString(charge_difference) AS difference "
        "FROM ringback.rated_events WHERE call_key LIKE 'rate-min-%' ORDER BY call_key",
    )
    assert [(r["increment_s"], r["billed_seconds"], r["units"], r["charge"], r["difference"]) for r in priced] == [
        (6, "66", "1.1", "0.11", "0.01"),
        (6, "60", "1", "0.1", "0"),
        (60, "120", "2", "0.2", "0.1"),
        (60, "0", "0", "0", "-0.1"),
    ]


def test_a_later_valid_from_re_rates_only_its_days_without_a_restart(pipeline: Pipeline, card: Path) -> None:
    for request_id, day in (("rate-chg-1", "2026-11-21"), ("rate-chg-2", "2026-11-22"), ("rate-chg-3", "2026-11-23")):
        send(pipeline, CDR_ROUTE, two_way_cdr(request_id, "app-change", f"{day} 09:00:00", 60, None))
    stored(pipeline.data_dir, "request_id LIKE 'rate-chg-%'", 3)
    query = (
        "SELECT toString(day) AS day, toString(rated_charge) AS charge FROM ringback.rated_usage "
        "WHERE app_id = 'app-change' ORDER BY day"
    )
    before = [{"day": f"2026-11-2{d}", "charge": "0.1"} for d in (1, 2, 3)]
    assert wait_for(pipeline.data_dir, query, before) == before
    write_card(card, *CARD, CHANGE_AFTER)
    after = [{"day": "2026-11-21", "charge": "0.1"}, *({"day": f"2026-11-2{d}", "charge": "0.3"} for d in (2, 3))]
    assert wait_for(pipeline.data_dir, query, after) == after
    cards = sql_rows(
        pipeline.data_dir, "SELECT toString(lines) AS lines FROM ringback.rate_cards ORDER BY card_version"
    )
    assert cards[-2:] == [{"lines": str(len(CARD))}, {"lines": str(len(CARD) + 1)}]  # the earlier card is kept


def test_a_card_that_does_not_validate_leaves_the_card_in_force(pipeline: Pipeline, card: Path) -> None:
    in_force = sql_rows(pipeline.data_dir, "SELECT toString(count()) AS n FROM ringback.rate_cards")
    good = card.read_text()
    card.write_text(good.replace('unit = "message"', 'unit = "page"'))
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and "rates file refused" not in pipeline.log():
        time.sleep(0.5)
    assert "unknown unit 'page'" in pipeline.log()
    assert sql_rows(pipeline.data_dir, "SELECT toString(count()) AS n FROM ringback.rate_cards") == in_force
    card.write_text(good)


def line_of(line: dict[str, Any]) -> int:
    return CARD.index(line) + 1


def test_the_most_specific_line_wins_tenant_and_app_then_app_then_tenant_then_default(pipeline: Pipeline) -> None:
    for request_id, tenant, app in (
        ("prec-1", ACME, "app-prec"),  # acme's line for app-prec: 2 started minutes at 0.5
        ("prec-2", ACME, "app-shared"),  # app-shared's line, not acme's for every app: 2 minutes at 0.4
        ("prec-3", ACME, "app-other"),  # acme's line for every app: 2 minutes at 0.2
        ("prec-4", GLOBEX, "app-prec"),  # app-prec's line for every tenant: 2 minutes at 0.3
        ("prec-5", GLOBEX, "app-other"),  # the default line: 11 increments of 6 s at 0.1 a minute
        ("prec-6", "", "app-prec"),  # a tenant-less event: app-prec's line
    ):
        route = tenant_route(tenant, CDR_ROUTE) if tenant else CDR_ROUTE
        send(pipeline, route, two_way_cdr(request_id, app, "2026-11-27 10:00:00", 61, None))
    stored(pipeline.data_dir, "request_id LIKE 'prec-%'", 6)
    priced = sql_rows(
        pipeline.data_dir,
        "SELECT tenant, call_key, rate_line, toString(billed_seconds) AS billed, toString(rated_charge) AS charge "
        "FROM ringback.rated_events WHERE call_key LIKE 'prec-%' ORDER BY call_key",
    )
    assert [(r["tenant"], r["call_key"], r["rate_line"], r["billed"], r["charge"]) for r in priced] == [
        (ACME, "prec-1", line_of(ACME_APP_PREC), "120", "1"),
        (ACME, "prec-2", line_of(APP_SHARED), "120", "0.8"),
        (ACME, "prec-3", line_of(ACME_ANY_APP), "120", "0.4"),
        (GLOBEX, "prec-4", line_of(APP_PREC), "120", "0.6"),
        (GLOBEX, "prec-5", line_of(SIX_SECONDS), "66", "0.11"),
        ("", "prec-6", line_of(APP_PREC), "120", "0.6"),
    ]


def test_seconds_and_events_are_priced(pipeline: Pipeline) -> None:
    at = "2026-11-27 11:00:00"
    for request_id, seconds, amount in (
        ("unit-sec-1", 20, "0.048"),
        ("unit-sec-2", 6, "0.012"),
        ("unit-sec-3", 0, "0"),
    ):
        send(
            pipeline,
            tenant_route(ACME, CDR_ROUTE),
            voice_code_cdr(request_id, "app-unit", at, seconds, Decimal(amount)),
        )
    send(pipeline, CDR_ROUTE, voice_code_cdr("unit-sec-4", "app-unit", at, 20, Decimal("0.05")))  # no line: unpriced
    for state, second in (("callout", 0), ("alerting", 3)):
        send(pipeline, tenant_route(ACME, CDR_ROUTE), call_state("unit-evt-1", state, f"2026-11-27 11:00:0{second}"))
    stored(pipeline.data_dir, "request_id LIKE 'unit-%'", 6)
    priced = sql_rows(
        pipeline.data_dir,
        "SELECT call_key, unit, increment_s, toString(billed_seconds) AS billed, toString(units) AS units, "
        "toString(rated_charge) AS charge FROM ringback.rated_events WHERE call_key LIKE 'unit-%' "
        "ORDER BY call_key, event_time",
    )
    assert [(r["call_key"], r["unit"], r["increment_s"], r["billed"], r["units"], r["charge"]) for r in priced] == [
        ("unit-evt-1", "event", 0, "0", "1", "0.01"),
        ("unit-evt-1", "event", 0, "0", "1", "0.01"),
        ("unit-sec-1", "second", 6, "24", "24", "0.048"),  # 4 started increments of 6 s
        ("unit-sec-2", "second", 6, "6", "6", "0.012"),
        ("unit-sec-3", "second", 6, "0", "0", "0"),
    ]
    usage = sql_rows(
        pipeline.data_dir,
        "SELECT event_type, toString(events) AS events, toString(units) AS units, toString(rated_charge) AS charge "
        "FROM ringback.rated_usage WHERE tenant = 'acme' AND ifNull(app_id, '') IN ('app-unit', '') "
        "AND day = '2026-11-27' ORDER BY event_type",
    )
    assert usage == [
        {"event_type": "call.state", "events": "2", "units": "2", "charge": "0.02"},
        {"event_type": "voice.code_cdr", "events": "3", "units": "30", "charge": "0.06"},
    ]


def test_tencent_voice_is_priced_by_the_minutes_it_bills(pipeline: Pipeline) -> None:
    answered = int(datetime(2026, 11, 27, 3, 0, tzinfo=UTC).timestamp())
    for call_id, seconds, fee in (("tv-fee-1", 20, 2), ("tv-fee-2", 20, 0)):  # the fee, not the 20 s, is billed
        send(pipeline, VOICE_CODE_ROUTE, tencent_voice_code(call_id, answered, seconds, fee))
    stored(pipeline.data_dir, "call_id LIKE 'tv-fee-%'", 2)
    priced = sql_rows(
        pipeline.data_dir,
        "SELECT call_key, rate_line, toString(billed_seconds) AS billed, toString(units) AS units, "
        "toString(rated_charge) AS charge FROM ringback.rated_events WHERE call_key LIKE 'tv-fee-%' ORDER BY call_key",
    )
    assert [(r["call_key"], r["rate_line"], r["billed"], r["units"], r["charge"]) for r in priced] == [
        ("tv-fee-1", line_of(VOICE_CODE_MINUTES), "120", "2", "0.1"),
        ("tv-fee-2", line_of(VOICE_CODE_MINUTES), "0", "0", "0"),
    ]


#: China time, long past every grace period.
ANSWERED_AT = "2026-11-21 10:00:0"


def test_an_answered_call_without_a_cdr_is_missing_until_its_cdr_arrives(pipeline: Pipeline) -> None:
    for state, offset in (("callout", 0), ("alerting", 3), ("answer", 8)):
        send(pipeline, CDR_ROUTE, call_state("ra-miss-1", state, f"{ANSWERED_AT}{offset}"))
    send(pipeline, CDR_ROUTE, call_state("ra-miss-2", "callout", f"{ANSWERED_AT}0"))  # never answered: no CDR owed
    query = (
        "SELECT source, call_key, toString(answered_at) AS answered_at, minutes_waiting > 0 AS waiting "
        "FROM ringback.missing_cdrs WHERE call_key LIKE 'ra-miss-%'"
    )
    missing = [
        {"source": "cdr_push", "call_key": "ra-miss-1", "answered_at": "2026-11-21 02:00:08.000000", "waiting": 1}
    ]
    assert wait_for(pipeline.data_dir, query, missing) == missing
    assert sink_gauge_reaches(pipeline, "ringback_sink_missing_cdrs", lambda value: value >= 1)
    send(pipeline, CDR_ROUTE, two_way_cdr("ra-miss-1", "app-miss", "2026-11-21 10:00:08", 30, None))
    assert wait_for(pipeline.data_dir, query, []) == []


def test_an_answered_click_to_call_call_without_its_hang_up_record_is_missing_until_it_arrives(
    pipeline: Pipeline,
) -> None:
    start = int(datetime(2026, 11, 27, 2, 0, tzinfo=UTC).timestamp())
    for call_id, statuses in (
        ("ctc-miss-1", (1, 4, 1024)),  # the callee answered at start + 9: a hang-up record is owed
        ("ctc-miss-2", (1, 8)),  # the caller rejected: nothing owed
        ("ctc-miss-3", (1, 4, 1024)),  # answered, and its hang-up record came
    ):
        for status in statuses:
            at = start + {1: 0, 4: 3, 8: 3, 1024: 9}[status]
            send(pipeline, STATUS_ROUTE, click_to_call_status(call_id, status, at))
    send(pipeline, HANGUP_ROUTE, click_to_call_hangup("ctc-miss-3", start + 9, 30))
    query = (
        "SELECT source, call_key, toString(answered_at) AS answered_at, app_id FROM ringback.missing_cdrs "
        "WHERE call_key LIKE 'ctc-miss-%'"
    )
    missing = [
        {
            "source": "callback_call",
            "call_key": "ctc-miss-1",
            "answered_at": "2026-11-27 02:00:09.000000",
            "app_id": None,
        }
    ]
    assert wait_for(pipeline.data_dir, query, missing) == missing
    send(pipeline, HANGUP_ROUTE, click_to_call_hangup("ctc-miss-1", start + 9, 30))
    assert wait_for(pipeline.data_dir, query, []) == []


def test_a_stuck_message_is_listed_until_its_final_receipt(pipeline: Pipeline) -> None:
    send(pipeline, SMS_ROUTE, sms_receipt("ra-stuck-1", "13800138001", "ENROUTE", "2026-11-21 10:00:00"))
    send(pipeline, SMS_ROUTE, sms_receipt("ra-stuck-2", "13800138001", "DELIVRD", "2026-11-21 10:00:00"))
    query = "SELECT sid, last_status FROM ringback.stuck_messages WHERE sid LIKE 'ra-stuck-%'"
    stuck = [{"sid": "ra-stuck-1", "last_status": "ENROUTE"}]
    assert wait_for(pipeline.data_dir, query, stuck) == stuck
    send(pipeline, SMS_ROUTE, sms_receipt("ra-stuck-1", "13800138001", "DELIVRD", "2026-11-21 10:05:00"))
    assert wait_for(pipeline.data_dir, query, []) == []


def test_a_vendor_charge_off_the_card_is_a_charge_difference(pipeline: Pipeline) -> None:
    send(pipeline, CDR_ROUTE, two_way_cdr("ra-diff-1", "app-min60", "2026-11-21 12:00:00", 60, Decimal("0.1")))
    send(pipeline, CDR_ROUTE, two_way_cdr("ra-diff-2", "app-min60", "2026-11-21 12:00:00", 60, Decimal("0.104")))
    send(pipeline, CDR_ROUTE, two_way_cdr("ra-diff-3", "app-min60", "2026-11-21 12:00:00", 60, Decimal("0.2")))
    query = (
        "SELECT call_key, toString(rated_charge) AS rated, toString(vendor_charge) AS vendor "
        "FROM ringback.charge_differences WHERE call_key LIKE 'ra-diff-%'"
    )
    found = [{"call_key": "ra-diff-3", "rated": "0.1", "vendor": "0.2"}]  # 0.004 is within charge_tolerance
    assert wait_for(pipeline.data_dir, query, found) == found


def audit(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ringback("audit", "--data-dir", str(pipeline.data_dir), *args), capture_output=True, timeout=120
    )


def test_audit_reconciles_a_vendor_statement(pipeline: Pipeline, tmp_path: Path) -> None:
    at = "2026-11-25 12:00:00"
    for request_id in ("st-1", "st-2", "st-3"):
        send(pipeline, CDR_ROUTE, two_way_cdr(request_id, "app-min60", at, 60, Decimal("0.1")))
    send(pipeline, CDR_ROUTE, voice_code_cdr("st-5", "app-code", at, 20, Decimal("0.07")))  # unpriced: its own charge
    stored(pipeline.data_dir, "request_id LIKE 'st-%'", 4)
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "requestid,calltime,fee\n"
        f"st-1,{at},0.1\n"  # as stored (rated 1 minute at 0.1)
        f"st-3,{at},0.5\n"  # the vendor bills more
        "st-4,2026-11-25T04:00:30+00:00,0.2\n"  # never stored (12:00:30 China time)
        f"st-5,{at},0.07\n",
        encoding="utf-8",
    )
    disputes = tmp_path / "disputes.csv"
    done = audit(
        pipeline,
        "--since", "2026-11-25T00:00Z", "--until", "2026-11-26T00:00Z", "--json",
        "--statement", str(statement), "--source", "cdr-push",
        "--columns", "id=requestid,time=calltime,amount=fee", "--out", str(disputes),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    found = json.loads(done.stdout)["statement"]
    assert found["missing_in_store"] == ["st-4"]
    assert found["missing_in_statement"] == ["st-2"]
    assert found["amount_differences"] == [{"id": "st-3", "statement": "0.5", "stored": "0.1"}]
    assert found["totals"]["stored_events"] == 4 and found["totals"]["statement_amount"] == "0.87"
    assert disputes.read_text().splitlines()[1:] == [
        "st-4,missing_in_store,,",
        "st-2,missing_in_statement,,",
        "st-3,amount_difference,0.5,0.1",
    ]
    table = audit(
        pipeline,
        "--since", "2026-11-25T00:00Z", "--until", "2026-11-26T00:00Z",
        "--statement", str(statement), "--source", "cdr-push", "--columns", "id=requestid,time=calltime,amount=fee",
    )  # fmt: skip
    assert table.returncode == 1 and b"never stored     st-4" in table.stdout


def test_audit_refuses_a_statement_it_cannot_read(pipeline: Pipeline, tmp_path: Path) -> None:
    columns = ("--source", "cdr-push", "--columns", "id=requestid,time=calltime,amount=fee")
    for content, message in (
        (b"requestid,calltime,fee\nst-1,2026-11-25 12:00:00,\xff\n", "not UTF-8"),
        (b"requestid,calltime\nst-1,2026-11-25 12:00:00\n", "no column 'fee'"),
        (b"requestid,calltime,fee\nst-1,yesterday,0.1\n", "line 2: time 'yesterday'"),
        (b"requestid,calltime,fee\nst-1,2026-11-25 12:00:00,lots\n", "line 2: amount 'lots'"),
        (b"requestid,calltime,fee\nst-1,2026-11-25 12:00:00," + b"9" * 2000 + b"\n", "field larger than"),
    ):
        statement = tmp_path / "bad.csv"
        statement.write_bytes(content)
        done = audit(pipeline, "--statement", str(statement), *columns)
        assert done.returncode == 2, (content, done.stdout)
        assert message in done.stderr.decode(), done.stderr.decode()


AUDIT_DAY = ("--since", "2026-11-28T00:00Z", "--until", "2026-11-29T00:00Z")


def audit_json(pipeline: Pipeline, *args: str) -> tuple[int, dict[str, Any]]:
    done = audit(pipeline, *args, "--json")
    assert done.returncode in (0, 1), done.stderr.decode()
    found = json.loads(done.stdout)
    for row in found["missing_cdrs"]:
        del row["minutes_waiting"]  # grows with the clock
    for row in found["charge_differences"]:
        del row["event_id"]
    return done.returncode, found


def test_audit_lists_what_the_assurance_views_found_per_tenant_and_app(pipeline: Pipeline) -> None:
    acme, globex = tenant_route(ACME, CDR_ROUTE), tenant_route(GLOBEX, CDR_ROUTE)
    for state, second in (("callout", 0), ("answer", 8)):
        send(pipeline, acme, call_state("aud-miss-1", state, f"2026-11-28 10:00:0{second}"))
    send(
        pipeline,
        tenant_route(ACME, SMS_ROUTE),
        sms_receipt("aud-stuck-1", "13800138002", "ENROUTE", "2026-11-28 10:00:00"),
    )
    send(pipeline, globex, two_way_cdr("aud-diff-1", "app-aud", "2026-11-28 12:00:00", 60, Decimal("0.3")))
    assert wait_for(
        pipeline.data_dir, "SELECT call_key FROM ringback.charge_differences WHERE call_key = 'aud-diff-1'",
        [{"call_key": "aud-diff-1"}],
    ) == [{"call_key": "aud-diff-1"}]  # fmt: skip
    missing = {
        "tenant": ACME, "app_id": "", "source": "cdr_push", "call_key": "aud-miss-1",
        "answered_at": "2026-11-28 02:00:08.000000",
    }  # fmt: skip
    stuck = {
        "tenant": ACME, "app_id": "", "sid": "aud-stuck-1", "to_e164": "+8613800138002", "last_status": "ENROUTE",
        "last_receipt_at": "2026-11-28 02:00:00.000000",
    }  # fmt: skip
    difference = {
        "tenant": GLOBEX, "app_id": "app-aud", "event_type": "call.cdr", "id": "aud-diff-1", "rated_charge": "0.1",
        "vendor_charge": "0.3", "difference": "-0.2", "currency": CNY,
    }  # fmt: skip
    everything = {"missing_cdrs": [missing], "stuck_messages": [stuck], "charge_differences": [difference]}
    deadline = time.monotonic() + SETTLE_S
    while (found := audit_json(pipeline, *AUDIT_DAY)) != (1, everything) and time.monotonic() < deadline:
        time.sleep(0.5)  # the views list a call or message once every copy is stored
    assert found == (1, everything)
    assert audit_json(pipeline, *AUDIT_DAY, "--tenant", ACME) == (
        1, {"missing_cdrs": [missing], "stuck_messages": [stuck], "charge_differences": []}
    )  # fmt: skip
    table = audit(pipeline, *AUDIT_DAY, "--tenant", GLOBEX)
    assert table.returncode == 1
    assert table.stdout.decode().splitlines() == [
        "tenant globex app app-aud: 1 charge differences",
        "  charge difference aud-diff-1 rated 0.1 vendor 0.3 CNY",
    ]
    table = audit(pipeline, *AUDIT_DAY)
    assert table.stdout.decode().splitlines()[:2] == [
        "tenant acme app -: 1 missing CDRs, 1 stuck messages",
        "tenant globex app app-aud: 1 charge differences",
    ]
    nothing = audit(pipeline, "--since", "2026-10-01T00:00Z", "--until", "2026-10-02T00:00Z")
    assert (nothing.returncode, nothing.stdout) == (0, b"no missing CDRs, stuck messages or charge differences\n")


def test_audit_time_tolerance_widens_the_statement_period_and_a_duration_column_is_read(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    send(pipeline, CDR_ROUTE, two_way_cdr("tol-1", "app-min60", "2026-11-29 12:00:00", 60, Decimal("0.1")))
    send(pipeline, CDR_ROUTE, two_way_cdr("tol-2", "app-min60", "2026-11-29 12:02:00", 60, Decimal("0.1")))
    stored(pipeline.data_dir, "request_id LIKE 'tol-%'", 2)
    statement = tmp_path / "statement.csv"
    statement.write_text("requestid,calltime,fee,secs\ntol-1,2026-11-29 12:00:00,0.1,60\n", encoding="utf-8")
    columns = ("--statement", str(statement), "--source", "cdr-push", "--columns")
    period = ("--since", "2026-11-29T00:00Z", "--until", "2026-11-30T00:00Z")
    with_duration = "id=requestid,time=calltime,amount=fee,duration=secs"
    # tol-2, two minutes after the statement's only line, is outside the default 60 s ...
    code, found = audit_json(pipeline, *period, *columns, with_duration)
    assert (code, found["statement"]["missing_in_statement"], found["statement"]["missing_in_store"]) == (0, [], [])
    assert found["statement"]["totals"]["stored_events"] == 1
    # ... and inside 150 s.
    code, found = audit_json(pipeline, *period, *columns, with_duration, "--time-tolerance-s", "150")
    assert (code, found["statement"]["missing_in_statement"]) == (1, ["tol-2"])
    absent = audit(pipeline, *period, *columns, "id=requestid,time=calltime,amount=fee,duration=seconds")
    assert absent.returncode == 2 and "no column 'seconds'" in absent.stderr.decode()


def test_audit_compares_the_statements_durations_with_the_stored_seconds(pipeline: Pipeline, tmp_path: Path) -> None:
    send(pipeline, CDR_ROUTE, two_way_cdr("dur-1", "app-min60", "2026-11-18 12:00:00", 60, Decimal("0.1")))
    send(pipeline, CDR_ROUTE, two_way_cdr("dur-2", "app-min60", "2026-11-18 12:00:00", 42, Decimal("0.1")))
    stored(pipeline.data_dir, "request_id LIKE 'dur-%'", 2)
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "requestid,calltime,fee,secs\ndur-1,2026-11-18 12:00:00,0.1,60\ndur-2,2026-11-18 12:00:00,0.1,75.0\n",
        encoding="utf-8",
    )
    disputes = tmp_path / "disputes.csv"
    period = ("--since", "2026-11-18T00:00Z", "--until", "2026-11-19T00:00Z")
    with_duration = ("--columns", "id=requestid,time=calltime,amount=fee,duration=secs", "--out", str(disputes))
    code, found = audit_json(pipeline, *period, "--statement", str(statement), "--source", "cdr-push", *with_duration)
    assert code == 1
    assert found["statement"]["duration_differences"] == [{"id": "dur-2", "statement": "75", "stored": "42"}]
    assert found["statement"]["amount_differences"] == found["statement"]["missing_in_statement"] == []
    totals = found["statement"]["totals"]
    assert (totals["statement_seconds"], totals["stored_seconds"]) == ("135", 102)
    assert disputes.read_text().splitlines()[1:] == ["dur-2,duration_difference,75,42"]
    bad = tmp_path / "bad.csv"
    bad.write_text("requestid,calltime,fee,secs\ndur-1,2026-11-28 12:00:00,0.1,-3\n", encoding="utf-8")
    refused = audit(pipeline, *period, "--statement", str(bad), "--source", "cdr-push", *with_duration)
    assert refused.returncode == 2 and "line 2: duration '-3' is not a number of seconds" in refused.stderr.decode()

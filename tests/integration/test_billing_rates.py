"""Rate cards on a running pipeline: the card loaded from --rates-file prices every event by query,
exactly under vendor resends, and a changed file re-rates without a restart from its valid_from on."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.billing_traffic import (
    CDR_ROUTE,
    SMS_ROUTE,
    call_state,
    send,
    sms_receipt,
    two_way_cdr,
    voice_code_cdr,
    write_card,
)
from tests.pipeline import Pipeline, ringback, sql_rows

pytestmark = pytest.mark.integration
SETTLE_S = 90.0
CNY = "CNY"
SMS_LINE = {"event_type": "sms.delivery_report", "unit": "message", "price": "0.045", "currency": CNY}
SIX_SECONDS = {"event_type": "call.cdr", "unit": "minute", "price": "0.1", "currency": CNY, "increment_s": 6}
WHOLE_MINUTES = {**SIX_SECONDS, "app_id": "app-min60", "increment_s": 60}
CHANGE_BEFORE = {**SIX_SECONDS, "app_id": "app-change", "increment_s": 60}
CHANGE_AFTER = {**CHANGE_BEFORE, "price": "0.3", "valid_from": "2026-11-22"}


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rates") / "rates.toml"
    write_card(path, SMS_LINE, SIX_SECONDS, WHOLE_MINUTES, CHANGE_BEFORE)
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, card: Path) -> Iterator[Pipeline]:
    running = Pipeline(
        tmp_path_factory.mktemp("billing") / "data", ["--rates-file", str(card), "--assurance-check-interval-s", "0.5"]
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
            send(pipeline, SMS_ROUTE, sms_receipt(sid, "13800138000", code, f"2026-11-21 10:00:0{second}"))
    stored(pipeline.data_dir, "sid LIKE 'rate-sms-%'", 4)
    priced = sql_rows(
        pipeline.data_dir,
        "SELECT sid, unit, toString(units) AS units, toString(rated_charge) AS charge, rate_currency, "
        "toString(day) AS day FROM ringback.rated_events WHERE sid LIKE 'rate-sms-%' ORDER BY sid",
    )
    assert priced == [
        {"sid": sid, "unit": "message", "units": "1", "charge": "0.045", "rate_currency": CNY, "day": "2026-11-21"}
        for sid in ("rate-sms-1", "rate-sms-2")
    ]
    (usage,) = sql_rows(
        pipeline.data_dir,
        "SELECT toString(events) AS events, toString(rated_charge) AS charge FROM ringback.rated_usage "
        "WHERE event_type = 'sms.delivery_report' AND day = '2026-11-21'",
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
    write_card(card, SMS_LINE, SIX_SECONDS, WHOLE_MINUTES, CHANGE_BEFORE, CHANGE_AFTER)
    after = [{"day": "2026-11-21", "charge": "0.1"}, *({"day": f"2026-11-2{d}", "charge": "0.3"} for d in (2, 3))]
    assert wait_for(pipeline.data_dir, query, after) == after
    cards = sql_rows(
        pipeline.data_dir, "SELECT toString(lines) AS lines FROM ringback.rate_cards ORDER BY card_version"
    )
    assert cards[-2:] == [{"lines": "4"}, {"lines": "5"}]  # the earlier card is kept


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

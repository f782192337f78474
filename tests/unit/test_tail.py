"""`ringback tail`'s arguments and lines, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ringback.cli import moment, setting_pairs, tail_filter, tail_line, tail_start
from ringback.consumer import Delivered
from ringback.runtime.avro import EventCodec
from tests.conftest import REPO_ROOT

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")


def delivered(event_type: str = "call.cdr", tenant: str = "", **values: Any) -> Delivered:
    event = CODEC.blank_event()
    event.update(
        event_id="0123456789abcdef0123456789abcdef",
        event_type=event_type,
        source="cdr_push",
        route="cdr-push",
        ingest_id="i",
        received_at=datetime(2026, 11, 27, 10, 0, 1, 250000, tzinfo=UTC),
        status="answered",
        tenant=tenant,
        app_id="app-1",
        request_id="req-1",
        normalizer_version="0.1.0",
    )
    event.update(values)
    headers = (("tenant", tenant.encode()),) if tenant else ()
    return Delivered("ringback.normalized.v1", 0, 7, b"cdr_push:req-1", headers, 0, event)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-90s", NOW - timedelta(seconds=90)),
        ("-15m", NOW - timedelta(minutes=15)),
        ("-1.5h", NOW - timedelta(minutes=90)),
        ("-2d", NOW - timedelta(days=2)),
        ("2026-11-27T10:00Z", datetime(2026, 11, 27, 10, 0, tzinfo=UTC)),
        ("2026-11-27T18:00+08:00", datetime(2026, 11, 27, 10, 0, tzinfo=UTC)),
        ("2026-11-27 10:00", datetime(2026, 11, 27, 10, 0, tzinfo=UTC)),  # no offset: UTC
        ("beginning", "beginning"),
        ("end", "end"),
    ],
)
def test_from_reads_a_time_ago_an_iso_time_or_a_position(text: str, expected: object) -> None:
    assert tail_start(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "15m", "-15w", "2026-13-01", ""])
def test_from_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="--from"):
        tail_start(text, NOW)


def test_types_match_by_name_or_pattern_and_tenants_by_name() -> None:
    cdr, state, sms = (
        delivered("call.cdr", "acme"),
        delivered("call.state", ""),
        delivered("sms.delivery_report", "beta"),
    )
    assert [tail_filter(["call.*"], [])(d) for d in (cdr, state, sms)] == [True, True, False]
    assert [tail_filter(["call.cdr,sms.delivery_report"], [])(d) for d in (cdr, state, sms)] == [True, False, True]
    assert [tail_filter([], ["acme", "-"])(d) for d in (cdr, state, sms)] == [True, True, False]
    assert [tail_filter(["call.*"], ["beta"])(d) for d in (cdr, state, sms)] == [False, False, False]
    assert all(tail_filter([], [])(d) for d in (cdr, state, sms))


def test_json_lines_carry_every_field_money_as_text_and_times_in_utc() -> None:
    line = tail_line(delivered(charge=Decimal("0.060000"), currency="CNY", duration_s=10, tenant="acme"), as_json=True)
    event = json.loads(line)
    assert event["charge"] == "0.060000" and event["duration_s"] == 10 and event["tenant"] == "acme"
    assert event["received_at"] == "2026-11-27T10:00:01.250000Z" and event["occurred_at"] is None
    assert set(event) == {f["name"] for f in CODEC.schema["fields"]}


def test_a_line_for_people_is_compact() -> None:
    line = tail_line(
        delivered(charge=Decimal("0.060000"), currency="CNY", duration_s=10, billable_minutes=1, tenant="acme"),
        as_json=False,
    )
    assert line == (
        "2026-11-27T10:00:01.250000Z  call.cdr  acme  app-1  cdr_push:req-1  answered  0.060000 CNY  10s  1min  "
        "0123456789abcdef0123456789abcdef"
    )
    assert tail_line(delivered("call.state"), as_json=False).split("  ")[2:6] == [
        "-",
        "app-1",
        "cdr_push:req-1",
        "answered",
    ]


def test_a_time_ago_needs_no_equals_sign() -> None:
    from ringback.cli import build_parser, glue_times_ago

    args = build_parser().parse_args(glue_times_ago(["tail", "--from", "-1h", "--type", "call.*"]))
    assert args.start == "-1h" and args.types == ["call.*"]
    assert glue_times_ago(["sql", "-"]) == ["sql", "-"]


@pytest.mark.parametrize(
    "text",
    [
        "-99999999d",
        "-1" + "0" * 400 + "d",
        "-21000d",
        "1969-12-31T23:59Z",
        "2300-01-01T00:00Z",
        "0001-01-01T00:00-23:59",
    ],
)
def test_a_time_outside_what_ringback_can_name_is_a_clear_error_not_a_crash(text: str) -> None:
    with pytest.raises(ValueError, match=r"outside 1970-01-01 \.\. 2299-12-31"):
        moment(text, NOW)
    with pytest.raises(ValueError, match=r"--from .*outside"):
        tail_start(text, NOW)


def test_the_edges_of_the_range_are_times() -> None:
    assert moment("1970-01-01T00:00Z", NOW) == datetime(1970, 1, 1, tzinfo=UTC)
    assert moment("-20000d", datetime(2030, 1, 1, tzinfo=UTC)) == datetime(2030, 1, 1, tzinfo=UTC) - timedelta(20000)


def test_output_settings_on_the_command_line_are_name_value_pairs() -> None:
    assert setting_pairs(["output_format_json_quote_decimals=1", "date_time_output_format = iso"]) == {
        "output_format_json_quote_decimals": "1",
        "date_time_output_format": "iso",
    }
    for bad in (["output_format_json_quote_decimals"], ["=1"]):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            setting_pairs(bad)

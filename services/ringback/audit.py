"""`ringback audit`: what a billing team checks — missing CDRs, stuck messages, charge differences per
tenant and app for a period — and, with ``--statement``, a vendor's statement (CSV) reconciled against
the stored events of its source. Exit 1 when anything is found, 2 when the audit cannot be made.

The statement is hostile input: bounded in size, rows and field length; a file that is not UTF-8 text,
lacks a named column or holds an unreadable time or amount is refused with the line and the reason."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ringback.config import Settings

MAX_STATEMENT_BYTES = 64 * 1_048_576
MAX_STATEMENT_ROWS = 1_000_000
MAX_FIELD_CHARS = 1024
DEFAULT_TIME_TOLERANCE_S = 60.0
COLUMN_ROLES = ("id", "time", "amount")
OPTIONAL_COLUMN_ROLES = ("duration",)
SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:/ -]{1,64}")
#: The decimal places amounts are compared at (the store's Decimal(18, 6)).
AMOUNT_PLACES = Decimal("0.000001")

Query = Callable[[str], list[dict[str, Any]]]


class AuditError(ValueError):
    """The audit cannot be made; the message says why."""


@dataclass(frozen=True)
class StatementLine:
    id: str
    time: datetime
    amount: Decimal
    duration_s: Decimal | None = None  # only with a duration column


@dataclass
class Findings:
    missing_cdrs: list[dict[str, Any]] = field(default_factory=list)
    stuck_messages: list[dict[str, Any]] = field(default_factory=list)
    charge_differences: list[dict[str, Any]] = field(default_factory=list)
    statement: dict[str, Any] | None = None

    @property
    def anything(self) -> bool:
        found = bool(self.missing_cdrs or self.stuck_messages or self.charge_differences)
        if self.statement is not None:
            found = found or any(
                self.statement.get(key)
                for key in ("missing_in_store", "missing_in_statement", "amount_differences", "duration_differences")
            )
        return found

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "missing_cdrs": self.missing_cdrs,
            "stuck_messages": self.stuck_messages,
            "charge_differences": self.charge_differences,
        }
        if self.statement is not None:
            out["statement"] = self.statement
        return out


def quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ch_time(moment: datetime) -> str:
    return f"toDateTime64({quoted(moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f'))}, 6, 'UTC')"


def assurance(query: Query, since: datetime, until: datetime, tenant: str | None) -> Findings:
    def where(column: str) -> str:
        clause = f"v.{column} >= {ch_time(since)} AND v.{column} < {ch_time(until)}"
        return clause + (f" AND v.tenant = {quoted(tenant)}" if tenant is not None else "")

    return Findings(
        missing_cdrs=query(
            "SELECT tenant, ifNull(app_id, '') AS app_id, source, call_key, toString(answered_at) AS answered_at, "
            f"minutes_waiting FROM ringback.missing_cdrs AS v WHERE {where('answered_at')} "
            "ORDER BY tenant, app_id, answered_at"
        ),
        stuck_messages=query(
            "SELECT tenant, ifNull(app_id, '') AS app_id, sid, ifNull(to_e164, '') AS to_e164, "
            "ifNull(last_status, '') AS last_status, toString(last_receipt_at) AS last_receipt_at "
            f"FROM ringback.stuck_messages AS v WHERE {where('last_receipt_at')} "
            "ORDER BY tenant, app_id, last_receipt_at"
        ),
        charge_differences=query(
            "SELECT tenant, ifNull(app_id, '') AS app_id, event_type, event_id, "
            "ifNull(call_key, ifNull(sid, '')) AS id, toString(rated_charge) AS rated_charge, "
            "toString(vendor_charge) AS vendor_charge, toString(charge_difference) AS difference, "
            f"rate_currency AS currency FROM ringback.charge_differences AS v WHERE {where('event_time')} "
            "ORDER BY tenant, app_id, event_time"
        ),
    )


# --- the statement ---


def parse_columns(text: str) -> dict[str, str]:
    """``id=requestid,time=calltime,amount=fee[,duration=secs]`` as {role: column name}."""
    columns: dict[str, str] = {}
    for part in text.split(","):
        role, sep, name = part.partition("=")
        role, name = role.strip(), name.strip()
        if not sep or role not in COLUMN_ROLES + OPTIONAL_COLUMN_ROLES or not name or role in columns:
            raise AuditError(
                f"--columns {text!r}: give id=COLUMN,time=COLUMN,amount=COLUMN[,duration=COLUMN], each once"
            )
        columns[role] = name
    missing = [role for role in COLUMN_ROLES if role not in columns]
    if missing:
        raise AuditError(f"--columns: {', '.join(missing)} missing")
    return columns


def read_statement(path: Path, columns: dict[str, str], zone: ZoneInfo) -> list[StatementLine]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_STATEMENT_BYTES + 1)
    except OSError as exc:
        raise AuditError(f"statement {path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_STATEMENT_BYTES:
        raise AuditError(f"statement {path}: larger than {MAX_STATEMENT_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AuditError(f"statement {path}: not UTF-8 text (byte {exc.start}); export it as UTF-8 CSV") from None
    if "\x00" in text:
        raise AuditError(f"statement {path}: holds NUL characters, not a CSV text file")
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
        absent = [name for name in columns.values() if name not in header]
        if absent:
            raise AuditError(f"statement {path}: no column {', '.join(map(repr, absent))} (header: {header[:20]})")
        lines = []
        for row in reader:
            if reader.line_num > MAX_STATEMENT_ROWS + 1:
                raise AuditError(f"statement {path}: more than {MAX_STATEMENT_ROWS} rows")
            lines.append(_line(row, columns, zone, f"statement {path} line {reader.line_num}"))
    except csv.Error as exc:
        raise AuditError(f"statement {path} line {reader.line_num}: {exc}") from None
    return lines


def _line(row: dict[str, Any], columns: dict[str, str], zone: ZoneInfo, where: str) -> StatementLine:
    values = {role: str(row.get(name) or "").strip() for role, name in columns.items()}
    if not values["id"]:
        raise AuditError(f"{where}: empty id")
    try:
        moment = datetime.fromisoformat(values["time"])
    except ValueError:
        raise AuditError(f"{where}: time {values['time'][:40]!r} is not a time like 2026-11-21 10:00:00") from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    try:
        amount = Decimal(values["amount"])
    except InvalidOperation:
        raise AuditError(f"{where}: amount {values['amount'][:40]!r} is not a decimal number") from None
    if not amount.is_finite():
        raise AuditError(f"{where}: amount {values['amount'][:40]!r} is not a finite number")
    return StatementLine(values["id"], moment.astimezone(UTC), amount, _duration(values.get("duration"), where))


def _duration(text: str | None, where: str) -> Decimal | None:
    """Seconds, as the vendor bills them (``61`` or ``61.0``); None without a duration column."""
    if text is None:
        return None
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        raise AuditError(f"{where}: duration {text[:40]!r} is not a number of seconds") from None
    if not seconds.is_finite() or seconds < 0:
        raise AuditError(f"{where}: duration {text[:40]!r} is not a number of seconds")
    return seconds


@dataclass(frozen=True)
class Stored:
    amount: Decimal
    duration_s: int


def stored_for_statement(query: Query, route: str, since: datetime, until: datetime) -> dict[str, Stored]:
    """The billed events of ``route`` in the period, by vendor id: the rated charge where a rate card
    prices them, else the vendor's own charge; and the seconds the vendor reported (``duration_s``)."""
    rows = query(
        "SELECT id, toString(sum(amount)) AS amount, sum(seconds) AS duration_s FROM ("
        "SELECT coalesce(e.request_id, e.call_id, e.sid, e.event_id) AS id, "
        "if(r.event_id != '', r.rated_charge, toDecimal128(e.charge, 6)) AS amount, "
        "ifNull(e.duration_s, 0) AS seconds "
        "FROM ringback.events AS e LEFT JOIN ringback.rated_events AS r "
        "ON e.event_id = r.event_id AND e.tenant = r.tenant "
        f"WHERE e.route = {quoted(route)} AND e.event_time >= {ch_time(since)} AND e.event_time <= {ch_time(until)} "
        "AND (e.charge IS NOT NULL OR r.event_id != '')) GROUP BY id"
    )
    return {str(row["id"]): Stored(Decimal(str(row["amount"])), int(str(row["duration_s"]))) for row in rows}


def reconcile_statement(query: Query, lines: list[StatementLine], route: str, tolerance: timedelta) -> dict[str, Any]:
    if not lines:
        raise AuditError("the statement has no lines")
    since = min(line.time for line in lines) - tolerance
    until = max(line.time for line in lines) + tolerance
    stated: dict[str, Decimal] = {}
    stated_s: dict[str, Decimal] = {}
    for line in lines:
        stated[line.id] = stated.get(line.id, Decimal(0)) + line.amount
        if line.duration_s is not None:
            stated_s[line.id] = stated_s.get(line.id, Decimal(0)) + line.duration_s
    stored = stored_for_statement(query, route, since, until)
    both = sorted(stated.keys() & stored.keys())
    differences = [
        {
            "id": key,
            "statement": str(stated[key].quantize(AMOUNT_PLACES).normalize()),
            "stored": str(stored[key].amount.quantize(AMOUNT_PLACES).normalize()),
        }
        for key in both
        if stated[key].quantize(AMOUNT_PLACES) != stored[key].amount.quantize(AMOUNT_PLACES)
    ]
    with_duration = (
        {
            "duration_differences": [
                {"id": key, "statement": str(stated_s[key].normalize()), "stored": str(stored[key].duration_s)}
                for key in both
                if key in stated_s and stated_s[key] != stored[key].duration_s
            ]
        }
        if stated_s
        else {}
    )
    seconds = (
        {
            "statement_seconds": str(sum(stated_s.values(), Decimal(0)).normalize()),
            "stored_seconds": sum(row.duration_s for row in stored.values()),
        }
        if stated_s
        else {}
    )
    return {
        "source": route,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "missing_in_store": sorted(stated.keys() - stored.keys()),
        "missing_in_statement": sorted(stored.keys() - stated.keys()),
        "amount_differences": differences,
        **with_duration,
        "totals": {
            "statement_lines": len(lines),
            "statement_amount": str(sum(stated.values(), Decimal(0))),
            "stored_events": len(stored),
            "stored_amount": str(sum((row.amount for row in stored.values()), Decimal(0))),
            **seconds,
        },
    }


# --- output ---


def disputes_csv(statement: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "finding", "statement", "stored"])
    for key in statement["missing_in_store"]:
        writer.writerow([key, "missing_in_store", "", ""])
    for key in statement["missing_in_statement"]:
        writer.writerow([key, "missing_in_statement", "", ""])
    for row in statement["amount_differences"]:
        writer.writerow([row["id"], "amount_difference", row["statement"], row["stored"]])
    for row in statement.get("duration_differences", []):
        writer.writerow([row["id"], "duration_difference", row["statement"], row["stored"]])
    return out.getvalue()


def render(findings: Findings) -> str:
    by_app: dict[tuple[str, str], dict[str, int]] = {}
    for kind, rows in (
        ("missing CDRs", findings.missing_cdrs),
        ("stuck messages", findings.stuck_messages),
        ("charge differences", findings.charge_differences),
    ):
        for row in rows:
            counts = by_app.setdefault((str(row["tenant"]), str(row["app_id"])), {})
            counts[kind] = counts.get(kind, 0) + 1
    out = []
    for (tenant, app), counts in sorted(by_app.items()):
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items())
        out.append(f"tenant {tenant or '-'} app {app or '-'}: {summary}")
    for row in findings.missing_cdrs:
        out.append(f"  missing CDR      {row['source']} {row['call_key']} answered {row['answered_at']}")
    for row in findings.stuck_messages:
        out.append(f"  stuck message    {row['sid']} {row['to_e164']} {row['last_status']} at {row['last_receipt_at']}")
    for row in findings.charge_differences:
        out.append(
            f"  charge difference {row['id']} rated {row['rated_charge']} vendor {row['vendor_charge']} "
            f"{row['currency']}"
        )
    if not by_app:
        out.append("no missing CDRs, stuck messages or charge differences")
    if findings.statement is not None:
        statement = findings.statement
        totals = statement["totals"]
        out.append(
            f"statement ({statement['source']}, {statement['since']} .. {statement['until']}): "
            f"{totals['statement_lines']} lines, {totals['statement_amount']}; stored {totals['stored_events']}, "
            f"{totals['stored_amount']}"
        )
        out.extend(f"  never stored     {key}" for key in statement["missing_in_store"])
        out.extend(f"  not on statement {key}" for key in statement["missing_in_statement"])
        out.extend(
            f"  amount differs   {row['id']}: statement {row['statement']}, stored {row['stored']}"
            for row in statement["amount_differences"]
        )
        out.extend(
            f"  duration differs {row['id']}: statement {row['statement']} s, stored {row['stored']} s"
            for row in statement.get("duration_differences", [])
        )
    return "\n".join(out)


# --- the command ---


def add_parser(commands: Any, add_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    audit = commands.add_parser(
        "audit",
        help="Missing CDRs, stuck messages, charge differences, and a vendor statement checked (exit 1 on findings).",
    )
    audit.add_argument("--since", default="-30d", help="Start of the period: -30d (default) or an ISO time.")
    audit.add_argument("--until", default="-0s", help="End of the period: now (default), -1d or an ISO time.")
    audit.add_argument("--tenant", default=None, help="Only this tenant.")
    audit.add_argument("--json", dest="as_json", action="store_true", help="Print the findings as JSON.")
    audit.add_argument("--statement", default=None, metavar="FILE.csv", help="A vendor statement to reconcile.")
    audit.add_argument("--source", default=None, metavar="ROUTE", help="The route the statement's events came by.")
    audit.add_argument("--columns", default=None, help="id=COLUMN,time=COLUMN,amount=COLUMN[,duration=COLUMN].")
    audit.add_argument(
        "--time-tolerance-s",
        dest="time_tolerance_s",
        type=float,
        default=DEFAULT_TIME_TOLERANCE_S,
        help="How far past the statement's first and last times stored events still belong to it (default 60).",
    )
    audit.add_argument("--out", default=None, metavar="disputes.csv", help="Write the statement's disputes as CSV.")
    add_flags(audit)


def run(settings: Settings, args: argparse.Namespace, moment: Callable[[str, datetime], datetime]) -> int:
    from ringback.sql import QueryError, run_sql

    def query(sql: str) -> list[dict[str, Any]]:
        out = run_sql(settings, sql + " FORMAT JSONEachRow", "JSONEachRow")
        return [json.loads(line) for line in out.decode().splitlines() if line.strip()]

    now = datetime.now(UTC)
    try:
        since, until = moment(args.since, now), moment(args.until, now)
        findings = assurance(query, since, until, args.tenant)
        if args.statement is not None:
            if not args.source or not args.columns:
                raise AuditError("--statement needs --source ROUTE and --columns id=…,time=…,amount=…")
            if not 0 <= args.time_tolerance_s <= timedelta.max.total_seconds() / 2:
                raise AuditError("--time-tolerance-s must be 0 or positive")
            lines = read_statement(
                Path(args.statement), parse_columns(args.columns), ZoneInfo(settings.source_timezone)
            )
            findings.statement = reconcile_statement(
                query, lines, args.source, timedelta(seconds=args.time_tolerance_s)
            )
            if args.out:
                Path(args.out).write_text(disputes_csv(findings.statement), encoding="utf-8")
    except (AuditError, QueryError, ValueError, OverflowError) as exc:
        print(f"ringback audit: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(findings.as_json(), ensure_ascii=False) if args.as_json else render(findings))
    return 1 if findings.anything else 0

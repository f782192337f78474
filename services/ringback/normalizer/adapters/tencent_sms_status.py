"""Tencent Cloud SMS delivery-status callback (seed 003).

Body: a JSON array of reports ``{user_receive_time, nationcode, mobile, report_status, errmsg,
description, sid}``; one request may carry many reports, each becomes one event.
``user_receive_time`` is China local time. Reply: ``{"result":0,"errmsg":"OK"}``.

Event id: every field the vendor sets and this adapter reads — ``sid``, ``nationcode``, ``mobile``,
``report_status``, ``errmsg``, ``description``, ``user_receive_time``. A ``sid`` names a send, not a
receipt: one send can be reported on more than once (a pending state, then the final one), and the
seed gives a receipt no id of its own. So two receipts that differ in anything they say are two
events, and only a resend of the same receipt shares an id.
"""

from __future__ import annotations

from typing import Any

from ringback.normalizer import status
from ringback.normalizer.adapters import Adapter
from ringback.normalizer.event import Context, as_text, leftover_attributes
from ringback.normalizer.jsonbody import parse_json
from ringback.normalizer.outcome import Event, Outcome, Rejected, Rejection
from ringback.normalizer.phones import to_e164
from ringback.normalizer.times import local_to_utc
from ringback.runtime.raw import RawCallback

SOURCE = "tencent.sms_status"
EVENT_TYPE = "sms.delivery_report"
REQUIRED = ("sid", "mobile")  # and report_status, unless errmsg is a receipt state that says it alone
MAPPED = frozenset({"user_receive_time", "mobile", "report_status", "errmsg", "description", "sid"})

REPORT_STATUS = {"SUCCESS": status.DELIVERED, "FAIL": status.FAILED}
# The carrier's receipt state that Tencent passes through `errmsg` (CMPP/SMPP states).
RECEIPT_STATE = {
    "DELIVRD": status.DELIVERED,
    "ACCEPTD": status.PENDING,
    "ENROUTE": status.PENDING,
    "EXPIRED": status.FAILED,
    "UNDELIV": status.FAILED,
    "REJECTD": status.FAILED,
    "DELETED": status.FAILED,
    "NOROUTE": status.FAILED,
}
RECEIPT_STATE["UNDELIVRD"] = status.FAILED  # Tencent's own 9-letter spelling
# Gateway-, carrier- and platform-specific failure codes from Tencent's receipt code table, e.g.
# "MK:0001", "MN:0017", "MI:0013", "MA:0051" (China Mobile), "MX:0003"/"TE:0014"/"TD:0004" (platform),
# blacklists ("BWLIST_006", "HIGRISK", "TUIDING"), and Telecom's suffixed states ("UNDELIV_601").
GATEWAY_FAILURE_PREFIXES = (
    "MK:",
    "MN:",
    "MI:",
    "MA:",
    "MB:",
    "MC:",
    "MK0",
    "MI0",
    "CA:",
    "CB:",
    "DA:",
    "DB:",
    "IA:",
    "IB:",
    "IC:",
    "ID:",
    "MX:",
    "TE:",
    "TD:",
    "TC:",
    "TA:",
    "HD:",
    "XL:",
    "LT:",
    "SME",
    "SGIP",
    "BWLIST",
    "HIGRISK",
    "TUIDING",
    "W-BLACK",
    "MOBILE BLACK",
    "UNDELIV_",
    "EXPIRED_",
    "REJECTD_",
)


def canonical_status(report_status: str, errmsg: str | None) -> str:
    """`report_status` decides; `errmsg` fills in when it is missing; a contradiction is `unknown`."""
    by_report = REPORT_STATUS.get(report_status.strip().upper())
    code = (errmsg or "").strip().upper()
    by_receipt = RECEIPT_STATE.get(code)
    if by_receipt is None and code.startswith(GATEWAY_FAILURE_PREFIXES):
        by_receipt = status.FAILED
    if by_report is None:
        return by_receipt or status.UNKNOWN
    if by_receipt is None or by_receipt == by_report:
        return by_report
    if by_report == status.FAILED and by_receipt == status.PENDING:
        return status.FAILED  # the platform gave up on a message the carrier still had in transit
    return status.UNKNOWN


def normalize(raw: RawCallback, ctx: Context) -> list[Outcome]:
    parsed = parse_json(raw.body)
    body = parsed.value
    lone = isinstance(body, dict)
    if lone:
        body = [body]  # a lone report object instead of an array: unambiguous, accepted as one report
    if not isinstance(body, list):
        raise Rejected("unexpected_shape", f"expected a JSON array of reports, got {type(body).__name__}")
    if not body:
        raise Rejected("no_reports", "the report array is empty")
    outcomes: list[Outcome] = []
    for index, report in enumerate(body):
        try:
            parsed.require_unambiguous(() if lone else (index,))
            event = _report_event(raw, ctx, index, report)
            event["repairs"] = [*parsed.repairs, *event["repairs"]]
            outcomes.append(event)
        except Rejected as rejected:
            outcomes.append(Rejection.of(rejected, index, report))
    return outcomes


def _report_event(raw: RawCallback, ctx: Context, index: int, report: Any) -> Event:
    if not isinstance(report, dict):
        raise Rejected("unexpected_shape", f"report {index} is {type(report).__name__}, not an object")
    missing = [name for name in REQUIRED if as_text(report.get(name)) in (None, "")]
    if missing:
        raise Rejected("missing_field", f"report {index} lacks {', '.join(missing)}")

    sid = as_text(report["sid"])
    mobile = as_text(report["mobile"])
    nationcode = as_text(report.get("nationcode"))
    report_status = as_text(report.get("report_status")) or ""
    errmsg = as_text(report.get("errmsg"))
    if not report_status and (errmsg or "").strip().upper() not in RECEIPT_STATE:
        raise Rejected(
            "missing_field",
            f"report {index} lacks report_status, and errmsg {errmsg!r} is no receipt state to read instead",
        )
    description = as_text(report.get("description"))
    receive_text = as_text(report.get("user_receive_time"))
    repairs: list[str] = []
    received_by_user = local_to_utc(receive_text, ctx.source_timezone, "user_receive_time", repairs)

    event = ctx.new_event(
        raw,
        source=SOURCE,
        event_type=EVENT_TYPE,
        identity={
            "sid": sid,
            "nationcode": nationcode,
            "mobile": mobile,
            "report_status": report_status,
            "errmsg": errmsg,
            "description": description,
            "user_receive_time": receive_text,
        },
        report_index=index,
        status=canonical_status(report_status, errmsg),
    )
    event.update(
        {
            "occurred_at": received_by_user,
            "sid": sid,
            "to_number": mobile,
            "to_e164": to_e164(mobile, nationcode),
            "vendor_status": report_status,
            "vendor_code": errmsg,
            "vendor_description": description,
            "attributes": leftover_attributes(report, MAPPED),
            "repairs": repairs,
        }
    )
    return event


ADAPTERS = [Adapter(route="tencent/sms-status", source=SOURCE, normalize=normalize)]

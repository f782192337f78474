"""Callbacks with known prices for the billing tests: SMS receipts, CDR-platform calls and their state
pushes, click-to-call calls, sent to a running pipeline (resent too, as vendors do)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.pipeline import Pipeline, post, sql_rows

SMS_ROUTE = "/callbacks/tencent/sms-status"
CDR_ROUTE = "/callbacks/cdr-push"
STATUS_ROUTE = "/callbacks/callback-call/status"
VOICE_CODE_ROUTE = "/callbacks/tencent/voicecode"
HANGUP_ROUTE = "/callbacks/callback-call/hangup"
IN_TRANSIT = ("ENROUTE", "ACCEPTD")


def sms_receipt(sid: str, mobile: str, code: str, at: str) -> bytes:
    """A Tencent receipt; ``at`` is China time (YYYY-MM-DD HH:MM:SS)."""
    report = {
        "user_receive_time": at,
        "nationcode": "86",
        "mobile": mobile,
        "report_status": "SUCCESS" if code == "DELIVRD" else "FAIL",
        "errmsg": code,
        "description": code,
        "sid": sid,
    }
    if code in IN_TRANSIT:
        del report["report_status"]  # the receipt state says it alone
    return json.dumps([report]).encode()


def two_way_cdr(request_id: str, app_id: str, answered: str, seconds: int, amount: Decimal | None) -> bytes:
    """A CDR-platform two-way-call CDR (fid 4); times are China time, ``answered`` the callee's answer."""
    entry: dict[str, Any] = {
        "requestid": request_id,
        "appid": app_id,
        "fid": "4",
        "caller": "13810603954",
        "called": "18810207016",
        "callerstime": answered + ".000",
        "calledstime": answered + ".000",
        "calleretime": answered + ".000",
        "calledetime": answered + ".000",
        "tapesurl": "NoTapes",
        "duration": str(seconds),
        "stateDesc": "正常",
    }
    if amount is not None:
        entry["oriamount"] = str(amount)
    return json.dumps({"cdr": [entry]}).encode()


def call_state(request_id: str, state: str, at: str) -> bytes:
    """A CDR-platform state push (callout / alerting / answer / disconnect); ``at`` is China time."""
    return json.dumps(
        {"requestid": request_id, "state": state, "timestamp": at, "src": "13810603954", "dsc": "18810207016"}
    ).encode()


def send(pipeline: Pipeline, route: str, body: bytes, copies: int = 2) -> None:
    """Post ``body`` ``copies`` times (a vendor resending); every copy must be acknowledged."""
    for _ in range(copies):
        status, reply = post(pipeline.edge_url + route, body)
        assert status == 200, (status, reply)


def write_card(path: Path, *lines: dict[str, Any]) -> None:
    def value(item: Any) -> str:
        return str(item) if isinstance(item, int) else json.dumps(item)

    text = "".join("[[rates]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in line.items()) for line in lines)
    path.write_text(text, encoding="utf-8")


def rows(data_dir: Path, query: str) -> list[dict[str, Any]]:
    return sql_rows(data_dir, query)


def voice_code_cdr(request_id: str, app_id: str, answered: str, seconds: int, amount: Decimal) -> bytes:
    """A CDR-platform voice-code CDR (fid 2): priced by no line of the test cards, so its charge is the vendor's."""
    entry = {
        "requestid": request_id,
        "appid": app_id,
        "fid": "2",
        "tel": "13810603954",
        "stime": answered + ".000",
        "etime": answered + ".000",
        "duration": str(seconds),
        "oriamount": str(amount),
    }
    return json.dumps({"cdr": [entry]}).encode()


def click_to_call_status(call_id: str, status: int, at_unix: int) -> bytes:
    """A click-to-call status push: ``status`` is the vendor's bit (1024: the callee answered)."""
    push = {"callId": call_id, "src": "008613631686024", "dst": "008613800138000", "status": str(status)}
    return json.dumps([{**push, "timestamp": str(at_unix)}]).encode()


def click_to_call_hangup(call_id: str, answered_unix: int, seconds: int) -> bytes:
    """A click-to-call hang-up record of a call the callee answered at ``answered_unix``."""
    record = {
        "CallId": call_id,
        "Src": "008613631686024",
        "Dst": "008613800138000",
        "StartSrcCallTime": str(answered_unix - 9),
        "DstAcceptTime": str(answered_unix),
        "EndCallTime": str(answered_unix + seconds),
        "CallEndStatus": "1",
        "Duration": str(seconds),
    }
    return json.dumps(record).encode()


def tencent_voice_code(call_id: str, answered_unix: int, seconds: int, fee_minutes: int) -> bytes:
    """A Tencent voice-code status push: the vendor bills ``fee_minutes`` (no duration of its own)."""
    push = {
        "result": "0",
        "accept_time": str(answered_unix),
        "call_from": "075583763333",
        "callid": call_id,
        "end_calltime": str(answered_unix + seconds),
        "fee": str(fee_minutes),
        "mobile": "13800138000",
        "nationcode": "86",
        "start_calltime": str(answered_unix - 5),
    }
    return json.dumps({"voicecode_callback": push}).encode()

"""Tencent click-to-call ("回拨", seed 004): pushes to ``statusUrl``, ``hangupUrl``, ``recordUrl``, ``keyPressUrl``.

Seed 004 defines the request that starts a call, not the bodies the platform pushes back. What is
known of them comes from the same API in its newer form (Number Protection ``CreateCallBack``;
``CallBackCdr``, ``DescribeCallBackStatus``), so the accepted shapes are defined here and in
docs/vendors.md. Every body is a JSON object, or an array of them (one event each). Field names are matched
case-insensitively (``callId`` / ``CallId``), each field has the alternatives listed below, and every
field not listed is kept in the event's ``attributes``. Times may be unix seconds, unix milliseconds
or local ``YYYY-MM-DD HH:MM:SS`` (source time zone).

- status: ``callId``; ``callStatus`` as published for this push (invite, ringing, answered, refused,
  disaccept = normal hang-up, failed) with ``userFlag`` (src = caller leg, dst = callee leg) and an
  optional SIP ``errorCode``; or ``callStatus`` as a number (0 unknown, 1 caller ringing, 2 caller
  answered, 3 callee ringing, 4 in conversation, 5 ended); or ``status`` holding one ``statusFlag`` bit
  (1/256 call started, 2/512 ringing, 4/1024 answered, 8/2048 rejected, 16/4096 normal hang-up,
  32/8192 call error; low byte caller leg, high byte callee leg); ``src``, ``dst``, ``timeStamp``.
- hangup (the CDR): ``callId``, ``src``, ``dst``, ``startSrcCallTime``, ``startSrcRingTime``,
  ``srcAcceptTime``, ``startDstCallTime``, ``startDstRingTime``, ``dstAcceptTime``, ``endCallTime``,
  ``callEndStatus`` (0 unknown, 1 normal call, 2 caller did not answer, 3 callee did not answer,
  4 caller unreachable, 5 callee unreachable), ``duration`` (billed seconds), ``recordUrl``.
- record: ``callId``, ``recordUrl`` (``ringRecoResult`` stays in attributes).
- keypress: ``callId``, ``key`` / ``keyPress`` / ``digits``, ``phone`` (who pressed), ``timeStamp``.
Common to all: ``appId``, ``requestId`` (echoed from the request); ``callType``, ``bizId``, ``orderId``
stay in attributes. Reply: an empty HTTP 200.

Event ids (``callId`` is the platform's id of one call; each push kind adds what tells its pushes
apart within the call):

- status: ``callId``, the status as sent (``status``/``statusFlag`` bit or ``callStatus`` — kept
  apart, since ``"4"`` means one thing as a bit and another as a call status), the leg
  (``userFlag``), ``timeStamp``, ``errorCode``: each state of each leg is an event.
- hangup: ``callId`` and ``appId`` — one CDR per call; ``duration`` is billing, not identity, so a
  resend with another duration keeps the id (a conflict, not a second call).
- record: ``callId``, ``recordUrl`` — a call may be recorded more than once.
- keypress: ``callId``, the key(s), ``timeStamp``, ``phone`` — who pressed what when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ringback.normalizer import status
from ringback.normalizer.adapters import Adapter
from ringback.normalizer.digits import ascii_digits
from ringback.normalizer.event import Context
from ringback.normalizer.fields import Fields
from ringback.normalizer.jsonbody import parse_json
from ringback.normalizer.outcome import Event, Outcome, Rejected, Rejection
from ringback.normalizer.phones import to_e164
from ringback.runtime.raw import RawCallback

SOURCE = "callback_call"
CALLER, CALLEE = "caller", "callee"
CALLEE_SHIFT = 8  # statusFlag: the callee leg's bits are the caller's shifted by one byte
STATUS_FLAG_MAX_DIGITS = 5  # 16191, every bit of both legs; longer text is no flag (and int() of it is costly)

# statusFlag bit (caller leg) -> canonical state; the callee leg uses the same bit << 8.
STATUS_BITS = {
    1: status.INITIATED,
    2: status.RINGING,
    4: status.ANSWERED,
    8: status.REJECTED,
    16: status.ENDED,
    32: status.CALL_FAILED,
}
# The status push's `callStatus` words; `userFlag` says whose leg (src = caller, dst = callee).
CALL_STATUS_WORD = {
    "invite": status.INITIATED,
    "ringing": status.RINGING,
    "answered": status.ANSWERED,
    "refused": status.REJECTED,
    "disaccept": status.ENDED,  # normal hang-up
    "failed": status.CALL_FAILED,
}
USER_FLAG = {"src": CALLER, "dst": CALLEE}
CALL_STATUS = {
    "0": (None, status.UNKNOWN),
    "1": (CALLER, status.RINGING),
    "2": (CALLER, status.ANSWERED),
    "3": (CALLEE, status.RINGING),
    "4": (None, status.IN_PROGRESS),
    "5": (None, status.ENDED),
}
CALL_END_STATUS = {
    "0": (None, status.UNKNOWN),
    "1": (None, status.ANSWERED),
    "2": (CALLER, status.NO_ANSWER),
    "3": (CALLEE, status.NO_ANSWER),
    "4": (CALLER, status.UNREACHABLE),
    "5": (CALLEE, status.UNREACHABLE),
}
CALL_ID = ("callId", "call_id")
REQUEST_ID = ("requestId", "request_id")
SRC = ("src", "caller")
DST = ("dst", "called", "callee")
AT = ("timeStamp", "timestamp", "time", "eventTime")
STATUS_FLAG = ("status", "statusFlag", "state")


def status_flag_state(value: str | None) -> tuple[str | None, str]:
    """(leg, canonical state) for one statusFlag bit; anything else is (None, unknown)."""
    if not value or len(value) > STATUS_FLAG_MAX_DIGITS or not ascii_digits(value):
        return None, status.UNKNOWN
    bit = int(value)
    if bit in STATUS_BITS:
        return CALLER, STATUS_BITS[bit]
    if bit & 0xFF == 0 and (bit >> CALLEE_SHIFT) in STATUS_BITS:
        return CALLEE, STATUS_BITS[bit >> CALLEE_SHIFT]
    return None, status.UNKNOWN


def _add_parties(event: Event, read: Fields) -> None:
    src, dst = read.text(*SRC), read.text(*DST)
    event.update(
        {
            "from_number": src,
            "from_e164": to_e164(src),
            "to_number": dst,
            "to_e164": to_e164(dst),
            "app_id": read.text("appId"),
        }
    )


def _call_id(read: Fields) -> str:
    call_id = read.text(*CALL_ID)
    if not call_id:
        raise Rejected("missing_field", "callId is missing")
    return call_id


def status_event(raw: RawCallback, ctx: Context, read: Fields, index: int) -> Event:
    call_id = _call_id(read)
    flag_key = read.key(*STATUS_FLAG)
    call_status = None
    if flag_key is not None:
        vendor_status = read.text(flag_key)
        leg, state = status_flag_state(vendor_status)
    else:
        vendor_status = call_status = read.text("callStatus")
        if vendor_status is None:
            raise Rejected("missing_field", "neither status (statusFlag bit) nor callStatus is present")
        if ascii_digits(vendor_status):
            leg, state = CALL_STATUS.get(vendor_status, (None, status.UNKNOWN))
        else:
            leg, state = (
                USER_FLAG.get((read.text("userFlag") or "").lower()),
                CALL_STATUS_WORD.get(vendor_status.lower(), status.UNKNOWN),
            )
    identity = {
        "callId": call_id,
        "statusFlag": vendor_status if call_status is None else None,
        "callStatus": call_status,
        "userFlag": read.peek("userFlag"),
        "timeStamp": read.peek(*AT),
        "errorCode": read.peek("errorCode"),
    }
    event = ctx.new_event(
        raw, source=SOURCE, event_type="call.state", identity=identity, report_index=index, status=state
    )
    event.update(
        {
            "call_id": call_id,
            "request_id": read.text(*REQUEST_ID),
            "leg": leg,
            "vendor_status": vendor_status,
            "vendor_code": read.text("errorCode"),
            "occurred_at": read.any_time(*AT),
        }
    )
    _add_parties(event, read)
    return event


def hangup_event(raw: RawCallback, ctx: Context, read: Fields, index: int) -> Event:
    call_id = _call_id(read)
    end_status = read.text("callEndStatus", "endStatus")
    leg, state = CALL_END_STATUS.get(end_status or "", (None, status.UNKNOWN))
    times = {
        "caller_started_at": read.any_time("startSrcCallTime"),
        "caller_ringing_at": read.any_time("startSrcRingTime"),
        "caller_answered_at": read.any_time("srcAcceptTime"),
        "callee_started_at": read.any_time("startDstCallTime"),
        "callee_ringing_at": read.any_time("startDstRingTime"),
        "callee_answered_at": read.any_time("dstAcceptTime"),
        "ended_at": read.any_time("endCallTime"),
    }
    identity = {"callId": call_id, "appId": read.peek("appId")}
    event = ctx.new_event(
        raw, source=SOURCE, event_type="call.cdr", identity=identity, report_index=index, status=state
    )
    event.update(
        {
            "call_id": call_id,
            "request_id": read.text(*REQUEST_ID),
            "leg": leg,
            "vendor_status": end_status,
            "caller_started_at": times["caller_started_at"],
            "caller_ringing_at": times["caller_ringing_at"],
            "caller_answered_at": times["caller_answered_at"],
            "callee_started_at": times["callee_started_at"],
            "callee_ringing_at": times["callee_ringing_at"],
            "callee_answered_at": times["callee_answered_at"],
            "ended_at": times["ended_at"],
            "started_at": times["caller_started_at"],
            "answered_at": times["callee_answered_at"],
            "occurred_at": times["ended_at"] or times["caller_started_at"],
            "duration_s": read.count("duration"),
            "recording_url": read.text("recordUrl") or None,
        }
    )
    _add_parties(event, read)
    return event


def record_event(raw: RawCallback, ctx: Context, read: Fields, index: int) -> Event:
    call_id = _call_id(read)
    url = read.text("recordUrl", "url", "recordingUrl")
    identity = {"callId": call_id, "recordUrl": url}
    event = ctx.new_event(
        raw,
        source=SOURCE,
        event_type="call.recording",
        identity=identity,
        report_index=index,
        status=status.RECORDED if url else status.UNKNOWN,
    )
    event.update(
        {
            "call_id": call_id,
            "request_id": read.text(*REQUEST_ID),
            "recording_url": url or None,
            "occurred_at": read.any_time(*AT),
        }
    )
    _add_parties(event, read)
    return event


def keypress_event(raw: RawCallback, ctx: Context, read: Fields, index: int) -> Event:
    call_id = _call_id(read)
    digits = read.text("key", "keyPress", "digits", "keys")
    if not digits:
        raise Rejected("missing_field", "no key (key / keyPress / digits) in the key-press push")
    phone = read.text("phone")
    identity = {"callId": call_id, "key": digits, "timeStamp": read.peek(*AT), "phone": phone}
    event = ctx.new_event(
        raw,
        source=SOURCE,
        event_type="call.key_press",
        identity=identity,
        report_index=index,
        status=status.KEY_PRESSED,
    )
    event.update(
        {
            "call_id": call_id,
            "request_id": read.text(*REQUEST_ID),
            "key_digits": digits,
            "occurred_at": read.any_time(*AT),
        }
    )
    _add_parties(event, read)
    if phone:  # the party who pressed the key
        event.update({"from_number": phone, "from_e164": to_e164(phone)})
    return event


@dataclass(frozen=True)
class PushKind:
    name: str
    build: Callable[[RawCallback, Context, Fields, int], Event]

    def normalize(self, raw: RawCallback, ctx: Context) -> list[Outcome]:
        parsed = parse_json(raw.body)
        body = parsed.value
        lone = not isinstance(body, list)
        reports = [body] if lone else body
        if not reports:
            raise Rejected("no_reports", "the array is empty")
        outcomes: list[Outcome] = []
        for index, report in enumerate(reports):
            try:
                parsed.require_unambiguous(() if lone else (index,))
                if not isinstance(report, dict):
                    raise Rejected(
                        "unexpected_shape", f"{self.name} push {index} is {type(report).__name__}, not an object"
                    )
                read = Fields(report, ctx.source_timezone, parsed.repairs)
                event = self.build(raw, ctx, read, index)
                event["attributes"] = read.attributes()
                event["repairs"] = read.repairs
                outcomes.append(event)
            except Rejected as rejected:
                outcomes.append(Rejection.of(rejected, index, report))
        return outcomes


KINDS = (
    PushKind("status", status_event),
    PushKind("hangup", hangup_event),
    PushKind("record", record_event),
    PushKind("keypress", keypress_event),
)

ADAPTERS = [Adapter(route=f"callback-call/{kind.name}", source=SOURCE, normalize=kind.normalize) for kind in KINDS]

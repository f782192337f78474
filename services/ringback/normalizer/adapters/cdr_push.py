"""CPaaS CDR push platform, "话单回调" (seed 002): CDRs and two-way-call state pushes on one address.

Bodies:
- ``{"cdr": [...]}``: one event per entry; ``fid`` 2 voice-code CDR, 4 two-way-call CDR (per-leg
  times, ``stateDesc`` outcome, recording ``tapesurl`` or ``NoTapes``, ``customParm``), 5 conference CDR
  (``confid``, ``singleoriamount``). Money is yuan as text; times are local ``YYYY-MM-DD HH:MM:SS.fff``.
- a bare object with ``state`` (callout / alerting / answer / disconnect): one call-state event.

The platform retries only when it gets HTTP 500, at most three sends in all, so resends are normal.
Event ids, per kind (``requestid`` is documented as the CDR's unique id, but it has been seen reused
under another ``appid``, so it never stands alone):

- ``fid`` 2, voice code: ``fid``, ``requestid``, ``appid``, ``tel``.
- ``fid`` 4, two-way call: ``fid``, ``requestid``, ``appid``, ``caller``, ``called`` — the parties
  keep two calls apart should a ``requestid`` repeat even within an app.
- ``fid`` 5, conference: ``fid``, ``requestid``, ``appid``, ``confid``, ``tel``, and the leg's own
  ``stime`` and ``etime``: one CDR per participant leg, and a participant who joins twice has two.
- state push: ``requestid``, ``state``, ``timestamp``, ``src``, ``dsc`` — one event per state change.

Billing values (``duration``, ``oriamount``, ``singleoriamount``) and the outcome (``stateDesc``) are
not identity: a resend that differs in them keeps the id, and the difference is a conflict to flag,
not a second call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ringback.normalizer import status
from ringback.normalizer.adapters import Adapter
from ringback.normalizer.amounts import CNY
from ringback.normalizer.event import Context, as_text
from ringback.normalizer.fields import Fields
from ringback.normalizer.jsonbody import parse_json
from ringback.normalizer.outcome import Event, Outcome, Rejected, Rejection
from ringback.normalizer.phones import to_e164
from ringback.runtime.raw import RawCallback

SOURCE = "cdr_push"
NO_RECORDING = "NoTapes"
STATE_DESC_SEPARATOR = "|"

# Every `stateDesc` value the platform documents ("通话结果识别").
STATE_DESC = {
    "正常": status.ANSWERED,  # normal
    "应答": status.ANSWERED,  # answered
    "正在处理中": status.IN_PROGRESS,  # being processed
    "振铃": status.RINGING,  # ringing
    "未应答": status.NO_ANSWER,  # not answered
    "无人接听": status.NO_ANSWER,  # nobody answered
    "关机": status.UNREACHABLE,  # phone powered off
    "停机": status.UNREACHABLE,  # line suspended
    "暂停服务": status.UNREACHABLE,  # service suspended
    "无法拨通": status.UNREACHABLE,  # cannot be reached
    "无法接听": status.UNREACHABLE,  # unable to answer
    "欠费": status.UNREACHABLE,  # account in arrears
    "来电提醒": status.UNREACHABLE,  # network's missed-call reminder took the call
    "空号": status.INVALID_NUMBER,  # vacant number
    "改号": status.INVALID_NUMBER,  # number changed
    "拨号方式不正确": status.INVALID_NUMBER,  # wrongly dialled
    "正在通话中": status.BUSY,  # already in a call
    "用户正忙": status.BUSY,  # user busy
    "用户拒接": status.REJECTED,  # declined
    "呼入限制": status.REJECTED,  # incoming calls barred
    "呼叫转移失败": status.CALL_FAILED,  # call forwarding failed
    "网络忙": status.CALL_FAILED,  # network busy
    "线路故障": status.CALL_FAILED,  # line fault
    "稍后再拨": status.CALL_FAILED,  # "please dial later"
}

CALL_STATE = {
    "callout": status.INITIATED,
    "alerting": status.RINGING,
    "answer": status.ANSWERED,
    "disconnect": status.ENDED,
}


def state_desc_status(text: str | None) -> str:
    """Map ``stateDesc``; combined values such as ``应答|正常`` must agree, else ``unknown``."""
    parts = [part.strip() for part in (text or "").split(STATE_DESC_SEPARATOR) if part.strip()]
    found = {STATE_DESC.get(part, status.UNKNOWN) for part in parts}
    return found.pop() if len(found) == 1 else status.UNKNOWN


def _new(
    raw: RawCallback, ctx: Context, event_type: str, read: Fields, identity: tuple[str, ...], index: int, state: str
) -> Event:
    """An event whose id is made of the report's ``identity`` fields, as the vendor wrote them."""
    fields = {name: read.peek(name) for name in identity}
    return ctx.new_event(raw, source=SOURCE, event_type=event_type, identity=fields, report_index=index, status=state)


def _recording(read: Fields) -> str | None:
    key = read.key("tapesurl")
    url = (as_text(read.report.get(key)) or "").strip() if key else ""
    if url and url != NO_RECORDING:
        return read.text("tapesurl")
    return None  # "NoTapes" (or nothing) stays in attributes as the vendor sent it


def _add_charge(event: Event, read: Fields, name: str) -> None:
    charge = read.amount(name)
    event.update({"charge": charge, "currency": CNY if charge is not None else None})


VOICE_CODE_IDENTITY = ("fid", "requestid", "appid", "tel")
TWO_WAY_CALL_IDENTITY = ("fid", "requestid", "appid", "caller", "called")
CONFERENCE_IDENTITY = ("fid", "requestid", "appid", "confid", "tel", "stime", "etime")
STATE_IDENTITY = ("requestid", "state", "timestamp", "src", "dsc")


def _single_party_cdr(
    raw: RawCallback,
    ctx: Context,
    read: Fields,
    index: int,
    event_type: str,
    amount_field: str,
    identity: tuple[str, ...],
) -> Event:
    """What the voice-code (fid 2) and conference (fid 5) CDRs share: one party (`tel`), answer and end
    times, a duration and a charge; no outcome field, so an answer time means answered."""
    request_id, tel = read.text("requestid"), read.text("tel")
    answered, ended = read.local_time("stime"), read.local_time("etime")
    event = _new(raw, ctx, event_type, read, identity, index, status.ANSWERED if answered else status.UNKNOWN)
    event.update(
        {
            "request_id": request_id,
            "app_id": read.text("appid"),
            "to_number": tel,
            "to_e164": to_e164(tel),
            "answered_at": answered,
            "ended_at": ended,
            "occurred_at": ended or answered,
            "duration_s": read.count("duration"),
        }
    )
    _add_charge(event, read, amount_field)
    return event


def voice_code_cdr(raw: RawCallback, ctx: Context, read: Fields, index: int) -> Event:
    return _single_party_cdr(raw, ctx, read, index, "voice.code_cdr", "oriamount", VOICE_CODE_IDENTITY)


def two_way_call_cdr(raw: RawCallback, ctx: Context, read: Fields, index: int) -> Event:
    request_id = read.text("requestid")
    caller, called = read.text("caller"), read.text("called")
    state_desc = read.text("stateDesc")
    legs = {
        "caller_answered_at": read.local_time("callerstime"),
        "caller_ended_at": read.local_time("calleretime"),
        "callee_answered_at": read.local_time("calledstime"),
        "callee_ended_at": read.local_time("calledetime"),
    }
    ends = [t for t in (legs["caller_ended_at"], legs["callee_ended_at"]) if t]
    ended = max(ends) if ends else None
    event = _new(raw, ctx, "call.cdr", read, TWO_WAY_CALL_IDENTITY, index, state_desc_status(state_desc))
    event.update(
        {
            "request_id": request_id,
            "app_id": read.text("appid"),
            "from_number": caller,
            "from_e164": to_e164(caller),
            "to_number": called,
            "to_e164": to_e164(called),
            "caller_answered_at": legs["caller_answered_at"],
            "caller_ended_at": legs["caller_ended_at"],
            "callee_answered_at": legs["callee_answered_at"],
            "callee_ended_at": legs["callee_ended_at"],
            # What every call source means by these: the call began when the platform reached the caller,
            # connected when the callee answered, ended when the last leg hung up.
            "started_at": legs["caller_answered_at"],
            "answered_at": legs["callee_answered_at"],
            "ended_at": ended,
            "occurred_at": ended or legs["caller_answered_at"],
            "vendor_status": state_desc,
            "recording_url": _recording(read),
            "custom_param": read.text("customParm"),
            "duration_s": read.count("duration"),
        }
    )
    _add_charge(event, read, "oriamount")
    return event


def conference_cdr(raw: RawCallback, ctx: Context, read: Fields, index: int) -> Event:
    event = _single_party_cdr(raw, ctx, read, index, "conference.cdr", "singleoriamount", CONFERENCE_IDENTITY)
    event.update(
        {
            "conference_id": read.text("confid"),
            "recording_url": _recording(read),
            "custom_param": read.text("customParm"),
        }
    )
    return event


CDR_KINDS: dict[str, Callable[[RawCallback, Context, Fields, int], Event]] = {
    "2": voice_code_cdr,
    "4": two_way_call_cdr,
    "5": conference_cdr,
}


def call_state(raw: RawCallback, ctx: Context, read: Fields) -> Event:
    request_id, state = read.text("requestid"), read.text("state") or ""
    src, dsc = read.text("src"), read.text("dsc")
    at = read.local_time("timestamp")
    event = _new(raw, ctx, "call.state", read, STATE_IDENTITY, 0, CALL_STATE.get(state.lower(), status.UNKNOWN))
    event.update(
        {
            "request_id": request_id,
            "from_number": src,
            "from_e164": to_e164(src),
            "to_number": dsc,
            "to_e164": to_e164(dsc),
            "occurred_at": at,
            "vendor_status": state,
        }
    )
    return event


def _finish(event: Event, read: Fields) -> Event:
    event["attributes"] = read.attributes()
    event["repairs"] = list(read.repairs)
    return event


def normalize(raw: RawCallback, ctx: Context) -> list[Outcome]:
    parsed = parse_json(raw.body, exact_numbers=True)  # real traffic sends "oriamount": 2.94 as a number
    body = parsed.value
    if not isinstance(body, dict):
        raise Rejected("unexpected_shape", f'expected {{"cdr":[...]}} or a state object, got {type(body).__name__}')
    if "cdr" not in body:
        if "state" not in body:
            raise Rejected("unexpected_shape", 'neither a "cdr" array nor a call-state object (no "state")')
        parsed.require_unambiguous()  # the state object is the one report
        read = Fields(body, ctx.source_timezone, parsed.repairs)
        if not read.text("requestid"):
            raise Rejected("missing_field", "state push lacks requestid").carrying(body)
        try:
            return [_finish(call_state(raw, ctx, read), read)]
        except Rejected as rejected:
            raise rejected.carrying(body) from None
    parsed.require_unambiguous_outside(("cdr",))  # e.g. two "cdr" arrays: which one?
    entries = body["cdr"]
    lone = isinstance(entries, dict)
    if lone:
        entries = [entries]  # a lone CDR object instead of an array: unambiguous
    if not isinstance(entries, list) or not entries:
        raise Rejected("unexpected_shape", '"cdr" must be a non-empty array of CDR objects')
    outcomes: list[Outcome] = []
    for index, entry in enumerate(entries):
        try:
            parsed.require_unambiguous(("cdr",) if lone else ("cdr", index))
            outcomes.append(_cdr_event(raw, ctx, entry, index, parsed.repairs))
        except Rejected as rejected:
            outcomes.append(Rejection.of(rejected, index, entry))
    return outcomes


def _cdr_event(raw: RawCallback, ctx: Context, entry: Any, index: int, body_repairs: list[str]) -> Event:
    if not isinstance(entry, dict):
        raise Rejected("unexpected_shape", f"cdr[{index}] is {type(entry).__name__}, not an object")
    read = Fields(entry, ctx.source_timezone, body_repairs)
    fid = (as_text(entry.get(read.key("fid") or "fid")) or "").strip()  # stays in attributes: which CDR kind this is
    kind = CDR_KINDS.get(fid)
    if kind is None:
        raise Rejected(
            "unsupported_fid", f"cdr[{index}] has fid {fid!r}; known: 2 (voice code), 4 (two-way call), 5 (conference)"
        )
    if not read.text("requestid"):
        raise Rejected("missing_field", f"cdr[{index}] lacks requestid")
    return _finish(kind(raw, ctx, read, index), read)


ADAPTERS = [Adapter(route="cdr-push", source=SOURCE, normalize=normalize)]

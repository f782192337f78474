"""Tencent Cloud voice pushes: every body Tencent sends to an application's voice callback URL.

Tencent pushes all voice callbacks of an application to one URL, so both voice routes
(``tencent/voicecode``, ``tencent/voiceprompt``) read all four bodies, told apart by the top-level key
that wraps the report. One event per request; reply ``{"result":0,"errmsg":"OK"}``.

- ``voicecode_callback`` (seed 000) and ``voiceprompt_callback`` (seed 001): the call's status —
  ``result`` ("0" answered, "1" not answered, "2" call error), unix-second times as strings
  (``start_calltime``, ``accept_time``, ``end_calltime``) and ``fee`` in billable minutes. The vendor
  gives no call duration, so ``duration_s`` stays empty rather than being derived.
- ``voicekey_callback``: the keys the callee pressed during a voice prompt (``keypress``).
- ``voice_failure_callback``: a call that could not be placed — ``failure_code``, a JSON number of the
  vendor's "推送回执相关错误码" table (``FAILURE_STATUS``; a string of ASCII digits is read too, anything
  else is ``invalid_code``), and ``failure_reason``, the code's Chinese text.

All four carry ``callid``, the callee's ``mobile`` with ``nationcode``, and ``call_from``, the number
the callee sees (may be ``""``). Every top-level key ending in ``_callback`` is a wrapper: a body with
none, with two, or with one this module does not know is dead-lettered as ``unexpected_shape``, naming
the keys found. Other top-level keys and every field not read stay in ``attributes``.

The source is the body's format, not the route: a key press is ``tencent.voicekey`` whichever voice URL
it came to, so no event id depends on which of the two URLs an application was given.

Event ids: ``callid`` (one call) and ``mobile`` with ``nationcode`` (to whom) in every body, plus

- status: ``result`` and the call times ``start_calltime``, ``accept_time``, ``end_calltime``: what the
  vendor says happened, and when. ``fee`` is billing, not identity: a resend with another fee keeps the
  id (a conflict for whoever reconciles billing, not a second call); ``call_from`` is the number shown,
  not the call.
- key press: ``keypress``. The push carries no time, so the same keys pressed again in the same call
  cannot be told from a resend: they are one event.
- call failure: ``failure_code`` as a number (``8`` and ``"8"`` are one); ``failure_reason`` is the
  code's text, not identity.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from ringback.normalizer import status
from ringback.normalizer.adapters import Adapter
from ringback.normalizer.amounts import whole_number
from ringback.normalizer.digits import ascii_digits
from ringback.normalizer.event import Context, as_text, leftover_attributes
from ringback.normalizer.jsonbody import parse_json
from ringback.normalizer.outcome import Event, Outcome, Rejected
from ringback.normalizer.phones import to_e164
from ringback.normalizer.times import unix_seconds_to_utc
from ringback.runtime.raw import RawCallback

WRAPPER_SUFFIX = "_callback"
MAX_KEYS_NAMED = 8  # a dead letter names the first keys of a body, not every key of a hostile one

RESULT = {"0": status.ANSWERED, "1": status.NO_ANSWER, "2": status.CALL_FAILED}
RESULT_DESCRIPTION = {"0": "用户正常接听 (answered)", "1": "用户未接听 (not answered)", "2": "呼叫异常 (call error)"}
STATUS_TIMES = ("start_calltime", "accept_time", "end_calltime")

# The vendor's "推送回执相关错误码" table (Tencent Cloud voice messaging, error codes) -> canonical status.
FAILURE_STATUS = {
    1: status.UNREACHABLE,  # 关机: powered off
    2: status.BUSY,  # 通话中: in another call
    3: status.UNREACHABLE,  # 不在服务区: out of coverage
    4: status.UNREACHABLE,  # 您拨打的号码已欠费: in arrears
    5: status.NO_ANSWER,  # 无人接听
    6: status.UNREACHABLE,  # 暂时无法接通: cannot be reached for now
    7: status.UNREACHABLE,  # 停机: suspended
    8: status.INVALID_NUMBER,  # 空号: vacant number
    9: status.CALL_FAILED,  # 电路正忙: circuits busy (the network, not the callee)
    10: status.BUSY,  # 用户正忙
    11: status.CALL_FAILED,  # 其他原因: other
    12: status.REJECTED,  # 呼叫受限,请勿越权使用: call barred
    13: status.UNREACHABLE,  # 您拨打的号码已暂停服务: service suspended
    14: status.CALL_FAILED,  # not in the published table
    15: status.INVALID_NUMBER,  # 号码不存在: no such number
    16: status.UNREACHABLE,  # 来电提醒: the carrier's missed-call notice answered for an unreachable phone
    17: status.UNREACHABLE,  # 您拨打的号码已过期: a prepaid number past its validity, suspended like 7
    18: status.CALL_FAILED,  # 网络忙: network busy
    19: status.CALL_FAILED,  # 未开通语音通话功能: a line without voice service (the table does not say whose)
    20: status.NO_ANSWER,  # 无应答
}
FAILURE_CODE_MAX_DIGITS = len(str(max(FAILURE_STATUS)))

# Fields every body shares that the event holds; `nationcode` stays in attributes as given.
PARTIES = frozenset({"callid", "mobile", "call_from"})
STATUS_READ = PARTIES | {"result", "fee", *STATUS_TIMES}
STATUS_IDENTITY = ("callid", "result", *STATUS_TIMES, "mobile", "nationcode")
KEY_PRESS_READ = PARTIES | {"keypress"}
KEY_PRESS_IDENTITY = ("callid", "keypress", "mobile", "nationcode")
FAILURE_READ = PARTIES | {"failure_code", "failure_reason"}


@dataclass(frozen=True)
class VoiceBody:
    """One of the bodies a voice URL receives: its wrapper key, the event it becomes, how it is read."""

    wrapper: str
    source: str
    event_type: str
    build: Callable[[RawCallback, Context, VoiceBody, dict[str, Any]], Event]
    read: frozenset[str]  # the report's fields the event holds; every other one goes to attributes

    def new_event(self, raw: RawCallback, ctx: Context, identity: dict[str, object], state: str) -> Event:
        return ctx.new_event(
            raw, source=self.source, event_type=self.event_type, identity=identity, report_index=0, status=state
        )


def status_event(raw: RawCallback, ctx: Context, kind: VoiceBody, report: dict[str, Any]) -> Event:
    call_id = _call_id(report)
    result = (as_text(report.get("result")) or "").strip()
    started, answered, ended = (
        unix_seconds_to_utc(report.get(name), name, ctx.source_timezone) for name in STATUS_TIMES
    )
    event = kind.new_event(
        raw, ctx, {name: report.get(name) for name in STATUS_IDENTITY}, RESULT.get(result, status.UNKNOWN)
    )
    event.update(
        {
            "occurred_at": ended or answered or started,
            "call_id": call_id,
            "vendor_status": result,
            "vendor_description": RESULT_DESCRIPTION.get(result),
            "started_at": started,
            "answered_at": answered,
            "ended_at": ended,
            "billable_minutes": whole_number(report.get("fee"), "fee"),
        }
    )
    _add_parties(event, report)
    return event


def key_press_event(raw: RawCallback, ctx: Context, kind: VoiceBody, report: dict[str, Any]) -> Event:
    call_id = _call_id(report)
    keys = (as_text(report.get("keypress")) or "").strip()
    if not keys:
        raise Rejected("missing_field", "keypress is missing")
    event = kind.new_event(raw, ctx, {name: report.get(name) for name in KEY_PRESS_IDENTITY}, status.KEY_PRESSED)
    event.update({"call_id": call_id, "key_digits": keys})
    _add_parties(event, report)  # the callee (to_*) pressed them
    return event


def failure_event(raw: RawCallback, ctx: Context, kind: VoiceBody, report: dict[str, Any]) -> Event:
    call_id = _call_id(report)
    sent_code = report.get("failure_code")
    code = failure_code(sent_code)
    identity = {
        "callid": report.get("callid"),
        "failure_code": code,
        "mobile": report.get("mobile"),
        "nationcode": report.get("nationcode"),
    }
    event = kind.new_event(raw, ctx, identity, FAILURE_STATUS[code])
    event.update(
        {
            "call_id": call_id,
            "vendor_code": (as_text(sent_code) or "").strip(),
            "vendor_description": as_text(report.get("failure_reason")),
        }
    )
    _add_parties(event, report)
    return event


def failure_code(value: object) -> int:
    """A code of the vendor's table, sent as a JSON number or as a string of ASCII digits."""
    if value is None or value == "":
        raise Rejected("missing_field", "failure_code is missing")
    code = _whole(value)
    if code is None or code not in FAILURE_STATUS:
        raise Rejected(
            "invalid_code",
            (
                f"failure_code: {reprlib.repr(value)} is not a code of the vendor's table (a whole number "
                f"1-{max(FAILURE_STATUS)})"
            ),
        )
    return code


def _whole(value: object) -> int | None:
    if type(value) is int:  # not bool: true is no code
        return value
    if type(value) is str:
        digits = value.strip()
        if ascii_digits(digits) and len(digits) <= FAILURE_CODE_MAX_DIGITS:
            return int(digits)
    return None


def _call_id(report: dict[str, Any]) -> str:
    call_id = as_text(report.get("callid"))
    if not call_id:
        raise Rejected("missing_field", "callid is missing")
    return call_id


def _add_parties(event: Event, report: dict[str, Any]) -> None:
    """``call_from`` calls ``mobile`` (the callee) in every voice push."""
    call_from, mobile = as_text(report.get("call_from")), as_text(report.get("mobile"))
    event.update(
        {
            "from_number": call_from,
            "from_e164": to_e164(call_from),
            "to_number": mobile,
            "to_e164": to_e164(mobile, as_text(report.get("nationcode"))),
        }
    )


BODIES: dict[str, VoiceBody] = {
    body.wrapper: body
    for body in (
        VoiceBody("voicecode_callback", "tencent.voicecode", "voice.code_status", status_event, STATUS_READ),
        VoiceBody("voiceprompt_callback", "tencent.voiceprompt", "voice.prompt_status", status_event, STATUS_READ),
        VoiceBody("voicekey_callback", "tencent.voicekey", "voice.key_press", key_press_event, KEY_PRESS_READ),
        VoiceBody("voice_failure_callback", "tencent.voice_failure", "voice.call_failure", failure_event, FAILURE_READ),
    )
}


def normalize(raw: RawCallback, ctx: Context) -> list[Outcome]:
    parsed = parse_json(raw.body)
    parsed.require_unambiguous()  # one report per request: the request is the report
    body = parsed.value
    kind, report = wrapped_report(body)
    try:
        event = kind.build(raw, ctx, kind, report)
    except Rejected as rejected:
        raise rejected.carrying(report) from None
    event["attributes"] = {**leftover_attributes(report, kind.read), **leftover_attributes(body, (kind.wrapper,))}
    event["repairs"] = list(parsed.repairs)
    return [event]


def wrapped_report(body: Any) -> tuple[VoiceBody, dict[str, Any]]:
    """The body's one wrapper and the report object inside it."""
    if not isinstance(body, dict):
        raise Rejected(
            "unexpected_shape",
            f"expected a JSON object wrapping the report in one of {_named(BODIES)}, got {type(body).__name__}",
        )
    wrappers = [key for key in body if key.lower().endswith(WRAPPER_SUFFIX)]
    if len(wrappers) != 1:
        found = f"{len(wrappers)} wrappers ({_named(wrappers)})" if wrappers else f"none in the keys {_named(body)}"
        raise Rejected("unexpected_shape", f"expected exactly one of {_named(BODIES)}: found {found}")
    (wrapper,) = wrappers
    kind = BODIES.get(wrapper)
    if kind is None:
        raise Rejected("unexpected_shape", f"unknown wrapper {reprlib.repr(wrapper)}; expected one of {_named(BODIES)}")
    report = body[wrapper]
    if not isinstance(report, dict):
        raise Rejected("unexpected_shape", f"{wrapper} is {type(report).__name__}, not an object")
    return kind, report


def _named(keys: Collection[str]) -> str:
    """The first keys, quoted and shortened, and how many more there are."""
    shown = ", ".join(reprlib.repr(key) for key, _ in zip(keys, range(MAX_KEYS_NAMED), strict=False))
    more = len(keys) - MAX_KEYS_NAMED
    return f"{shown} and {more} more" if more > 0 else shown or "(no keys)"


ADAPTERS = [
    # Each route's source names its own format; both routes read all four bodies (see BODIES).
    Adapter(route="tencent/voicecode", source="tencent.voicecode", normalize=normalize),
    Adapter(route="tencent/voiceprompt", source="tencent.voiceprompt", normalize=normalize),
]

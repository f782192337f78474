"""Tencent Cloud voice status callbacks: voice verification code (seed 000) and voice prompt (seed 001).

Body: ``{"voicecode_callback": {...}}`` or ``{"voiceprompt_callback": {...}}`` with ``result``
("0" answered, "1" not answered, "2" call error), unix-second times as strings (``start_calltime``,
``accept_time``, ``end_calltime``), ``fee`` in billable minutes, ``callid``, ``mobile``, ``nationcode``
and ``call_from``. One event per request. Reply: ``{"result":0,"errmsg":"OK"}``.

The vendor gives no call duration, so ``duration_s`` stays empty rather than being derived.

Event id: ``callid`` (one call), ``result``, the call times ``start_calltime``, ``accept_time``,
``end_calltime``, and ``mobile`` with ``nationcode``: what the vendor says happened, to whom and when.
``fee`` is billing, not identity: a resend with another fee keeps the id (a conflict for whoever
reconciles billing, not a second call), and ``call_from`` is the number shown, not the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ringback.normalizer import status
from ringback.normalizer.adapters import Adapter
from ringback.normalizer.amounts import whole_number
from ringback.normalizer.event import Context, as_text, leftover_attributes
from ringback.normalizer.jsonbody import parse_json
from ringback.normalizer.outcome import Outcome, Rejected
from ringback.normalizer.phones import to_e164
from ringback.normalizer.times import unix_seconds_to_utc
from ringback.runtime.raw import RawCallback

RESULT = {"0": status.ANSWERED, "1": status.NO_ANSWER, "2": status.CALL_FAILED}
RESULT_DESCRIPTION = {"0": "用户正常接听 (answered)", "1": "用户未接听 (not answered)", "2": "呼叫异常 (call error)"}
MAPPED = frozenset({"result", "accept_time", "call_from", "callid", "end_calltime", "fee", "mobile", "start_calltime"})
IDENTITY = ("callid", "result", "start_calltime", "accept_time", "end_calltime", "mobile", "nationcode")


@dataclass(frozen=True)
class VoiceFormat:
    wrapper: str
    source: str
    event_type: str

    def normalize(self, raw: RawCallback, ctx: Context) -> list[Outcome]:
        parsed = parse_json(raw.body)
        parsed.require_unambiguous()  # one report per request: the request is the report
        body = parsed.value
        if not isinstance(body, dict) or not isinstance(body.get(self.wrapper), dict):
            raise Rejected("unexpected_shape", f'expected {{"{self.wrapper}": {{...}}}}')
        report: dict[str, Any] = body[self.wrapper]
        call_id = as_text(report.get("callid"))
        result = (as_text(report.get("result")) or "").strip()
        if not call_id:
            raise Rejected("missing_field", "callid is missing")
        started = unix_seconds_to_utc(report.get("start_calltime"), "start_calltime")
        answered = unix_seconds_to_utc(report.get("accept_time"), "accept_time")
        ended = unix_seconds_to_utc(report.get("end_calltime"), "end_calltime")
        mobile = as_text(report.get("mobile"))
        nationcode = as_text(report.get("nationcode"))
        call_from = as_text(report.get("call_from"))

        event = ctx.new_event(
            raw,
            source=self.source,
            event_type=self.event_type,
            identity={name: report.get(name) for name in IDENTITY},
            report_index=0,
            status=RESULT.get(result, status.UNKNOWN),
        )
        event.update(
            occurred_at=ended or answered or started,
            call_id=call_id,
            from_number=call_from,
            from_e164=to_e164(call_from),
            to_number=mobile,
            to_e164=to_e164(mobile, nationcode),
            vendor_status=result,
            vendor_description=RESULT_DESCRIPTION.get(result),
            started_at=started,
            answered_at=answered,
            ended_at=ended,
            billable_minutes=whole_number(report.get("fee"), "fee"),
            attributes={**leftover_attributes(report, MAPPED), **leftover_attributes(body, (self.wrapper,))},
            repairs=list(parsed.repairs),
        )
        return [event]


VOICE_CODE = VoiceFormat("voicecode_callback", "tencent.voicecode", "voice.code_status")
VOICE_PROMPT = VoiceFormat("voiceprompt_callback", "tencent.voiceprompt", "voice.prompt_status")

ADAPTERS = [
    Adapter(route="tencent/voicecode", source=VOICE_CODE.source, normalize=VOICE_CODE.normalize),
    Adapter(route="tencent/voiceprompt", source=VOICE_PROMPT.source, normalize=VOICE_PROMPT.normalize),
]

"""Tencent Cloud SMS replies (uplink, "MO"): an end user answered an SMS.

Body, pushed to its own URL: ``{"extend", "mobile", "nationcode", "sign", "text", "time"}`` — ``time``
is unix seconds as a JSON number (a string of ASCII digits is read too; a fraction, a sign or anything
else is ``invalid_time``), ``sign`` the SMS signature the user answered, ``extend`` the channel
extension code (empty unless the account has one). An array of such objects is read as one reply
each. Reply: ``{"result":0,"errmsg":"OK"}``.

The end user is the sender: ``from_number``/``from_e164`` (``mobile`` with ``nationcode``).
``occurred_at`` is ``time``; the status is ``received``. ``sign``, ``extend``, ``nationcode`` and every
other field stay in ``attributes`` as sent. ``mobile``, ``time`` and ``text`` (which may be empty) are
required: without them there is no reply to identify.

The text is an end user's message: ``message_text`` holds it as the ``sms_reply_text`` setting says —
``store`` (as sent), ``mask`` (one ``*`` per character: the length alone remains) or ``drop`` (null).

Event id: ``mobile``, ``nationcode``, ``time``, ``text``, ``sign``, ``extend`` — who answered what, when,
to which signature and extension; the push has no id of its own. The id is computed from the real
text whatever the setting, so a resend collapses also when the text is masked or dropped. A hash does
not give the text back, but whoever holds the other fields can confirm a guessed text against the id,
and a short reply ("1", "Y", "退订") is easily guessed.
"""

from __future__ import annotations

from typing import Any

from ringback.config import SMS_REPLY_TEXT_MASK, SMS_REPLY_TEXT_STORE
from ringback.normalizer import status
from ringback.normalizer.adapters import Adapter
from ringback.normalizer.event import Context, as_text, leftover_attributes
from ringback.normalizer.jsonbody import parse_json
from ringback.normalizer.outcome import Event, Outcome, Rejected, Rejection
from ringback.normalizer.phones import to_e164
from ringback.normalizer.times import unix_seconds_to_utc
from ringback.runtime.raw import RawCallback

SOURCE = "tencent.sms_reply"
EVENT_TYPE = "sms.reply"
IDENTITY = ("mobile", "nationcode", "time", "text", "sign", "extend")
READ = frozenset({"mobile", "text", "time"})
MASK_CHARACTER = "*"


def text_policy(ctx: Context) -> str:
    """The ``sms_reply_text`` setting, as the normalizer's Context carries it."""
    return ctx.sms_reply_text


def stored_text(text: str, policy: str) -> str | None:
    """What ``message_text`` holds of a reply's text under ``policy``; nothing for a policy it does not know."""
    if policy == SMS_REPLY_TEXT_STORE:
        return text
    if policy == SMS_REPLY_TEXT_MASK:
        return MASK_CHARACTER * len(text)
    return None


def normalize(raw: RawCallback, ctx: Context) -> list[Outcome]:
    parsed = parse_json(raw.body)
    body = parsed.value
    lone = isinstance(body, dict)
    replies = [body] if lone else body
    if not isinstance(replies, list):
        raise Rejected("unexpected_shape", f"expected a reply object (or an array of them), got {type(body).__name__}")
    if not replies:
        raise Rejected("no_reports", "the reply array is empty")
    policy = text_policy(ctx)
    outcomes: list[Outcome] = []
    for index, reply in enumerate(replies):
        try:
            parsed.require_unambiguous(() if lone else (index,))
            event = reply_event(raw, ctx, index, reply, policy)
            event["repairs"] = list(parsed.repairs)
            outcomes.append(event)
        except Rejected as rejected:
            outcomes.append(Rejection.of(rejected, index, reply))
    return outcomes


def reply_event(raw: RawCallback, ctx: Context, index: int, reply: Any, policy: str) -> Event:
    if not isinstance(reply, dict):
        raise Rejected("unexpected_shape", f"reply {index} is {type(reply).__name__}, not an object")
    mobile = as_text(reply.get("mobile"))
    text = as_text(reply.get("text"))
    sent_at = unix_seconds_to_utc(reply.get("time"), "time", ctx.source_timezone)
    missing = [
        name
        for name, absent in (("mobile", not (mobile or "").strip()), ("text", text is None), ("time", sent_at is None))
        if absent
    ]
    if missing:
        raise Rejected("missing_field", f"reply {index} lacks {', '.join(missing)}")
    event = ctx.new_event(
        raw,
        source=SOURCE,
        event_type=EVENT_TYPE,
        identity={name: reply.get(name) for name in IDENTITY},
        report_index=index,
        status=status.RECEIVED,
    )
    event.update(
        {
            "occurred_at": sent_at,
            "from_number": mobile,
            "from_e164": to_e164(mobile, as_text(reply.get("nationcode"))),
            "message_text": stored_text(text or "", policy),
            "attributes": leftover_attributes(reply, READ),
        }
    )
    return event


ADAPTERS = [Adapter(route="tencent/sms-reply", source=SOURCE, normalize=normalize)]

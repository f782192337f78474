"""Building normalized events: schema defaults, deterministic ids, the attribute map."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from ringback import __version__
from ringback.config import SMS_REPLY_TEXT_STORE
from ringback.normalizer.identity import event_id
from ringback.normalizer.outcome import Event
from ringback.runtime.raw import RawCallback


def as_text(value: object) -> str | None:
    """A vendor value as text: strings stripped of nothing, numbers as written, absent as None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    # Nested values as JSON; exact JSON numbers (Decimal) are written as their digits, quoted.
    return orjson.dumps(value, default=str).decode()


def leftover_attributes(report: Mapping[str, Any], consumed: Iterable[str]) -> dict[str, str]:
    """Every vendor field that no typed event field took, as text."""
    taken = consumed if isinstance(consumed, (set, frozenset)) else set(consumed)
    return {
        str(key): value if type(value) is str else as_text(value) or ""
        for key, value in report.items()
        if key not in taken
    }


#: The formats that carry no app of their own and belong to the tenant's app: Tencent's SMS and voice
#: pushes (a Tencent app pushes to URLs of its own). Every other format names its app (CDR entries'
#: ``appid``, click-to-call hang-ups' ``appId``) or belongs to a call whose CDR names it (CDR platform
#: state pushes, click-to-call status, record and key-press pushes): their app_id stays empty, never
#: the tenant's, so a call is counted under its CDR's app.
TENANT_APP_SOURCES = frozenset(
    {
        "tencent.sms_status",
        "tencent.sms_reply",
        "tencent.voicecode",
        "tencent.voiceprompt",
        "tencent.voicekey",
        "tencent.voice_failure",
    }
)


@dataclass(frozen=True)
class Context:
    """What every adapter needs besides the raw callback."""

    blank_event: Event
    source_timezone: str = "Asia/Shanghai"
    normalizer_version: str = __version__
    sms_reply_text: str = SMS_REPLY_TEXT_STORE  # what an SMS reply's message_text keeps of the text

    def new_event(
        self,
        raw: RawCallback,
        *,
        source: str,
        event_type: str,
        identity: Mapping[str, object],
        report_index: int,
        status: str,
    ) -> Event:
        """A blank event for one report; ``identity``: the fields that tell this report from every other
        of its format (see ``identity.event_id``), whose id is also the tenant's."""
        event = self.blank_event.copy()
        event["attributes"] = {}
        event["repairs"] = []
        event.update(
            {
                "event_id": event_id(source, raw.tenant, event_type, identity),
                "event_type": event_type,
                "source": source,
                "route": raw.route,
                "ingest_id": raw.ingest_id,
                "report_index": report_index,
                "received_at": raw.received_at,
                "status": status,
                "normalizer_version": self.normalizer_version,
                "tenant": raw.tenant,
            }
        )
        if source in TENANT_APP_SOURCES and raw.tenant_app_id:
            event["app_id"] = raw.tenant_app_id
        return event

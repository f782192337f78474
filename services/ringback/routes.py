"""The vendor-facing routes: what the edge serves and how it answers each vendor.

This table sits below both the edge and the normalizer: the edge serves these routes without knowing
any parser; the normalizer has one adapter per route (a test holds the two together). A route's name
is the path below ``/callbacks/`` and travels with every raw callback.
"""

from __future__ import annotations

from dataclasses import dataclass

TENCENT = "tencent"  # {"result":0,"errmsg":"OK"}; non-zero result on failure (seeds 000, 001, 003; SMS replies)
HTTP_STATUS = "http-status"  # only the HTTP status matters; the CDR platform retries on 500 only (seed 002)
CALLBACKS_PREFIX = "/callbacks/"


@dataclass(frozen=True)
class Route:
    name: str  # e.g. "tencent/sms-status"
    reply_style: str  # TENCENT or HTTP_STATUS (see ringback.edge.replies)

    @property
    def path(self) -> str:
        return CALLBACKS_PREFIX + self.name


ROUTES: tuple[Route, ...] = (
    Route("tencent/sms-status", TENCENT),
    Route("tencent/voicecode", TENCENT),
    Route("tencent/voiceprompt", TENCENT),
    Route("tencent/sms-reply", TENCENT),
    Route("cdr-push", HTTP_STATUS),
    Route("callback-call/status", HTTP_STATUS),
    Route("callback-call/hangup", HTTP_STATUS),
    Route("callback-call/record", HTTP_STATUS),
    Route("callback-call/keypress", HTTP_STATUS),
)
BY_NAME: dict[str, Route] = {route.name: route for route in ROUTES}

"""The edge's API described: an OpenAPI 3.1 document of every route the edge serves.

The document is built from the route table (``ringback.routes``), the reply styles
(``ringback.edge.replies``) and the statuses of the door and the connection layer, with request
examples taken from the golden fixtures (``tests/fixtures``: the bodies that are read in full). It is
kept as ``schemas/openapi.json`` — reviewed in diffs like the Avro schema and the DDL, usable by tools
without a running edge — and served by the edge at ``GET /openapi.json``. ``tests/unit/test_openapi.py``
builds it again and fails when the file differs (``RINGBACK_UPDATE_OPENAPI=1`` rewrites it), when a
route of the table is undocumented or when the document names a route the edge does not serve.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ringback import __version__, logs
from ringback.edge import replies
from ringback.edge.connections import HEADER_FIELDS_TOO_LARGE
from ringback.edge.door import FORBIDDEN, SECRET, TENANT, UNAUTHORIZED
from ringback.edge.tenants import MIN_SECRET_CHARS, TENANT_ID
from ringback.routes import HTTP_STATUS, ROUTES, TENCENT, Route

OPENAPI_VERSION = "3.1.0"
DOCUMENT_PATH = "/openapi.json"
FILE_NAME = "openapi.json"  # in schemas_dir
TENANT_PREFIX = f"/t/{{{TENANT}}}/{{{SECRET}}}"
JSON = "application/json"
TEXT = "text/plain"
OPERATIONS_TAG = "Operations"

log = logs.get(__name__)

Schema = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UndocumentedRoute(LookupError):
    """A route of the table has no vendor format described here."""


@dataclass(frozen=True)
class Example:
    """A request body a vendor sends, from a golden fixture."""

    name: str  # e.g. "seed_003_example"
    source: str  # the fixture file, relative to the repository
    value: Any


@dataclass(frozen=True)
class VendorFormat:
    tag: str
    summary: str
    description: str
    schema: str  # name of the body's schema in components/schemas


@dataclass(frozen=True)
class Reply:
    """One reason the edge answers an operation with ``status``, and the body it sends then."""

    status: int
    when: str
    media_type: str
    schema: str  # name in components/schemas


# -- vendor formats: one per route of ringback.routes ---------------------------------------------

TENCENT_SMS = "Tencent Cloud SMS"
TENCENT_VOICE = "Tencent Cloud voice"
CDR = "CPaaS CDR push"
CLICK_TO_CALL = "Click-to-call"
VOICE_BODIES = (
    "Tencent pushes every voice callback of an application to the one URL configured for it, so this "
    "route reads all four voice bodies, told apart by the key that wraps the report: "
    "`voicecode_callback`, `voiceprompt_callback`, `voicekey_callback`, `voice_failure_callback`. "
    "Which of the two voice routes an application is given changes nothing but the route stored."
)
CLICK_TO_CALL_BODIES = (
    "A JSON object, or an array of them (one event each). Field names are matched case-insensitively "
    "(`callId` / `CallId`); times may be unix seconds, unix milliseconds or local `YYYY-MM-DD HH:MM:SS`."
)

FORMATS: dict[str, VendorFormat] = {
    "tencent/sms-status": VendorFormat(
        TENCENT_SMS,
        "Tencent Cloud SMS delivery status",
        "A JSON array of delivery reports (a lone report object is read too); each report becomes one event.",
        "TencentSmsStatusPush",
    ),
    "tencent/voicecode": VendorFormat(
        TENCENT_VOICE,
        "Tencent Cloud voice verification-code status, and every other voice push",
        VOICE_BODIES,
        "TencentVoicePush",
    ),
    "tencent/voiceprompt": VendorFormat(
        TENCENT_VOICE,
        "Tencent Cloud voice prompt status, and every other voice push",
        VOICE_BODIES,
        "TencentVoicePush",
    ),
    "tencent/sms-reply": VendorFormat(
        TENCENT_SMS,
        "Tencent Cloud SMS reply (an end user answered an SMS)",
        "One reply object (an array of them is read too, one event each).",
        "TencentSmsReplyPush",
    ),
    "cdr-push": VendorFormat(
        CDR,
        "CDR push: CDRs and two-way-call state pushes on one address",
        '`{"cdr": [...]}` with `fid` 2 (voice code), 4 (two-way call) or 5 (conference), or a bare two-way-call '
        "state object. The platform retries only on HTTP 500, at most three sends in all.",
        "CdrPush",
    ),
    "callback-call/status": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call state, pushed to `statusUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallStatusPush",
    ),
    "callback-call/hangup": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call CDR, pushed to `hangupUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallHangupPush",
    ),
    "callback-call/record": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call recording, pushed to `recordUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallRecordPush",
    ),
    "callback-call/keypress": VendorFormat(
        CLICK_TO_CALL,
        "Click-to-call key press, pushed to `keyPressUrl`",
        CLICK_TO_CALL_BODIES,
        "ClickToCallKeypressPush",
    ),
}

INFO_DESCRIPTION = f"""\
The vendor-facing HTTP edge of ringback: one `POST` route per vendor callback format, plus health,
readiness, metrics and this document.

**Success means durable.** A success reply is sent only once the request body is durable (acknowledged
by the broker with `acks=all`, or fsync'd to the edge's local journal). A request that could not be
made durable gets the vendor's retryable failure: Tencent routes `503` with a non-zero `result`, the
other routes `500` (the CDR platform retries only on 500).

**Any bytes are accepted.** The request schemas describe what each vendor sends, but the edge does
not parse bodies: whatever arrives on a known route (invalid JSON, another shape, an empty body) is
made durable and acknowledged like any other, then dead-lettered with its reason by the normalizer
(`ringback.dead_letters`). Rejecting it would only make the vendor send the same unreadable bytes again.

**Tenants and the secret in the URL.** Vendors cannot sign their pushes or set headers, so the sender
is identified by a secret in the callback URL: `POST /t/{{tenant}}/{{secret}}/callbacks/...` for every
route (same bodies, same replies). With a tenants file, an unknown tenant or a wrong secret is `401`
and an address outside the tenant's `allow_ips` is `403`, in the vendor's reply shape, and nothing is
published. The tenant-less `/callbacks/...` routes answer `401` when the tenants file says
`allow_anonymous = false`; without a tenants file they are open to anyone. Secrets are compared in
constant time and never appear in a log line, a metric, a topic or a table. Treat a tenant URL as a
credential and serve the edge behind TLS.

**Bounds.** Body size (`max_body_bytes` → `413`, at once when `Content-Length` announces more; a
compressed body counts decoded), body read time (`body_read_timeout_s` → `408`), body encodings
(`gzip`, `deflate`, `zstd`; another → `415`, a body that does not decode → `400`), requests and body
bytes in flight, counted as bytes arrive, in total and per client address (the retryable failure; the
whole edge full also makes `/readyz` 503), open connections in total and per address
(`503`, connection closed), request rate per address on tenant-less routes and per tenant (Tencent
routes `429`, the others `500`: the CDR platform retries only on 500), header line length (`431`).

**Errors.** On Tencent routes every refusal and failure is
`{{"result": {replies.TENCENT_FAILURE_RESULT}, "errmsg": "..."}}` with its status (Tencent reads `result`). On the other
routes, where only the status matters, a refusal or failure once the route is known is plain text; what
is answered before a route is known — malformed HTTP (`400`), a header line too long (`431`), too many
connections (`503`), an unknown path (`404`), a method a path does not serve (`405` with `Allow`) — is
that JSON on every route (`404` and `405`: see `components/responses`).
"""


# -- JSON Schema helpers ---------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def text(description: str) -> Schema:
    return {"type": "string", "description": description}


def text_or_number(description: str) -> Schema:
    return {"type": ["string", "number"], "description": description}


def record(description: str, properties: dict[str, Schema], required: Sequence[str] = ()) -> Schema:
    """A vendor object: the fields it documents; others are allowed and kept as the event's attributes."""
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def one_or_many(description: str, item: str) -> Schema:
    return {"description": description, "anyOf": [ref(item), {"type": "array", "items": ref(item), "minItems": 1}]}


def vendor_schemas() -> dict[str, Schema]:
    return {**tencent_sms_schemas(), **tencent_voice_schemas(), **cdr_push_schemas(), **click_to_call_schemas()}


def tencent_sms_schemas() -> dict[str, Schema]:
    return {
        "TencentSmsStatusReport": record(
            "One delivery report.",
            {
                "user_receive_time": text("When the handset received the SMS: China local time `YYYY-MM-DD HH:MM:SS`."),
                "nationcode": text("Country calling code of `mobile`, e.g. `86`."),
                "mobile": text("The recipient's number."),
                "report_status": text("`SUCCESS` or `FAIL`."),
                "errmsg": text("The carrier's receipt state (e.g. `DELIVRD`, `UNDELIV`) or a gateway failure code."),
                "description": text("The receipt state in words."),
                "sid": text("The id of the send this report is about."),
            },
            ("sid", "mobile", "report_status"),
        ),
        "TencentSmsStatusPush": {
            "description": "An array of delivery reports (a lone report object is read as one).",
            "anyOf": [
                {"type": "array", "items": ref("TencentSmsStatusReport"), "minItems": 1},
                ref("TencentSmsStatusReport"),
            ],
        },
        "TencentSmsReply": record(
            "One reply of an end user.",
            {
                "extend": text("The channel extension code (empty unless the account has one)."),
                "mobile": text("The end user who answered."),
                "nationcode": text("Country calling code of `mobile`."),
                "sign": text("The SMS signature the user answered."),
                "text": text("What the user wrote (may be empty)."),
                "time": {
                    "type": ["integer", "string"],
                    "description": "Unix seconds, a JSON number (a string of digits is read too).",
                },
            },
            ("mobile", "text", "time"),
        ),
        "TencentSmsReplyPush": one_or_many("A reply object, or an array of them.", "TencentSmsReply"),
    }


def tencent_voice_schemas() -> dict[str, Schema]:
    return {
        "TencentVoiceCallStatus": record(
            "A voice call's status (verification code or prompt).",
            {
                "result": text("`0` answered, `1` not answered, `2` call error."),
                "accept_time": text("Unix seconds the callee answered (`0` or empty when not answered)."),
                "call_from": text("The number the callee sees (may be empty)."),
                "callid": text("The call's id."),
                "end_calltime": text("Unix seconds the call ended."),
                "fee": text("Billable minutes."),
                "mobile": text("The callee's number."),
                "nationcode": text("Country calling code of `mobile`."),
                "start_calltime": text("Unix seconds the call started."),
            },
            ("callid",),
        ),
        "TencentVoiceKeyPress": record(
            "The keys the callee pressed during a voice prompt.",
            {
                "call_from": text("The number the callee sees (may be empty)."),
                "callid": text("The call's id."),
                "keypress": text("The keys pressed."),
                "mobile": text("The callee's number."),
                "nationcode": text("Country calling code of `mobile`."),
            },
            ("callid", "keypress"),
        ),
        "TencentVoiceFailure": record(
            "A call that could not be placed.",
            {
                "call_from": text("The number the callee would have seen (may be empty)."),
                "callid": text("The call's id."),
                "failure_code": {
                    "type": ["integer", "string"],
                    "description": "A code of the vendor's push error-code table (a string of digits is read too).",
                },
                "failure_reason": text("The code's text."),
                "mobile": text("The callee's number."),
                "nationcode": text("Country calling code of `mobile`."),
            },
            ("callid", "failure_code"),
        ),
        "TencentVoicePush": {
            "description": "Exactly one of the four voice reports, wrapped in the key that names it.",
            "anyOf": [
                {"type": "object", "properties": {wrapper: ref(schema)}, "required": [wrapper]}
                for wrapper, schema in (
                    ("voicecode_callback", "TencentVoiceCallStatus"),
                    ("voiceprompt_callback", "TencentVoiceCallStatus"),
                    ("voicekey_callback", "TencentVoiceKeyPress"),
                    ("voice_failure_callback", "TencentVoiceFailure"),
                )
            ],
        },
    }


def cdr_push_schemas() -> dict[str, Schema]:
    return {
        "CdrEntry": record(
            "One CDR. Money is yuan, as text or a number; times are local `YYYY-MM-DD HH:MM:SS.fff`.",
            {
                "requestid": text("The CDR's id (unique within an `appid`)."),
                "appid": text("The application."),
                "fid": {
                    "type": ["string", "integer"],
                    "description": "`2` voice code, `4` two-way call, `5` conference.",
                },
                "tel": text("The party (fid 2 and 5)."),
                "stime": text("Answer time (fid 2 and 5)."),
                "etime": text("End time (fid 2 and 5)."),
                "caller": text("Calling party (fid 4)."),
                "called": text("Called party (fid 4)."),
                "callerstime": text("Caller leg answered (fid 4)."),
                "calleretime": text("Caller leg ended (fid 4)."),
                "calledstime": text("Callee leg answered (fid 4)."),
                "calledetime": text("Callee leg ended (fid 4)."),
                "stateDesc": text("The call's outcome in words, e.g. `正常`, `未应答` (fid 4)."),
                "tapesurl": text("The recording, or `NoTapes`."),
                "confid": text("The conference (fid 5)."),
                "duration": text_or_number("Billed seconds."),
                "oriamount": text_or_number("Charge (fid 2 and 4)."),
                "singleoriamount": text_or_number("Charge of this conference leg (fid 5)."),
                "customParm": text("Echoed from the request that started the call."),
            },
            ("requestid", "fid"),
        ),
        "CdrList": record("CDRs.", {"cdr": {"type": "array", "items": ref("CdrEntry"), "minItems": 1}}, ("cdr",)),
        "CallStatePush": record(
            "A two-way call's state change.",
            {
                "requestid": text("The call's id."),
                "src": text("Calling party."),
                "dsc": text("Called party."),
                "timestamp": text("Local `YYYY-MM-DD HH:MM:SS`."),
                "state": text("`callout`, `alerting`, `answer` or `disconnect`."),
            },
            ("requestid", "state"),
        ),
        "CdrPush": {"description": "CDRs, or one call-state change.", "anyOf": [ref("CdrList"), ref("CallStatePush")]},
    }


def click_to_call_schemas() -> dict[str, Schema]:
    common = {
        "callId": text("The call's id."),
        "requestId": text("Echoed from the request that started the call."),
        "appId": text("The application."),
    }
    time = {
        "type": ["string", "integer"],
        "description": "Unix seconds, unix milliseconds or local `YYYY-MM-DD HH:MM:SS`.",
    }
    kinds = {
        "ClickToCallStatus": record(
            "A state of one leg of the call.",
            {
                **common,
                "src": text("Calling party."),
                "dst": text("Called party."),
                "userFlag": text("Whose leg: `src` (caller) or `dst` (callee)."),
                "callStatus": {
                    "type": ["string", "integer"],
                    "description": (
                        "`invite`, `ringing`, `answered`, `refused`, `disaccept`, `failed`, or a number 0-5."
                    ),
                },
                "status": {
                    "type": ["string", "integer"],
                    "description": "One statusFlag bit (low byte caller leg, high byte callee leg).",
                },
                "errorCode": text("SIP code of a refused or failed call."),
                "timeStamp": time,
            },
        ),
        "ClickToCallHangup": record(
            "The call's CDR.",
            {
                **common,
                "src": text("Calling party."),
                "dst": text("Called party."),
                **dict.fromkeys(
                    (
                        "startSrcCallTime",
                        "startSrcRingTime",
                        "srcAcceptTime",
                        "startDstCallTime",
                        "startDstRingTime",
                        "dstAcceptTime",
                        "endCallTime",
                    ),
                    time,
                ),
                "callEndStatus": {
                    "type": ["string", "integer"],
                    "description": (
                        "0 unknown, 1 normal call, 2/3 caller/callee did not answer, 4/5 caller/callee unreachable."
                    ),
                },
                "duration": text_or_number("Billed seconds."),
                "recordUrl": text("The recording (may be empty)."),
            },
        ),
        "ClickToCallRecord": record("A recording of the call.", {**common, "recordUrl": text("The recording.")}),
        "ClickToCallKeypress": record(
            "Keys pressed during the call.",
            {
                **common,
                "key": text("The key(s) pressed (also `keyPress` or `digits`)."),
                "phone": text("Who pressed."),
                "timeStamp": time,
            },
        ),
    }
    pushes = {
        f"{name}Push": one_or_many(f"{schema['description']} One object or an array of them.", name)
        for name, schema in kinds.items()
    }
    return {**kinds, **pushes}


def reply_schemas() -> dict[str, Schema]:
    ok = orjson.loads(replies.TENCENT_OK)
    return {
        "TencentSuccess": {
            "description": "Tencent's success reply: the request is durable.",
            "type": "object",
            "properties": {name: {"const": value} for name, value in ok.items()},
            "required": list(ok),
            "additionalProperties": False,
            "examples": [ok],
        },
        "Failure": {
            "description": (
                "A refusal or failure in the shape every vendor understands: Tencent reads the non-zero `result`, the "
                "other platforms only the HTTP status."
            ),
            "type": "object",
            "properties": {
                "result": {"const": replies.TENCENT_FAILURE_RESULT},
                "errmsg": {"type": "string", "description": "Why, in words."},
            },
            "required": ["result", "errmsg"],
            "additionalProperties": False,
            "examples": [orjson.loads(replies.error_body("temporarily unavailable, please retry"))],
        },
        "Empty": {"description": "No body.", "type": "string", "maxLength": 0},
        "FailureText": {"description": "Why, in words; only the status matters to the platform.", "type": "string"},
        "Health": {
            "type": "object",
            "properties": {"status": {"const": "ok"}},
            "required": ["status"],
            "additionalProperties": False,
        },
        "Readiness": readiness_schema(),
        "Metrics": {"description": "Prometheus text exposition.", "type": "string"},
        "OpenApiDocument": {
            "description": "This document.",
            "type": "object",
            "properties": {
                "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
                "info": {"type": "object"},
                "paths": {"type": "object"},
            },
            "required": ["openapi", "info", "paths"],
        },
    }


def readiness_schema() -> Schema:
    count = {"type": "integer", "minimum": 0}
    journal = {
        "type": "object",
        "description": "The edge's local journal.",
        "properties": {
            "mode": {
                "enum": ["journal", "spool"],
                "description": (
                    "`journal`: every callback is journaled before the reply; `spool`: only what the broker could not "
                    "take."
                ),
            },
            "records": {**count, "description": "Records not yet trimmed."},
            "bytes": {**count, "description": "Their bytes."},
            "max_bytes": {**count, "description": "The journal's bound (`spool_max_bytes`)."},
            "unpublished": {**count, "description": "Records not yet acknowledged by the broker."},
            "oldest_age_s": {
                "type": ["number", "null"],
                "minimum": 0,
                "description": "Age of the oldest untrimmed record (journal mode), else null.",
            },
        },
        "required": ["mode", "records", "bytes", "max_bytes", "unpublished", "oldest_age_s"],
        "additionalProperties": False,
    }
    in_flight = {
        "type": "object",
        "description": "What the callback requests being handled hold now, and the edge's bounds.",
        "properties": {
            "requests": {**count, "description": "Requests being handled."},
            "bytes": {**count, "description": "Body bytes they hold (as arrived and as decoded)."},
            "max_requests": {**count, "description": "`edge_max_in_flight`."},
            "max_bytes": {**count, "description": "`edge_max_in_flight_bytes`."},
        },
        "required": ["requests", "bytes", "max_requests", "max_bytes"],
        "additionalProperties": False,
    }
    shedding = {
        "type": "object",
        "description": (
            "Requests were shed with the retryable failure within the last `edge_shed_ready_hold_s`. "
            "`in_flight_requests` and `in_flight_bytes` (the whole edge is full) make the edge not ready until "
            "`clears_after_s` passes without more; `address_share_*` (one address over its share) do not."
        ),
        "properties": {
            "reasons": {
                "type": "array",
                "items": {
                    "enum": ["in_flight_requests", "in_flight_bytes", "address_share_requests", "address_share_bytes"]
                },
            },
            "last_s_ago": {"type": "number", "minimum": 0, "description": "Seconds since the last request was shed."},
            "clears_after_s": {
                "type": "number",
                "minimum": 0,
                "description": "Seconds until the shedding is over if no more requests are shed.",
            },
        },
        "required": ["reasons", "last_s_ago", "clears_after_s"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": (
            "Ready when a callback can be made durable (in journal mode the journal has room; in spool mode the "
            "broker answers or the journal has room) and the edge is not shedding load for lack of in-flight room."
        ),
        "properties": {
            "ready": {"type": "boolean"},
            "broker": {"enum": ["reachable", "unreachable"]},
            "tenants": {
                "description": (
                    "How many tenants the tenants file holds, or that there is none and the edge is open to anyone."
                ),
                "anyOf": [{"type": "integer", "minimum": 0}, {"const": "none: open to anyone"}],
            },
            "journal": {"anyOf": [{"type": "null"}, journal]},
            "in_flight": in_flight,
            "shedding": {"anyOf": [{"type": "null"}, shedding]},
        },
        "required": ["ready", "broker", "tenants", "journal", "in_flight", "shedding"],
        "additionalProperties": False,
    }


# -- replies ---------------------------------------------------------------------------------------


DURABLE = "The request is durable (whatever its body holds: an unreadable body is dead-lettered, not refused)."
CLOSED = "answered, then the connection is closed"


def shaped(style: str, status: int, when: str) -> Reply:
    """A refusal or failure once the route is known: Tencent's JSON, or plain text for the others."""
    return Reply(status, when, JSON, "Failure") if style == TENCENT else Reply(status, when, TEXT, "FailureText")


def protocol_replies() -> list[Reply]:
    """What any request may get before a route is known."""
    too_many = "Too many open connections (`edge_max_connections`, or `edge_max_connections_per_ip` from this address)"
    return [
        Reply(
            HTTPStatus.BAD_REQUEST,
            f"The request is not valid HTTP (request line, a header, a chunked body): {CLOSED}.",
            JSON,
            "Failure",
        ),
        Reply(HEADER_FIELDS_TOO_LARGE, f"A header line is too long: {CLOSED}.", JSON, "Failure"),
        Reply(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"{too_many}: answered at once, then the connection is closed.",
            JSON,
            "Failure",
        ),
    ]


def door_replies(style: str, *, tenant: bool) -> list[Reply]:
    """Refusals before the body is read: nothing is published."""
    rate_limited = replies.RATE_LIMITED_STATUS[style]
    if not tenant:
        return [
            shaped(
                style,
                UNAUTHORIZED,
                "A tenants file says `allow_anonymous = false`: a tenant URL is required; nothing published.",
            ),
            shaped(
                style,
                rate_limited,
                "This address sends faster than `anonymous_rate_limit_per_s`; nothing published, send again later.",
            ),
        ]
    return [
        shaped(style, UNAUTHORIZED, "Unknown tenant or wrong secret; nothing published."),
        shaped(style, FORBIDDEN, "The address is outside the tenant's `allow_ips`; nothing published."),
        shaped(
            style, rate_limited, "The tenant sends faster than its rate limit; nothing published, send again later."
        ),
        Reply(
            HTTPStatus.NOT_FOUND,
            "The tenant or secret segment is empty, `.` or `..`: no route matches.",
            JSON,
            "Failure",
        ),
    ]


def callback_replies(style: str, *, tenant: bool) -> list[Reply]:
    success = (
        Reply(HTTPStatus.OK, DURABLE, JSON, "TencentSuccess")
        if style == TENCENT
        else Reply(HTTPStatus.OK, f"{DURABLE} Empty body.", TEXT, "Empty")
    )
    overloaded = (
        "the edge is overloaded (`edge_max_in_flight`, `edge_max_in_flight_bytes` counted as bytes arrive, or this "
        "address's `edge_in_flight_share_per_ip` of them): the connection is closed after the reply"
    )
    return [
        success,
        *door_replies(style, tenant=tenant),
        shaped(style, HTTPStatus.REQUEST_TIMEOUT, "The body did not arrive within `body_read_timeout_s`."),
        shaped(
            style,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            (
                "The body is larger than `max_body_bytes` (a `Content-Length` over it: at once, the body is not "
                "waited for; a compressed body: once decoded), or than the broker accepts."
            ),
        ),
        shaped(
            style,
            HTTPStatus.BAD_REQUEST,
            "The body does not decode as its `Content-Encoding` says (corrupt, or cut short); nothing published.",
        ),
        shaped(
            style,
            HTTPStatus.EXPECTATION_FAILED,
            (
                "An `Expect` other than `100-continue`; nothing published. (`Expect: 100-continue` gets `100 "
                "Continue` only when the head allows a body: else its refusal, before the body is sent.)"
            ),
        ),
        shaped(
            style,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            (
                "A `Content-Encoding` the edge does not decode (it decodes `identity`, `gzip`, `deflate`, `zstd`), "
                "answered at once; nothing published."
            ),
        ),
        shaped(
            style,
            replies.RETRYABLE_STATUS[style],
            f"Not made durable (broker and journal unavailable), or {overloaded}: send again.",
        ),
        *protocol_replies(),
    ]


def responses(cases: Iterable[Reply]) -> dict[str, Any]:
    """One response per status: its reasons listed, and its bodies (``anyOf`` where one media type has several)."""
    by_status: dict[int, list[Reply]] = {}
    for case in cases:
        by_status.setdefault(int(case.status), []).append(case)
    result: dict[str, Any] = {}
    for status in sorted(by_status):
        reasons = by_status[status]
        schemas: dict[str, list[str]] = {}
        for case in reasons:
            names = schemas.setdefault(case.media_type, [])
            if case.schema not in names:
                names.append(case.schema)
        whens = [case.when for case in reasons]
        result[str(status)] = {
            "description": whens[0] if len(whens) == 1 else "\n".join(f"- {when}" for when in whens),
            "content": {
                media: {"schema": ref(names[0]) if len(names) == 1 else {"anyOf": [ref(name) for name in names]}}
                for media, names in schemas.items()
            },
        }
    return result


def common_responses() -> dict[str, Any]:
    """Replies to a request for no operation of this document."""
    failure = {JSON: {"schema": ref("Failure")}}
    return {
        "NotFound": {"description": "No route has this path.", "content": failure},
        "MethodNotAllowed": {
            "description": "The path exists, the method does not: `Allow` lists the methods it serves.",
            "headers": {"Allow": {"description": "The methods this path serves.", "schema": {"type": "string"}}},
            "content": failure,
        },
    }


# -- operations ------------------------------------------------------------------------------------

STYLE_NAMES = {TENCENT: "Tencent", HTTP_STATUS: "HttpStatus"}
FORM_NAMES = {False: "Anonymous", True: "Tenant"}


def slug(route: Route) -> str:
    return route.name.replace("/", "_").replace("-", "_")


def tenant_path(route: Route) -> str:
    return TENANT_PREFIX + route.path


def vendor_format(route: Route) -> VendorFormat:
    try:
        return FORMATS[route.name]
    except KeyError:
        raise UndocumentedRoute(f"route {route.name!r} has no vendor format in ringback.edge.openapi.FORMATS") from None


def request_body(fmt: VendorFormat, examples: Sequence[Example]) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": ref(fmt.schema)}
    if examples:
        media["examples"] = {
            example.name: {
                "summary": example.name.replace("_", " "),
                "description": f"Golden fixture `{example.source}`.",
                "value": example.value,
            }
            for example in examples
        }
    return {
        "required": True,
        "description": (
            f"{fmt.description}\n\nThe edge accepts any bytes here and any `Content-Type`: a body it cannot read is "
            "still acknowledged, then dead-lettered with its reason."
        ),
        "content": {JSON: media},
    }


def callback_responses() -> tuple[dict[str, Any], dict[tuple[str, bool], dict[str, Any]]]:
    """(components/responses, the responses of each (reply style, tenant form) as references to them).

    A response is named after its style and status (``Tencent401``), with the form added
    (``Tencent401Tenant``) where the tenant-less and the tenant URLs answer that status differently.
    """
    components: dict[str, Any] = {}
    refs: dict[tuple[str, bool], dict[str, Any]] = {}
    for style, style_name in STYLE_NAMES.items():
        forms = {tenant: responses(callback_replies(style, tenant=tenant)) for tenant in FORM_NAMES}
        for tenant, form_name in FORM_NAMES.items():
            own, other = forms[tenant], forms[not tenant]
            refs[(style, tenant)] = {}
            for status, response in own.items():
                name = f"{style_name}{status}" if other.get(status) == response else f"{style_name}{status}{form_name}"
                components[name] = response
                refs[(style, tenant)][status] = {"$ref": f"#/components/responses/{name}"}
    return components, refs


def callback_operation(route: Route, responses_: dict[str, Any], *, tenant: bool) -> dict[str, Any]:
    fmt = vendor_format(route)
    reply = '`{"result":0,"errmsg":"OK"}`' if route.reply_style == TENCENT else "an empty `200`"
    where = "on a tenant's URL" if tenant else "on the tenant-less URL"
    operation: dict[str, Any] = {
        "operationId": f"{'tenant_' if tenant else ''}callback_{slug(route)}",
        "tags": [fmt.tag],
        "summary": fmt.summary + (" (tenant URL)" if tenant else ""),
        "description": (
            f"Route `{route.name}` {where}, reply style `{route.reply_style}`: success is {reply}, sent once the "
            "request is durable; every failure is in the vendor's own terms."
        ),
        "requestBody": {"$ref": f"#/components/requestBodies/{slug(route)}"},
        "responses": responses_,
    }
    if tenant:
        operation["parameters"] = [
            {"$ref": "#/components/parameters/Tenant"},
            {"$ref": "#/components/parameters/Secret"},
        ]
    return operation


def get_operation(
    operation_id: str, summary: str, ok: Mapping[str, str], extra: Sequence[Reply] = ()
) -> dict[str, Any]:
    """``ok``: media type -> schema name of the 200 reply."""
    cases = [Reply(HTTPStatus.OK, summary, media, schema) for media, schema in ok.items()]
    return {
        "operationId": operation_id,
        "tags": [OPERATIONS_TAG],
        "summary": summary,
        "responses": responses([*cases, *extra, *protocol_replies()]),
    }


def operations_paths() -> dict[str, Any]:
    not_ready = Reply(
        HTTPStatus.SERVICE_UNAVAILABLE, "Not ready: a callback cannot be made durable now.", JSON, "Readiness"
    )
    missing = Reply(
        HTTPStatus.NOT_FOUND,
        f"This document is not installed (`{FILE_NAME}` missing from `schemas_dir`).",
        JSON,
        "Failure",
    )
    return {
        "/healthz": {"get": get_operation("healthz", "Liveness: the process answers.", {JSON: "Health"})},
        "/readyz": {
            "get": get_operation(
                "readyz", "Readiness: a callback can be made durable now.", {JSON: "Readiness"}, [not_ready]
            )
        },
        "/metrics": {"get": get_operation("metrics", "Prometheus metrics of the edge.", {TEXT: "Metrics"})},
        DOCUMENT_PATH: {"get": get_operation("openapi", "This document.", {JSON: "OpenApiDocument"}, [missing])},
    }


def parameters() -> dict[str, Any]:
    return {
        "Tenant": {
            "name": TENANT,
            "in": "path",
            "required": True,
            "description": "The tenant's id, as in the tenants file.",
            "schema": {"type": "string", "pattern": f"^{TENANT_ID.pattern}$"},
            "example": "acme",
        },
        "Secret": {
            "name": SECRET,
            "in": "path",
            "required": True,
            "description": (
                "The tenant's secret: **a credential**. Vendors cannot sign callbacks or set headers, so the secret "
                "travels in the URL configured in the vendor's console. It is compared in constant time against "
                "SHA-256 digests and never logged, counted under a label or stored; two secrets may be valid "
                "at once while one is rotated."
            ),
            "schema": {
                "type": "string",
                "format": "password",
                "minLength": MIN_SECRET_CHARS,
                "pattern": f"^[^/]{{{MIN_SECRET_CHARS},}}$",
            },
            "example": "a-secret-of-at-least-16-characters",
        },
    }


def tags() -> list[dict[str, str]]:
    seen = dict.fromkeys(fmt.tag for fmt in (vendor_format(route) for route in ROUTES))
    return [
        *({"name": tag} for tag in seen),
        {"name": OPERATIONS_TAG, "description": "Health, readiness, metrics, this document."},
    ]


def build(examples: Mapping[str, Sequence[Example]]) -> dict[str, Any]:
    """The document; ``examples``: request bodies by route name (from the golden fixtures)."""
    shared_responses, responses_of = callback_responses()
    paths: dict[str, Any] = {}
    for tenant in FORM_NAMES:
        for route in ROUTES:
            path = tenant_path(route) if tenant else route.path
            paths[path] = {"post": callback_operation(route, responses_of[(route.reply_style, tenant)], tenant=tenant)}
    paths.update(operations_paths())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ringback edge",
            "version": __version__,
            "description": INFO_DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": tags(),
        "paths": paths,
        "components": {
            "schemas": {**reply_schemas(), **vendor_schemas()},
            "parameters": parameters(),
            "requestBodies": {
                slug(route): request_body(vendor_format(route), examples.get(route.name, ())) for route in ROUTES
            },
            "responses": {**common_responses(), **shared_responses},
        },
    }


def render(document: Mapping[str, Any]) -> bytes:
    """The file's bytes: stable, readable, diffable."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def load(schemas_dir: str | Path) -> bytes | None:
    path = Path(schemas_dir) / FILE_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def handler(schemas_dir: str | Path) -> Handler:
    """``GET /openapi.json``: the document from ``schemas_dir``, read once."""
    document = load(schemas_dir)
    if document is None:
        log.warning("API description not found: GET /openapi.json answers 404", path=str(Path(schemas_dir) / FILE_NAME))

    async def serve(_: web.Request) -> web.Response:
        if document is None:
            return replies.error_response(HTTPStatus.NOT_FOUND, "API description not installed")
        return web.Response(body=document, content_type=JSON)

    return serve

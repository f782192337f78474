"""The replies of every operation: each reason the edge answers with a status, and the body it sends then."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from ringback.edge import replies
from ringback.edge.connections import HEADER_FIELDS_TOO_LARGE
from ringback.edge.door import FORBIDDEN, UNAUTHORIZED
from ringback.edge.openapi import JSON
from ringback.normalizer.adapters.schema_parts import ref
from ringback.routes import HTTP_STATUS, TENCENT

TEXT = "text/plain"
STYLE_NAMES = {TENCENT: "Tencent", HTTP_STATUS: "HttpStatus"}
FORM_NAMES = {False: "Anonymous", True: "Tenant"}


@dataclass(frozen=True)
class Reply:
    """One reason the edge answers an operation with ``status``, and the body it sends then."""

    status: int
    when: str
    media_type: str
    schema: str  # name in components/schemas


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

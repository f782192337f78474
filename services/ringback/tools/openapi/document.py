"""The document assembled: paths of every route in both URL forms, the operations, and the components."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from ringback import __version__
from ringback.edge import replies
from ringback.edge.door import SECRET, TENANT
from ringback.edge.openapi import DOCUMENT_PATH, FILE_NAME, JSON
from ringback.edge.tenants import MIN_SECRET_CHARS, TENANT_ID
from ringback.normalizer.adapters.schema_parts import VendorFormat, ref
from ringback.routes import ROUTES, TENCENT, Route
from ringback.tools.openapi.bodies import vendor_format, vendor_schemas
from ringback.tools.openapi.reply_schemas import reply_schemas
from ringback.tools.openapi.responses import (
    FORM_NAMES,
    TEXT,
    Reply,
    callback_responses,
    common_responses,
    protocol_replies,
    responses,
)

OPENAPI_VERSION = "3.1.0"
TENANT_PREFIX = f"/t/{{{TENANT}}}/{{{SECRET}}}"
OPERATIONS_TAG = "Operations"


@dataclass(frozen=True)
class Example:
    """A request body a vendor sends, from a golden fixture."""

    name: str  # e.g. "seed_003_example"
    source: str  # the fixture file, relative to the repository
    value: Any


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


def slug(route: Route) -> str:
    return route.name.replace("/", "_").replace("-", "_")


def tenant_path(route: Route) -> str:
    return TENANT_PREFIX + route.path


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
            "schemas": {**reply_schemas(), **vendor_schemas(ROUTES)},
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

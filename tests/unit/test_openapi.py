"""The edge's OpenAPI document: built from the route table and the bodies beside the adapters, valid OpenAPI
3.1, in step with the edge's router, every reply documented, every example a body its schema describes — and
the file the edge serves is exactly the document the code builds (``make docs`` rewrites it, as does
``RINGBACK_UPDATE_OPENAPI=1``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import jsonschema
import openapi_spec_validator
import pytest

from ringback.config import Settings
from ringback.edge import openapi, replies
from ringback.edge.app import create_app
from ringback.routes import HTTP_STATUS, ROUTES, TENCENT, Route
from ringback.tools.openapi import bodies
from ringback.tools.openapi import document as builder
from ringback.tools.openapi.document import tenant_path
from ringback.tools.openapi.responses import TEXT
from tests.golden import FIXTURES
from tests.openapi_document import DOCUMENT_FILE, fixture_examples

OPERATIONS = {"/healthz", "/readyz", "/metrics", openapi.DOCUMENT_PATH}
PROTOCOL_STATUSES = {
    400,
    431,
    503,
}  # answered before a route is known: malformed HTTP, long header line, too many connections


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return builder.build(fixture_examples())


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#/").split("/")
        node = document
        for part in pointer:
            node = node[part]
    return node


def operation(document: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    return document["paths"][path][method]


def test_the_served_file_is_the_document_built_from_the_code_and_the_fixtures(document: dict[str, Any]) -> None:
    rendered = builder.render(document)
    if os.environ.get("RINGBACK_UPDATE_OPENAPI"):
        DOCUMENT_FILE.write_bytes(rendered)
    assert DOCUMENT_FILE.exists(), f"{DOCUMENT_FILE} missing: run `make docs` and review it"
    assert DOCUMENT_FILE.read_bytes() == rendered, f"{DOCUMENT_FILE} is stale: run `make docs` and review the diff"


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    openapi_spec_validator.validate(document, cls=openapi_spec_validator.OpenAPIV31SpecValidator)
    openapi_spec_validator.validate(
        json.loads(DOCUMENT_FILE.read_bytes()), cls=openapi_spec_validator.OpenAPIV31SpecValidator
    )


def test_every_route_of_the_table_is_documented_in_both_forms_and_nothing_else(document: dict[str, Any]) -> None:
    expected = (
        {route.path for route in ROUTES} | {f"/t/{{tenant}}/{{secret}}{route.path}" for route in ROUTES} | OPERATIONS
    )
    assert set(document["paths"]) == expected
    for route in ROUTES:
        assert set(document["paths"][route.path]) == {"post"}
        tenant_operation = operation(document, tenant_path(route))
        assert [resolve(document, parameter)["name"] for parameter in tenant_operation["parameters"]] == [
            "tenant",
            "secret",
        ]
    assert set(bodies.bodies().formats) == {route.name for route in ROUTES}, (
        "a vendor format for a route the table does not have"
    )


def test_the_document_and_the_edges_router_name_the_same_routes(
    document: dict[str, Any], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings())
    # aiohttp answers HEAD for every GET route by itself; HTTP defines HEAD by GET.
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}
    assert documented == served


def test_a_route_added_to_the_table_without_documentation_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "ROUTES", (*ROUTES, Route("acme/new-push", TENCENT)))
    with pytest.raises(bodies.UndocumentedRoute, match="acme/new-push"):
        builder.build({})


def expected_callback_statuses(route: Route, *, tenant: bool) -> set[int]:
    statuses = {
        200,
        401,
        408,
        413,
        415,  # a Content-Encoding the edge does not decode
        417,  # an Expect other than 100-continue
        replies.RETRYABLE_STATUS[route.reply_style],
        replies.RATE_LIMITED_STATUS[route.reply_style],
    }
    if tenant:
        statuses |= {403, 404}  # outside allow_ips; an empty tenant or secret segment matches no route
    return statuses | PROTOCOL_STATUSES


@pytest.mark.parametrize("tenant", [False, True], ids=["anonymous", "tenant"])
@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_every_reply_of_a_callback_route_is_documented_with_its_body(
    document: dict[str, Any], route: Route, tenant: bool
) -> None:
    path = tenant_path(route) if tenant else route.path
    documented = {
        int(status): resolve(document, response) for status, response in operation(document, path)["responses"].items()
    }
    assert set(documented) == expected_callback_statuses(route, tenant=tenant)
    for status, response in documented.items():
        assert response["description"].strip()
        assert set(response["content"]) == expected_media_types(route, status), (path, status)


def expected_media_types(route: Route, status: int) -> set[str]:
    """Tencent reads JSON; the other platforms get plain text once the route is known, and the JSON of the
    connection layer and the router before (on http-status routes 503 is only the connection refusal; 400
    is malformed HTTP before the route is known, or a body that does not decode after)."""
    if route.reply_style == TENCENT or status == 404:
        return {openapi.JSON}
    if status == 400:
        return {openapi.JSON, TEXT}
    if status in PROTOCOL_STATUSES:
        return {openapi.JSON}
    return {TEXT}


def test_every_operation_route_documents_its_replies(document: dict[str, Any]) -> None:
    statuses = {path: {int(status) for status in operation(document, path, "get")["responses"]} for path in OPERATIONS}
    assert statuses == {
        "/healthz": {200} | PROTOCOL_STATUSES,
        "/readyz": {200} | PROTOCOL_STATUSES,  # 503 also: not ready
        "/metrics": {200} | PROTOCOL_STATUSES,
        openapi.DOCUMENT_PATH: {200, 404} | PROTOCOL_STATUSES,
    }
    responses = document["components"]["responses"]
    assert {"NotFound", "MethodNotAllowed"} <= set(responses)
    assert "Allow" in responses["MethodNotAllowed"]["headers"]


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for a schema of the document, its ``#/components/...`` references resolved in it."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_the_reply_bodies_the_edge_sends_are_the_ones_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    schema_validator(document, schemas["TencentSuccess"]).validate(json.loads(replies.TENCENT_OK))
    schema_validator(document, schemas["Failure"]).validate(json.loads(replies.error_body("anything at all")))
    with pytest.raises(jsonschema.ValidationError):
        schema_validator(document, schemas["TencentSuccess"]).validate(
            json.loads(replies.error_body("a failure is no success"))
        )
    schema_validator(document, schemas["Empty"]).validate("")


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.name)
def test_every_route_has_examples_from_its_fixtures_and_its_schema_describes_them(
    document: dict[str, Any], route: Route
) -> None:
    body = resolve(document, operation(document, route.path)["requestBody"])
    assert body["required"] is True
    media = body["content"][openapi.JSON]
    examples = media.get("examples", {})
    assert examples, f"no golden fixture of {route.name} under {FIXTURES} is read in full"
    validator = schema_validator(document, media["schema"])
    for name, example in examples.items():
        errors = [error.message for error in validator.iter_errors(example["value"])]
        assert not errors, f"{route.name} example {name}: {errors[:3]}"
    assert operation(document, tenant_path(route))["requestBody"] == operation(document, route.path)["requestBody"]


def test_the_secret_is_marked_as_a_credential_and_the_tenant_follows_the_tenants_file(document: dict[str, Any]) -> None:
    from ringback.edge.tenants import MIN_SECRET_CHARS, TENANT_ID

    parameters = document["components"]["parameters"]
    secret = parameters["Secret"]
    assert secret["in"] == "path" and secret["schema"]["format"] == "password" and "credential" in secret["description"]
    assert secret["schema"]["minLength"] == MIN_SECRET_CHARS
    assert parameters["Tenant"]["schema"]["pattern"] == f"^{TENANT_ID.pattern}$"
    assert (
        "secret in the URL" in document["info"]["description"]
        or "secret in the callback URL" in document["info"]["description"]
    )


def test_http_status_routes_are_plain_and_tencent_routes_json(document: dict[str, Any]) -> None:
    for route in ROUTES:
        success = resolve(document, operation(document, route.path)["responses"]["200"])
        expected = {TENCENT: {openapi.JSON}, HTTP_STATUS: {TEXT}}[route.reply_style]
        assert set(success["content"]) == expected, route.name

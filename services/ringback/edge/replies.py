"""How each vendor wants to be answered, for success, retryable failure and rejected requests."""

from __future__ import annotations

import orjson
from aiohttp import web

from ringback.routes import HTTP_STATUS, TENCENT

RETRYABLE_STATUS = {TENCENT: 503, HTTP_STATUS: 500}
#: Too many requests: Tencent retries any failure, so it gets the honest 429; the CDR platform retries
#: only on HTTP 500 (and click-to-call is answered like it), so they get 500 or the callback is lost.
RATE_LIMITED_STATUS = {TENCENT: 429, HTTP_STATUS: 500}
TENCENT_FAILURE_RESULT = 1
TENCENT_OK = b'{"result":0,"errmsg":"OK"}'


def success(style: str) -> web.Response:
    if style == TENCENT:
        return web.Response(body=TENCENT_OK, content_type="application/json")
    return web.Response(
        status=200, content_type="text/plain"
    )  # empty 200, as the CDR and click-to-call platforms expect


def retryable_failure(style: str, message: str) -> web.Response:
    """The request was not made durable: the vendor must send it again."""
    return _failure(style, RETRYABLE_STATUS[style], message)


def rate_limited(style: str) -> web.Response:
    return _failure(style, RATE_LIMITED_STATUS[style], "too many requests, please retry later")


def rejected(style: str, status: int, message: str) -> web.Response:
    """The request can never be accepted as sent (e.g. too large)."""
    return _failure(style, status, message)


def _failure(style: str, status: int, message: str) -> web.Response:
    if style == TENCENT:
        return error_response(status, message)
    return web.Response(status=status, text=message)


def error_body(message: str) -> bytes:
    """A failure body every vendor understands: Tencent reads a non-zero ``result``, the others only the
    HTTP status that goes with it."""
    return orjson.dumps({"result": TENCENT_FAILURE_RESULT, "errmsg": message})


def error_response(status: int, message: str) -> web.Response:
    """For failures that happen before a route is known (malformed HTTP, unknown path, wrong method)."""
    return web.Response(body=error_body(message), status=status, content_type="application/json")

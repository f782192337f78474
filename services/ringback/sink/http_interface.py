"""ClickHouse's HTTP interface for the embedded store, served by the sink: what BI tools (Grafana's
ClickHouse data source, Superset, Metabase, DBeaver) and ``clickhouse-connect`` speak.

``GET /ping`` answers ``Ok.``; ``GET /?query=...`` and ``POST /`` (the query in the body, or in the URL
with the body appended to it as ClickHouse does) run one read-only query through the same query guard
and limits as ``ringback sql``, as the analyst the request authenticates (HTTP basic auth, the
``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, or ``user``/``password`` URL parameters). A
``FORMAT`` clause wins over ``default_format``; the output settings the guard allows may come as URL
parameters; the client's session and transport parameters are ignored, settings that only matter to
inserts are ignored (inserts are refused), limits a client asks for are ignored (the analyst limits
always apply), and every other setting is refused with ClickHouse's
``READONLY`` error. Errors come in ClickHouse's shape: ``Code: N. DB::Exception: ...`` with its HTTP
status and the ``X-ClickHouse-Exception-Code`` header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ringback import logs
from ringback.runtime.query_guard import OUTPUT_SETTINGS, QueryNotParsed, QueryRefused
from ringback.sink.analysts import Analyst, AnalystSource

RUN_FILE = "sql-http"
DEFAULT_FORMAT = "TabSeparated"
#: Largest request body (a query, not data: inserts are refused).
MAX_REQUEST_BYTES = 1_048_576
#: Queries waiting for the store beyond the one running; more are refused at once.
MAX_WAITING_QUERIES = 16
#: Characters of a query kept in its log line.
LOGGED_QUERY_CHARS = 2_000
EXCEPTION_CODE_HEADER = "X-ClickHouse-Exception-Code"
#: URL parameters of the interface itself or of the client's session and transport: ignored.
TRANSPORT_PARAMETERS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "wait_end_of_query",
        "http_wait_end_of_query",
        "buffer_size",
        "http_response_buffer_size",
        "client_protocol_version",
        "cancel_http_readonly_queries_on_client_close",
        "readonly",
        "log_comment",
        "role",
    }
)
#: Settings that only shape what an INSERT reads (refused anyway): clients send them on connect.
INPUT_ONLY_SETTINGS = frozenset(
    {"date_time_input_format", "cast_string_to_dynamic_use_inference", "async_insert", "wait_for_async_insert"}
)
INPUT_ONLY_PREFIXES = ("input_format_", "insert_")
#: Limits a client may ask for (Grafana's query timeout is ``max_execution_time``): ignored, the
#: analyst limits (``query_*`` settings) always apply.
CLIENT_LIMITS = frozenset(
    {"max_execution_time", "max_result_rows", "max_result_bytes", "max_memory_usage", "max_threads"}
)
#: The databases a request may name: no ``USE`` on a shared reader, so the default one only.
DEFAULT_DATABASES = frozenset({"", "default"})

# ClickHouse's error codes and the HTTP status its own interface gives them.
UNKNOWN_EXCEPTION, SYNTAX_ERROR, UNKNOWN_DATABASE = 1001, 62, 81
READONLY, AUTHENTICATION_FAILED, TOO_MANY_QUERIES = 164, 516, 202
UNKNOWN_SETTING, UNSUPPORTED_METHOD = 115, 1
HTTP_STATUS_OF_CODE = {
    SYNTAX_ERROR: 400,
    62: 400,
    47: 400,  # UNKNOWN_IDENTIFIER
    46: 404,  # UNKNOWN_FUNCTION
    60: 404,  # UNKNOWN_TABLE
    UNKNOWN_DATABASE: 404,
    READONLY: 403,
    497: 403,  # ACCESS_DENIED
    AUTHENTICATION_FAILED: 401,
    TOO_MANY_QUERIES: 503,
    UNKNOWN_SETTING: 400,
}
CODE_NAMES = {
    SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_DATABASE: "UNKNOWN_DATABASE",
    READONLY: "READONLY",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    TOO_MANY_QUERIES: "TOO_MANY_SIMULTANEOUS_QUERIES",
    UNKNOWN_SETTING: "UNKNOWN_SETTING",
    UNSUPPORTED_METHOD: "UNSUPPORTED_METHOD",
    UNKNOWN_EXCEPTION: "UNKNOWN_EXCEPTION",
}
_ENGINE_ERROR = re.compile(r"Code: (\d+)\. DB::Exception: ")

#: (analyst, query, default format, output settings) -> the answer.
AnalystQueryFn = Callable[[Analyst, str, str, dict[str, str]], Awaitable[bytes]]

log = logs.get(__name__)


@dataclass(frozen=True)
class ClickHouseError(Exception):
    code: int
    message: str
    http_status: int | None = None

    def response(self) -> web.Response:
        return error_response(self.code, self.message, self.http_status)


def error_response(code: int, message: str, http_status: int | None = None) -> web.Response:
    name = CODE_NAMES.get(code)
    body = message if message.startswith("Code: ") else f"Code: {code}. DB::Exception: {message}"
    if name and f"({name})" not in body:
        body = f"{body} ({name})"
    return web.Response(
        status=http_status or HTTP_STATUS_OF_CODE.get(code, 500),
        text=body.rstrip("\n") + "\n",
        headers={EXCEPTION_CODE_HEADER: str(code)},
    )


def engine_error(exc: Exception) -> ClickHouseError:
    """An error from the guard or the engine, as ClickHouse's interface would give it."""
    text = str(exc)
    if isinstance(exc, QueryRefused):
        return ClickHouseError(READONLY, text)
    if isinstance(exc, QueryNotParsed):
        found = _ENGINE_ERROR.search(text)
        return ClickHouseError(int(found[1]) if found else SYNTAX_ERROR, text[found.start() :] if found else text)
    found = _ENGINE_ERROR.search(text)
    if found:
        return ClickHouseError(int(found[1]), text[found.start() :])
    return ClickHouseError(UNKNOWN_EXCEPTION, text)


def credentials(request: web.Request) -> tuple[str, str]:
    """(user, password) from basic auth, the X-ClickHouse-User/Key headers, or the URL; ("", "") if none."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ClickHouseError(AUTHENTICATION_FAILED, "unreadable basic authorization header") from exc
        return user, password
    if "X-ClickHouse-User" in request.headers or "X-ClickHouse-Key" in request.headers:
        return request.headers.get("X-ClickHouse-User", ""), request.headers.get("X-ClickHouse-Key", "")
    return request.query.get("user", ""), request.query.get("password", "")


def output_settings(params: dict[str, str]) -> dict[str, str]:
    """The output settings among the URL parameters; harmless ones ignored, any other refused."""
    settings: dict[str, str] = {}
    for name, value in params.items():
        lowered = name.lower()
        if lowered in TRANSPORT_PARAMETERS or lowered in INPUT_ONLY_SETTINGS or lowered.startswith(INPUT_ONLY_PREFIXES):
            continue
        if lowered in CLIENT_LIMITS:
            continue
        if lowered in OUTPUT_SETTINGS:
            settings[lowered] = value
            continue
        if lowered.startswith("param_"):
            raise ClickHouseError(
                READONLY, f"query parameters ({name}) are not supported here: put the values in the query"
            )
        raise ClickHouseError(
            READONLY,
            f"Cannot modify '{name}' setting in readonly mode: analyst queries run with fixed limits; "
            f"only output settings may be given ({', '.join(OUTPUT_SETTINGS)})",
        )
    return settings


class HttpInterface:
    def __init__(self, analysts: AnalystSource, run_query: AnalystQueryFn) -> None:
        self.analysts = analysts
        self.run_query = run_query
        self.waiting = asyncio.Semaphore(MAX_WAITING_QUERIES + 1)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/ping", self.ping)
        app.router.add_get("/", self.handle)
        app.router.add_post("/", self.handle)
        return app

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def handle(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        try:
            analyst = self._authenticate(request)
        except ClickHouseError as exc:
            log.warning("sql http: authentication refused", peer=request.remote, user=_claimed_user(request))
            return exc.response()
        try:
            query, default_format, settings = await self._read(request)
        except ClickHouseError as exc:
            log.info("sql http: request refused", analyst=analyst.name, error=exc.message)
            return exc.response()
        if self.waiting.locked():
            return error_response(TOO_MANY_QUERIES, "too many analyst queries waiting; try again shortly")
        async with self.waiting:
            try:
                body = await self.run_query(analyst, query, default_format, settings)
            except Exception as exc:  # a refusal, or the analyst's SQL error: back to the analyst
                error = engine_error(exc)
                log.info(
                    "sql http query failed",
                    analyst=analyst.name,
                    query=query[:LOGGED_QUERY_CHARS],
                    code=error.code,
                    elapsed_s=round(time.monotonic() - started, 3),
                )
                return error.response()
        log.info(
            "sql http query",
            analyst=analyst.name,
            query=query[:LOGGED_QUERY_CHARS],
            result_bytes=len(body),
            elapsed_s=round(time.monotonic() - started, 3),
        )
        return web.Response(
            body=body,
            content_type="text/plain" if default_format == DEFAULT_FORMAT else "application/octet-stream",
            charset="utf-8" if default_format == DEFAULT_FORMAT else None,
        )

    def _authenticate(self, request: web.Request) -> Analyst:
        user, password = credentials(request)
        analyst = self.analysts.authenticate(user, password, request.remote)
        if analyst is None:
            who = user or "default"
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{who}: Authentication failed: password is incorrect, or there is no user with such name"
                + ("" if self.analysts.current is not None else " (no analysts file: loopback clients only)"),
            )
        return analyst

    async def _read(self, request: web.Request) -> tuple[str, str, dict[str, str]]:
        params = dict(request.query)
        if params.get("database", "") not in DEFAULT_DATABASES:
            raise ClickHouseError(
                UNKNOWN_DATABASE,
                f"database {params['database']!r}: name tables with their database instead "
                "(ringback.events, analyst.<view>); the session's database is default",
            )
        url_query = params.get("query", "")
        body = ""
        if request.method == "POST":
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge as exc:
                raise ClickHouseError(
                    UNSUPPORTED_METHOD, f"request body over {MAX_REQUEST_BYTES} bytes", http_status=413
                ) from exc
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ClickHouseError(SYNTAX_ERROR, "the query is not UTF-8") from exc
        query = f"{url_query}\n{body}" if url_query and body else (url_query or body)
        if not query.strip():
            raise ClickHouseError(SYNTAX_ERROR, "Empty query")
        default_format = params.get("default_format") or DEFAULT_FORMAT
        return query, default_format, output_settings(params)


def _claimed_user(request: web.Request) -> str:
    try:
        return credentials(request)[0]
    except ClickHouseError:
        return "?"

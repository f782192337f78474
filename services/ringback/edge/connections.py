"""The edge's connections: who may connect, for how long, and how malformed HTTP is answered.

aiohttp bounds a request's size but not its connections: a client that never finishes its headers,
or never sends anything, holds a socket until the descriptor limit is reached, and then nobody is
answered. This module puts every connection under bounds:

- admission: at most ``edge_max_connections`` open at once (kept below the process's descriptor
  limit) and ``edge_max_connections_per_ip`` per remote address (not for trusted proxies, which carry
  many clients: those are bounded by their own address once the request head is read); a connection
  over either bound is answered ``503`` and closed at once, counted and logged;
- a request head must arrive completely within ``edge_header_timeout_s`` of its first byte;
- an idle connection (nothing sent since it opened or since the last reply) is closed after
  ``edge_idle_timeout_s`` (aiohttp's keep-alive timer, which also runs from the first second);
- HTTP that cannot be parsed is answered in the shape every vendor understands, a JSON
  ``{"result": <status>, "errmsg": …}`` with the right status (Tencent reads ``result``; the other
  platforms only the status), and logged as one line without a traceback.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ringback import logs, metrics
from ringback.edge import replies
from ringback.edge.tenants import Network, parse_address

#: Descriptors kept free for the broker connections, the spool, logs and the process itself.
RESERVED_DESCRIPTORS = 256
#: At most one log line per refusal reason in this many seconds (a flood must not flood the log).
REFUSAL_LOG_INTERVAL_S = 5.0
REFUSED_REPLY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n"
HEADER_FIELDS_TOO_LARGE = 431

log = logs.get(__name__)


def descriptor_budget(wanted: int) -> int:
    """The connection cap this process can honour: raise the soft descriptor limit as far as the hard
    limit allows, then keep ``RESERVED_DESCRIPTORS`` of it free for everything else."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted + RESERVED_DESCRIPTORS)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - RESERVED_DESCRIPTORS))


@dataclass
class Admission:
    """Counts open connections, in total and per remote address, and decides who may open one."""

    max_total: int
    max_per_address: int  # 0 = no per-address bound
    #: Load balancers (``trusted_proxies``): each carries many clients, bounded by address further in.
    unbounded: tuple[Network, ...] = ()
    open_total: int = 0
    by_address: Counter[str] = field(default_factory=Counter)
    _last_logged: dict[str, float] = field(default_factory=dict)

    def admit(self, address: str) -> str | None:
        """None when admitted (the caller must ``release`` later), else why not."""
        if self.open_total >= self.max_total:
            return "total_limit"
        if self.max_per_address and self.by_address[address] >= self.max_per_address and not self._unbounded(address):
            return "per_address_limit"
        self.open_total += 1
        self.by_address[address] += 1
        metrics.EDGE_CONNECTIONS.set(self.open_total)
        return None

    def _unbounded(self, address: str) -> bool:
        parsed = parse_address(address) if self.unbounded else None
        return parsed is not None and any(parsed in network for network in self.unbounded)

    def release(self, address: str) -> None:
        self.open_total -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]
        metrics.EDGE_CONNECTIONS.set(self.open_total)

    def refused(self, address: str, reason: str) -> None:
        metrics.EDGE_CONNECTIONS_REFUSED.labels(reason).inc()
        now = time.monotonic()
        if now - self._last_logged.get(reason, 0.0) >= REFUSAL_LOG_INTERVAL_S:
            self._last_logged[reason] = now
            log.warning(
                "connection refused",
                reason=reason,
                remote_addr=address,
                open_connections=self.open_total,
                from_address=self.by_address[address],
                max_total=self.max_total,
                max_per_address=self.max_per_address,
            )


def _peer_address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"


class EdgeRequestHandler(RequestHandler):
    """aiohttp's HTTP protocol with admission, a request-head deadline and vendor-shaped errors."""

    def __init__(self, manager: EdgeServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._admission = manager.admission
        self._header_timeout_s = manager.header_timeout_s
        self._address = ""
        self._admitted = False
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._address = _peer_address(transport)
        refusal = self._admission.admit(self._address)
        if refusal is not None:
            self._admission.refused(self._address, refusal)
            body = replies.error_body("too many connections, please retry")
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(REFUSED_REPLY + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._admission.release(self._address)
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        starts_a_head = self._head_deadline is None and self._current_request is None and not self._messages
        super().data_received(data)
        if self._messages or self._current_request is not None:
            self._cancel_head_deadline()  # the head is complete: the body has a timeout of its own
        elif starts_a_head and not (self._force_close or self._close):
            self._head_deadline = self._loop.call_later(self._header_timeout_s, self._head_expired)

    def _head_expired(self) -> None:
        self._head_deadline = None
        if self._messages or self._current_request is not None:
            return
        metrics.EDGE_PROTOCOL_ERRORS.labels("header_timeout").inc()
        log.warning(
            "request head not received in time, connection closed",
            remote_addr=self._address,
            timeout_s=self._header_timeout_s,
        )
        self.force_close()
        if self.transport is not None:
            self.transport.close()

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if isinstance(exc, LineTooLong):
            status = HEADER_FIELDS_TOO_LARGE
        reason = "bad_request" if status < 500 else "internal_error"
        metrics.EDGE_PROTOCOL_ERRORS.labels(reason).inc()
        log.warning("malformed request", remote_addr=self._address, status=status, error=_one_line(exc, message))
        response = replies.error_response(status, message if status < 500 and message else reason.replace("_", " "))
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp logs with a traceback; one line with the error's type and message is enough."""
        exc = kw.get("exc_info")
        log.error(
            "request failed",
            remote_addr=self._address,
            detail=(args[0] % args[1:]) if args else "",
            error=_one_line(exc if isinstance(exc, BaseException) else None, None),
        )


def _one_line(exc: BaseException | None, message: str | None) -> str:
    if exc is None:
        return message or ""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]


class EdgeServer(web.Server):
    def __init__(self, handler: Any, *, admission: Admission, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.admission = admission
        self.header_timeout_s = header_timeout_s

    def __call__(self) -> RequestHandler:
        return EdgeRequestHandler(self, loop=self._loop, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """An AppRunner whose connections are EdgeRequestHandlers (``server_options`` go to each of them)."""

    def __init__(
        self,
        app: web.Application,
        *,
        admission: Admission,
        header_timeout_s: float,
        server_options: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._admission = admission
        self._header_timeout_s = header_timeout_s
        self._server_options = server_options

    async def _make_server(self) -> web.Server:
        standard = await super()._make_server()  # runs the application's start-up and freezes it
        return EdgeServer(
            standard.request_handler,
            request_factory=standard.request_factory,
            handler_cancellation=standard.handler_cancellation,
            admission=self._admission,
            header_timeout_s=self._header_timeout_s,
            loop=asyncio.get_running_loop(),
            **self._server_options,
        )

"""Running a role: event loop choice, signal handling, the small ops HTTP server of worker roles."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ringback import logs, metrics

#: Set by `ringback run` to its pid: a role whose supervisor vanished (e.g. SIGKILL) stops by itself.
SUPERVISED_ENV = "RINGBACK_SUPERVISOR_PID"
PARENT_CHECK_S = 1.0
#: Signals within this long of the first stop request are the same request delivered again: a stop of
#: the process group reaches `ringback run` from the sender, from `timeout` and from `make` at once.
REPEAT_WINDOW_S = 1.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Background tasks kept referenced until done (the event loop holds only weak references to tasks).
_BACKGROUND: set[asyncio.Task[None]] = set()


def tune_gc(gen0_threshold: int) -> None:
    """For a long-running role: freeze what start-up built out of every later scan, and collect the
    youngest generation less often. Roles allocate a few short-lived dicts per record, so with the
    default threshold (700) a collection ran every few records (about 10 % of the normalizer's time);
    cycles are still collected, just in larger, rarer sweeps."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(gen0_threshold, older, oldest)


def run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a hard dependency on POSIX
        return asyncio.run(main())
    return uvloop.run(main())


def stop_event_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT; a second signal falls back to the default action."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        stop.set()
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    supervisor = os.environ.get(SUPERVISED_ENV)
    if supervisor:
        task = loop.create_task(_stop_when_orphaned(int(supervisor), stop))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
    return stop


@dataclass
class Shutdown:
    """Stop requests to `ringback run`, which keeps handling them to the end: the first sets ``stop``,
    one asked again later sets ``hurry`` (roles killed, not waited for). No signal ever ends the
    process on the spot, so whatever it started is always stopped."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    hurry: asyncio.Event = field(default_factory=asyncio.Event)
    first_at: float | None = None
    requests: int = 0

    def request(self, sig: signal.Signals) -> None:
        now = time.monotonic()
        self.requests += 1
        if self.first_at is None:
            self.first_at = now
            logs.get(__name__).info("stop requested", signal=sig.name)
            self.stop.set()
        elif now - self.first_at > REPEAT_WINDOW_S and not self.hurry.is_set():
            logs.get(__name__).warning(
                "asked again: not waiting for the roles (the broker is still stopped)", signal=sig.name
            )
            self.hurry.set()


def shutdown_on_signals() -> Shutdown:
    shutdown = Shutdown()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, shutdown.request, sig)
    return shutdown


async def _stop_when_orphaned(supervisor_pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != supervisor_pid:
            stop.set()
            return
        await asyncio.sleep(PARENT_CHECK_S)


def ops_app(is_alive: Callable[[], bool], not_ready_reasons: Callable[[], list[str]] = list) -> web.Application:
    """/healthz (alive), /readyz (doing its job, or why not) and /metrics for roles without an HTTP edge."""

    async def healthz(_: web.Request) -> web.Response:
        ok = is_alive()
        return web.json_response({"status": "ok" if ok else "failing"}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        reasons = [] if is_alive() else ["not started or stopping"]
        reasons += not_ready_reasons()
        return web.json_response({"ready": not reasons, "reasons": reasons}, status=503 if reasons else 200)

    async def metrics_view(_: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, bound_port

"""`ringback edge`: serve the vendor-facing HTTP edge until SIGTERM/SIGINT, then stop gracefully."""

from __future__ import annotations

from aiohttp import web

from ringback import logs
from ringback.config import Settings
from ringback.edge.app import create_app
from ringback.runtime import runfiles
from ringback.runtime.lifecycle import stop_event_on_signals, tune_gc

SHUTDOWN_GRACE_S = 10.0

log = logs.get(__name__)


async def serve(settings: Settings) -> int:
    stop = stop_event_on_signals()
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024, reuse_port=settings.reuse_port or None)
    await site.start()
    tune_gc(settings.gc_gen0_threshold)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("edge listening", url=f"http://{settings.host}:{port}", routes=sorted(r.resource.canonical for r in app.router.routes() if r.method == "POST"))
    runfiles.write(settings.run_dir, "edge", {"url": f"http://{settings.host}:{port}"})
    await stop.wait()
    runfiles.remove(settings.run_dir, "edge")
    log.info("edge stopping: no new requests, finishing those in flight")
    # Stops listening, lets in-flight requests finish (their publishes are acknowledged or failed),
    # then runs cleanup: the producer flushes and disconnects.
    await runner.cleanup()
    log.info("edge stopped")
    return 0

"""`ringback edge`: serve the vendor-facing HTTP edge until SIGTERM/SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from ringback import logs
from ringback.config import Settings, trusted_proxy_networks
from ringback.edge.app import INTAKE, TENANTS, create_app
from ringback.edge.connections import Admission, EdgeRunner, descriptor_budget
from ringback.edge.tenants import TenantsError, unmapped
from ringback.runtime import runfiles
from ringback.runtime.lifecycle import stop_event_on_signals, tune_gc
from ringback.runtime.memory import mmap_large_blocks

SHUTDOWN_GRACE_S = 10.0
EXIT_CONFIG_ERROR = 2
LISTEN_BACKLOG = 1024
#: Vendor callbacks carry a handful of headers; aiohttp's defaults allow 128 of 8 KB each.
MAX_HEADERS = 64

log = logs.get(__name__)


async def start_edge(settings: Settings, app: web.Application) -> tuple[EdgeRunner, int]:
    """Serve ``app`` on the configured address with the edge's connection bounds; returns the bound port."""
    max_connections = descriptor_budget(settings.edge_max_connections)
    if max_connections < settings.edge_max_connections:
        log.warning(
            "connection cap lowered to fit the descriptor limit",
            configured=settings.edge_max_connections,
            effective=max_connections,
        )
    runner = EdgeRunner(
        app,
        admission=Admission(
            max_total=max_connections,
            max_per_address=settings.edge_max_connections_per_ip,
            unbounded=tuple(unmapped(network) for network in trusted_proxy_networks(settings)),
        ),
        header_timeout_s=settings.edge_header_timeout_s,
        server_options={
            "access_log": None,
            "keepalive_timeout": settings.edge_idle_timeout_s,
            "max_headers": MAX_HEADERS,
            # Bodies are decoded by the handler (ringback.edge.bodies): bounded, measured, refused in the vendor's
            # shape when they do not decode.
            "auto_decompress": False,
        },
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )
    await runner.setup()
    site = web.TCPSite(
        runner, settings.host, settings.port, backlog=LISTEN_BACKLOG, reuse_port=settings.reuse_port or None
    )
    await site.start()
    return runner, runner.addresses[0][1]


async def serve(settings: Settings) -> int:
    stop = stop_event_on_signals()
    mmap_large_blocks()  # callback bodies are freed back to the system, not kept in the heap
    try:
        app = create_app(settings)
    except TenantsError as exc:
        log.error("tenants file refused", error=str(exc))
        return EXIT_CONFIG_ERROR
    runner, port = await start_edge(settings, app)
    # `ringback run` signals a restart of the embedded broker: what it held is gone, publish again.
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, app[INTAKE].broker_restarted)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, app[TENANTS].reload)  # a reload without a restart
    tune_gc(settings.gc_gen0_threshold)
    log.info(
        "edge listening",
        url=f"http://{settings.host}:{port}",
        routes=sorted(
            r.resource.canonical for r in app.router.routes() if r.method == "POST" and r.resource is not None
        ),
    )
    runfiles.write(settings.run_dir, "edge", {"url": f"http://{settings.host}:{port}"})
    await stop.wait()
    runfiles.remove(settings.run_dir, "edge")
    log.info("edge stopping: no new requests, finishing those in flight")
    # Stops listening, lets in-flight requests finish (their publishes are acknowledged or failed),
    # then runs cleanup: the producer flushes and disconnects.
    await runner.cleanup()
    log.info("edge stopped")
    return 0

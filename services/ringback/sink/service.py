"""Running the sink role: worker, ops endpoint (/metrics, /healthz) and the read-only query endpoint.

The data directory and the embedded store are made private to their owner (mode 0700) before the store
opens, also when they were created by an earlier version with the process's default permissions."""

from __future__ import annotations

from aiohttp import web

from ringback import logs
from ringback.config import Settings
from ringback.runtime import clickhouse, runfiles
from ringback.runtime.lifecycle import ops_app, start_site, stop_event_on_signals, tune_gc
from ringback.sink import http_interface
from ringback.sink.analysts import AnalystSource
from ringback.sink.query_endpoint import LOOPBACK, RUN_FILE, new_token, query_app
from ringback.sink.worker import Sink

log = logs.get(__name__)


async def serve(settings: Settings) -> int:
    stop = stop_event_on_signals()
    analysts = AnalystSource(settings.analysts_file) if settings.embedded_clickhouse else None  # a bad file stops here
    clickhouse.make_store_private(settings.data_path, clickhouse.embedded_store(settings.effective_clickhouse_dsn))
    sink = Sink(settings)
    await sink.start()
    tune_gc(settings.gc_gen0_threshold)
    ops_runner, ops_port = await start_site(
        ops_app(lambda: sink.healthy, sink.ready_reasons), settings.host, settings.metrics_port
    )
    query_runner = None
    if settings.embedded_clickhouse:
        token = new_token()
        query_runner, query_port = await start_site(query_app(sink.query, token), LOOPBACK, settings.sink_query_port)
        runfiles.write(settings.run_dir, RUN_FILE, {"url": f"http://{LOOPBACK}:{query_port}/query", "token": token})
    sql_http_runner = None
    if analysts is not None and settings.sql_http_port:
        sql_http_runner = await _start_sql_http(settings, analysts, sink)
    runfiles.write(settings.run_dir, "sink", {"metrics": f"http://{settings.host}:{ops_port}/metrics"})
    log.info("sink running", metrics=f"http://{settings.host}:{ops_port}/metrics")
    try:
        await sink.run(stop)
    finally:
        log.info("sink stopping: flushing the last batch")
        runfiles.remove(settings.run_dir, "sink")
        if sql_http_runner is not None and analysts is not None:
            runfiles.remove(settings.run_dir, http_interface.RUN_FILE)
            await analysts.stop()
            await sql_http_runner.cleanup()
        if query_runner is not None:
            runfiles.remove(settings.run_dir, RUN_FILE)
            await query_runner.cleanup()
        await sink.stop()
        await ops_runner.cleanup()
    log.info("sink stopped")
    return 0


async def _start_sql_http(settings: Settings, analysts: AnalystSource, sink: Sink) -> web.AppRunner | None:
    """The ClickHouse HTTP interface; a port it cannot take leaves it off (logged), never ingestion."""
    interface = http_interface.HttpInterface(analysts, sink.query_as)
    try:
        runner, port = await start_site(interface.app(), settings.sql_http_host, settings.sql_http_port)
    except OSError as exc:
        log.error(
            "ClickHouse HTTP interface not started: its address is not available (--sql-http-port)",
            host=settings.sql_http_host,
            port=settings.sql_http_port,
            error=str(exc),
        )
        return None
    url = f"http://{settings.sql_http_host}:{port}/"
    runfiles.write(settings.run_dir, http_interface.RUN_FILE, {"url": url})
    analysts.start()
    if analysts.current is None:
        log.warning(
            "ClickHouse HTTP interface without an analysts file: loopback clients only, as default, every tenant",
            url=url,
        )
    else:
        log.info("ClickHouse HTTP interface", url=url, analysts=len(analysts.current))
    return runner

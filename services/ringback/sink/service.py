"""Running the sink role: worker, ops endpoint (/metrics, /healthz) and the read-only query endpoint.

The data directory and the embedded store are made private to their owner (mode 0700) before the store
opens, also when they were created by an earlier version with the process's default permissions."""

from __future__ import annotations

from ringback import logs
from ringback.config import Settings
from ringback.runtime import clickhouse, runfiles
from ringback.runtime.lifecycle import ops_app, start_site, stop_event_on_signals, tune_gc
from ringback.sink.query_endpoint import LOOPBACK, RUN_FILE, new_token, query_app
from ringback.sink.worker import Sink

log = logs.get(__name__)


async def serve(settings: Settings) -> int:
    stop = stop_event_on_signals()
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
    runfiles.write(settings.run_dir, "sink", {"metrics": f"http://{settings.host}:{ops_port}/metrics"})
    log.info("sink running", metrics=f"http://{settings.host}:{ops_port}/metrics")
    try:
        await sink.run(stop)
    finally:
        log.info("sink stopping: flushing the last batch")
        runfiles.remove(settings.run_dir, "sink")
        if query_runner is not None:
            runfiles.remove(settings.run_dir, RUN_FILE)
            await query_runner.cleanup()
        await sink.stop()
        await ops_runner.cleanup()
    log.info("sink stopped")
    return 0

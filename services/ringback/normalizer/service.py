"""Running the normalizer role: worker plus its ops endpoint (/metrics, /healthz)."""

from __future__ import annotations

from ringback import logs
from ringback.config import Settings
from ringback.normalizer import phones
from ringback.normalizer.worker import Normalizer
from ringback.runtime import runfiles
from ringback.runtime.lifecycle import ops_app, start_site, stop_event_on_signals, tune_gc

log = logs.get(__name__)


async def serve(settings: Settings) -> int:
    stop = stop_event_on_signals()
    worker = Normalizer(settings)
    await worker.start()
    tune_gc(settings.gc_gen0_threshold)
    ops_runner, ops_port = await start_site(
        ops_app(lambda: worker.healthy, worker.ready_reasons), settings.host, settings.metrics_port
    )
    log.info("normalizer running", metrics=f"http://{settings.host}:{ops_port}/metrics")
    if not phones.SEGMENTS.loaded:
        log.warning(
            "no table of mobile segments taken: each is looked up the first time it is met (slower); "
            "`python -m ringback.tools.segments` builds it",
            reason=phones.SEGMENT_TABLE_REFUSED,
        )
    runfiles.write(settings.run_dir, "normalizer", {"metrics": f"http://{settings.host}:{ops_port}/metrics"})
    try:
        await worker.run(stop)
    finally:
        log.info("normalizer stopping")
        runfiles.remove(settings.run_dir, "normalizer")
        await worker.stop()
        await ops_runner.cleanup()
    log.info("normalizer stopped")
    return 0

"""Recycling the embedded broker without leaving a topic consumer behind.

`ringback run` restarts the embedded broker on purpose when it holds more than
``embedded_broker_max_mb`` (Tansu never gives memory back), or when asked: a file
``<run_dir>/recycle-broker`` appears (``touch data/run/recycle-broker``; it is removed when taken).
What the old broker held is gone with it. Nothing of ringback's own is lost — the edge publishes again
whatever its journal still holds — but a billing job on the normalized topic that has not read
everything yet would never see the rest. So before a recycle the supervisor waits until every consumer
group with committed offsets on the normalized topic (ringback's own groups aside) has committed up to
the end of every partition, for at most ``embedded_broker_recycle_wait_s``. Waiting shows as a log line
and ``ringback_run_recycle_waiting_seconds``; a recycle that goes ahead with a group still behind logs
an error and counts in ``ringback_run_broker_recycles_total{outcome="consumers_behind"}``.

The supervisor serves these metrics on ``/metrics`` of a port of its own, named in
``<run_dir>/supervisor.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ringback import logs, metrics
from ringback.config import Settings
from ringback.runtime import kafka, runfiles
from ringback.runtime.lifecycle import ops_app, start_site

RECYCLE_REQUEST = "recycle-broker"
SUPERVISOR_RUN_FILE = "supervisor"
POLL_S = 1.0
#: How long one look for messages after a group's committed offsets waits, and how many it counts at most.
LOOK_S = 1.0
LOOK_RECORDS = 10_000
CAUGHT_UP = "caught_up"
CONSUMERS_BEHIND = "consumers_behind"

log = logs.get(__name__)


async def serve_metrics(settings: Settings) -> None:
    """The supervisor's /metrics (the recycle gate's), on a free port named in its run file."""
    for outcome in (CAUGHT_UP, CONSUMERS_BEHIND):
        metrics.RUN_BROKER_RECYCLES.labels(outcome=outcome)
    _, port = await start_site(ops_app(lambda: True), settings.host, 0)
    runfiles.write(settings.run_dir, SUPERVISOR_RUN_FILE, {"metrics": f"http://{settings.host}:{port}/metrics"})


def reason_to_recycle(settings: Settings, rss_mb: float) -> str | None:
    """Why the broker should be recycled now (None: it should not). Taking a request removes its file."""
    if rss_mb > settings.embedded_broker_max_mb:
        return f"holds {round(rss_mb)} MB, more than embedded_broker_max_mb ({settings.embedded_broker_max_mb})"
    request = settings.run_dir / RECYCLE_REQUEST
    if request.exists():
        request.unlink(missing_ok=True)
        return f"asked to ({request})"
    return None


async def wait_for_consumers(settings: Settings, stop: asyncio.Event) -> bool:
    """Wait until no consumer group is behind on the normalized topic, at most
    ``embedded_broker_recycle_wait_s`` (or until ``stop``); True when none is."""
    started = time.monotonic()
    deadline = started + settings.embedded_broker_recycle_wait_s
    behind: dict[str, int] = {}
    said = False
    try:
        while True:
            try:
                behind = await groups_behind(settings)
            except Exception as exc:  # a look that fails must never stop the broker's watch: it recycles
                log.warning("could not tell whether topic consumers are behind", error=repr(exc))
                behind = {}
            waited = time.monotonic() - started
            if not behind:
                metrics.RUN_BROKER_RECYCLES.labels(outcome=CAUGHT_UP).inc()
                if said:
                    log.info("topic consumers caught up: recycling the embedded broker", waited_s=round(waited, 1))
                return True
            metrics.RUN_RECYCLE_WAITING.set(waited)
            if time.monotonic() >= deadline or stop.is_set():
                metrics.RUN_BROKER_RECYCLES.labels(outcome=CONSUMERS_BEHIND).inc()
                log.error(
                    "recycling the embedded broker with topic consumers behind: they lose what it holds",
                    behind=behind,
                    waited_s=round(waited, 1),
                    topic=settings.topic_normalized,
                )
                return False
            if not said:
                said = True
                log.warning(
                    "waiting for topic consumers to catch up before recycling the embedded broker",
                    behind=behind,
                    max_wait_s=settings.embedded_broker_recycle_wait_s,
                    topic=settings.topic_normalized,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
    finally:
        metrics.RUN_RECYCLE_WAITING.set(0)


async def groups_behind(settings: Settings) -> dict[str, int]:
    """Consumer group -> messages of the normalized topic after its committed offsets (as many as one
    look finds), for every group with a committed offset on the topic that is behind (ringback's own
    groups aside: the edge's journal makes up for what they lose).

    Behind is told by reading from the committed offsets, not by the topic's end offsets: the embedded
    broker answers those wrongly once records arrive in batches (the start of the last batch)."""
    own = {settings.normalizer_group, settings.sink_group}
    groups = [group for group in await kafka.consumer_groups(settings) if group not in own]
    behind: dict[str, int] = {}
    for group in groups:
        committed = await kafka.committed_offsets(settings, group, settings.topic_normalized)
        if committed:  # else no offsets on this topic: a group of another topic, or one that never committed
            unread = await kafka.count_from(settings, settings.topic_normalized, committed, LOOK_S, LOOK_RECORDS)
            if unread:
                behind[group] = unread
    return behind

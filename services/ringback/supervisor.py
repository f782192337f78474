"""`ringback run`: the whole pipeline in one command.

Starts the embedded broker (unless an external Kafka is configured), creates the topics, then runs
sink, normalizer and edge as child processes — the same role commands production runs — restarts a
role that dies, and on Ctrl-C/SIGTERM stops them in flow order: edge first (no new intake), then the
normalizer and the sink (each drains what is already queued and commits), then the broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from ringback import logs
from ringback.config import Settings
from ringback.runtime import kafka, runfiles
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.lifecycle import SUPERVISED_ENV, stop_event_on_signals

#: Start order; shutdown runs it backwards so that nothing upstream writes into a stopped stage.
ROLES = ("sink", "normalizer", "edge")
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 30.0
BROKER_CHECK_S = 0.5
CONSUMER_ROLES = ("normalizer", "sink")  # a role that ran this long before dying restarts with the shortest backoff

log = logs.get(__name__)


@dataclass
class Child:
    role: str
    settings: Settings
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = field(default=0)

    async def spawn(self) -> None:
        env = {**os.environ, **self.settings.as_env(), SUPERVISED_ENV: str(os.getpid())}
        # A session of its own: Ctrl-C reaches only the supervisor, which stops the roles in order.
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ringback", self.role, env=env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        self.started_at = time.monotonic()
        log.info("role started", role=self.role, pid=self.process.pid)

    async def wait_ready(self) -> dict[str, str]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self.process is not None
        while time.monotonic() < deadline:
            info = runfiles.read_live(self.settings.run_dir, self.role)
            if info and info.get("pid") == self.process.pid:
                return info
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.role} exited with code {self.process.returncode} while starting")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.role} did not become ready within {READY_TIMEOUT_S:.0f}s")

    async def stop(self) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            log.error("role did not stop in time, killing it", role=self.role, grace_s=STOP_GRACE_S)
            self.process.kill()
            return await self.process.wait()


async def run_all(settings: Settings) -> int:
    stop = stop_event_on_signals()
    broker: EmbeddedBroker | None = None
    if settings.embedded_kafka:
        broker = EmbeddedBroker(port=settings.kafka_port)
        settings = settings.replace(kafka_bootstrap=broker.start())
    children: list[Child] = []
    try:
        await kafka.ensure_topics(settings)
        _write_run_file(settings, broker)
        # The roles only meet through Kafka, so they start side by side; the banner waits for all.
        for role in ROLES:
            child = Child(role, settings.replace(metrics_port=0) if role != "edge" else settings)
            children.append(child)
            await child.spawn()
        infos = await asyncio.gather(*(child.wait_ready() for child in children))
        ready = {child.role: info for child, info in zip(children, infos)}
        print_banner(settings, ready, embedded_broker=broker is not None)
        watchdog = asyncio.create_task(watch_broker(broker, settings, stop, children)) if broker is not None else None
        await supervise(children, stop)
        if watchdog is not None:
            watchdog.cancel()
        return 0
    finally:
        for child in reversed(children):
            code = await child.stop()
            log.info("role stopped", role=child.role, exit_code=code)
        runfiles.remove(settings.run_dir, "run")
        if broker is not None:
            broker.stop()


def _write_run_file(settings: Settings, broker: EmbeddedBroker | None) -> None:
    broker_pid = broker.process.pid if broker is not None and broker.process is not None else None
    runfiles.write(settings.run_dir, "run", {"kafka_bootstrap": settings.kafka_bootstrap, "clickhouse_dsn": settings.effective_clickhouse_dsn, "broker_pid": broker_pid})


async def watch_broker(broker: EmbeddedBroker, settings: Settings, stop: asyncio.Event, children: list[Child]) -> None:
    """Restart the embedded broker on its port if it dies. What it held in memory is gone; what the
    edge could not publish meanwhile waits in its spool. The consumers are restarted too: their read
    positions belong to the old broker's topics, which now start again at offset 0."""
    while not stop.is_set():
        await asyncio.sleep(BROKER_CHECK_S)
        if broker.process is None or broker.process.poll() is None or stop.is_set():
            continue
        log.error("embedded broker died, restarting it", exit_code=broker.process.returncode, bootstrap=broker.bootstrap)
        try:
            await asyncio.to_thread(broker.start)
            await kafka.ensure_topics(settings)
        except Exception as exc:  # keep watching: the next round tries again
            log.error("embedded broker restart failed", error=str(exc))
            continue
        _write_run_file(settings, broker)
        for child in children:
            if child.role in CONSUMER_ROLES and child.process is not None and child.process.returncode is None:
                # No drain: their state belongs to the dead broker. Nothing is lost by killing them, as
                # they commit only what is stored downstream; supervise() starts them again.
                child.process.send_signal(signal.SIGKILL)


async def supervise(children: list[Child], stop: asyncio.Event) -> None:
    """Wait for the stop signal; restart any role that dies meanwhile, with backoff."""
    stop_wait = asyncio.ensure_future(stop.wait())
    while not stop.is_set():
        exits = {asyncio.ensure_future(c.process.wait()): c for c in children if c.process is not None}
        done, _ = await asyncio.wait({stop_wait, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for future in exits:
            if future not in done:
                future.cancel()
        if stop.is_set():
            break
        for future in done:
            child = exits.get(future)
            if child is None:
                continue
            ran_for = time.monotonic() - child.started_at
            if ran_for >= STABLE_AFTER_S:
                child.restarts = 0
            delay = RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]
            log.error("role died, restarting", role=child.role, exit_code=future.result(), restart_in_s=delay)
            child.restarts += 1
            try:
                await asyncio.wait_for(asyncio.shield(stop_wait), delay)
                break
            except asyncio.TimeoutError:
                await child.spawn()
    stop_wait.cancel()


def print_banner(settings: Settings, ready: dict[str, dict[str, str]], embedded_broker: bool) -> None:
    edge = ready["edge"]["url"]
    kafka_note = "embedded Tansu, in memory" if embedded_broker else "external"
    store_note = "embedded chDB" if settings.embedded_clickhouse else "server"
    data_dir_flag = f" --data-dir {settings.data_dir}" if settings.data_dir != "./data" else ""
    lines = [
        "",
        "ringback is running",
        f"  edge         {edge}/callbacks/...   health {edge}/healthz   ready {edge}/readyz",
        f"  metrics      edge {edge}/metrics   normalizer {ready['normalizer']['metrics']}   sink {ready['sink']['metrics']}",
        f"  kafka        {settings.kafka_bootstrap} ({kafka_note}); topics {settings.topic_raw}, {settings.topic_normalized}, {settings.topic_dlq}",
        f"  clickhouse   {settings.effective_clickhouse_dsn} ({store_note}); tables ringback.events, ringback.events_dedup, ringback.dead_letters",
        "",
        "  send one:    curl -s -X POST -H 'Content-Type: application/json' \\",
        f"                 {edge}/callbacks/tencent/sms-status \\",
        """                 -d '[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13800138000","report_status":"SUCCESS","errmsg":"DELIVRD","description":"The SMS message is successfully delivered","sid":"demo-1"}]'""",
        f"  query it:    ringback sql{data_dir_flag} \"SELECT event_type, status, to_e164, occurred_at FROM ringback.events_dedup\"",
        "",
        "  Ctrl-C stops everything (edge first, then normalizer and sink drain and commit).",
        "",
    ]
    print("\n".join(lines), flush=True)

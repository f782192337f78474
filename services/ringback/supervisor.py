"""`ringback run`: the whole pipeline in one command.

Starts the embedded broker (unless an external Kafka is configured), creates the topics, then runs
sink, normalizer and edge as child processes — the same role commands production runs — restarts a
role that dies, and on Ctrl-C/SIGTERM stops them in flow order: edge first (no new intake), then the
normalizer and the sink (each drains what is already queued and commits), then the broker. Stop signals
stay handled to the end: asked again, it kills the roles instead of waiting for them, and still stops
the broker (which dies with this process anyway if it is killed; see runtime/broker.py).

With the embedded broker the edge journals every callback until the sink stored it (``edge_journal``),
which is what makes the broker's memory expendable: the broker is watched from the first second and
restarted if it dies, and restarted on purpose when it holds more than ``embedded_broker_max_mb``
(Tansu never gives memory back). Either way the edge is told, and publishes again what it still holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ringback import logs
from ringback.config import Settings
from ringback.runtime import kafka, recycle_gate, runfiles
from ringback.runtime.broker import EmbeddedBroker
from ringback.runtime.lifecycle import SUPERVISED_ENV, Shutdown, shutdown_on_signals

#: Start order; shutdown runs it backwards so that nothing upstream writes into a stopped stage.
ROLES = ("sink", "normalizer", "edge")
READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.05
EXIT_CONFIG_ERROR = 2
STOP_GRACE_S = 30.0
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_S = 30.0
BROKER_CHECK_S = 0.5
#: Under `ringback run`, ``metrics_port`` (when not 0) is the normalizer's ops port and the next one the sink's.
OPS_PORT_OFFSET = {"normalizer": 0, "sink": 1}
CONSUMER_ROLES = ("normalizer", "sink")  # a role that ran this long before dying restarts with the shortest backoff

#: The banner's first line, once every role is ready (what waits on a started `ringback run` looks for).
RUNNING_LINE = "ringback is running"
log = logs.get(__name__)


@dataclass
class Child:
    role: str
    settings: Settings
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = field(default=0)
    #: Set when the supervisor stops the role itself (the broker was restarted under it): its exit is expected.
    stopped_on_purpose: bool = False

    async def spawn(self) -> None:
        env = {**os.environ, **self.settings.as_env(), SUPERVISED_ENV: str(os.getpid())}
        # A session of its own: Ctrl-C reaches only the supervisor, which stops the roles in order.
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ringback",
            self.role,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        log.info("role started", role=self.role, pid=self.process.pid)

    def ready_info(self) -> dict[str, str] | None:
        """What the role published about itself once up (None while starting or dead)."""
        if self.process is None or self.process.returncode is not None:
            return None
        info = runfiles.read_live(self.settings.run_dir, self.role)
        return info if info and info.get("pid") == self.process.pid else None

    async def stop(self, hurry: asyncio.Event) -> int | None:
        """Ask the role to stop and wait up to STOP_GRACE_S; kill it then, or as soon as ``hurry`` is set."""
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        exited = asyncio.ensure_future(self.process.wait())
        hurried = asyncio.ensure_future(hurry.wait())
        await asyncio.wait({exited, hurried}, timeout=STOP_GRACE_S, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        if not exited.done():
            if hurry.is_set():
                log.warning("killing the role instead of waiting for it", role=self.role)
            else:
                log.error("role did not stop in time, killing it", role=self.role, grace_s=STOP_GRACE_S)
            self.process.kill()
        return await exited


def child_settings(settings: Settings, embedded_broker: bool) -> Settings:
    """What the roles run with: the broker's address, and journal mode decided here, where it is known
    that the broker is the embedded one (the roles only see an address)."""
    if settings.edge_journal == "auto":
        settings = settings.replace(edge_journal="on" if embedded_broker else "off")
    return settings


def role_settings(settings: Settings, role: str) -> Settings:
    """A worker role's ops port: ``metrics_port`` for the normalizer, the next one for the sink (0: free ports)."""
    if role == "edge":
        return settings
    port = settings.metrics_port + OPS_PORT_OFFSET[role] if settings.metrics_port else 0
    return settings.replace(metrics_port=port)


async def run_all(settings: Settings) -> int:
    shutdown = shutdown_on_signals()
    broker = EmbeddedBroker(port=settings.kafka_port, owner_dir=settings.run_dir) if settings.embedded_kafka else None
    try:
        if broker is not None:
            broker.spawn()  # here, on the main thread: the broker is tied to this process's life
            await asyncio.to_thread(broker.wait_ready)
            settings = settings.replace(kafka_bootstrap=broker.bootstrap)
        if shutdown.stop.is_set():  # asked to stop while the broker started
            return 0
        return await run_roles(child_settings(settings, embedded_broker=broker is not None), broker, shutdown)
    finally:
        if broker is not None:
            broker.stop(hurry=shutdown.hurry.is_set())


async def run_roles(settings: Settings, broker: EmbeddedBroker | None, shutdown: Shutdown) -> int:
    stop = shutdown.stop
    if broker is not None and not settings.journal_enabled:
        log.warning(
            "embedded broker without the edge journal: a broker crash loses what it held, and its memory is not bounded"
        )
    children: list[Child] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        if broker is not None:  # watched from the first second: a death during start-up is repaired too
            tasks.append(asyncio.create_task(watch_broker(broker, settings, stop, children)))
        await kafka.ensure_topics(settings)
        _write_run_file(settings, broker)
        # The roles only meet through Kafka, so they start side by side; the banner waits for all.
        for role in ROLES:
            child = Child(role, role_settings(settings, role))
            children.append(child)
            await child.spawn()
        tasks.append(asyncio.create_task(announce_when_ready(settings, children, embedded_broker=broker is not None)))
        return await supervise(children, stop)
    finally:
        for task in tasks:
            task.cancel()
        for child in reversed(children):
            code = await child.stop(shutdown.hurry)
            log.info("role stopped", role=child.role, exit_code=code)
        runfiles.remove(settings.run_dir, "run")


def _write_run_file(settings: Settings, broker: EmbeddedBroker | None) -> None:
    broker_pid = broker.process.pid if broker is not None and broker.process is not None else None
    runfiles.write(
        settings.run_dir,
        "run",
        {
            "kafka_bootstrap": settings.kafka_bootstrap,
            "clickhouse_dsn": settings.effective_clickhouse_dsn,
            "broker_pid": broker_pid,
        },
    )


async def announce_when_ready(settings: Settings, children: list[Child], embedded_broker: bool) -> None:
    """Print the banner once every role is up; a role that dies meanwhile is restarted by supervise()."""
    deadline: float | None = time.monotonic() + READY_TIMEOUT_S
    while True:
        infos = {child.role: child.ready_info() for child in children}
        if all(infos.values()):
            print_banner(
                settings, {role: info for role, info in infos.items() if info}, embedded_broker=embedded_broker
            )
            return
        if deadline is not None and time.monotonic() > deadline:
            log.error(
                "roles not ready yet; still trying", waiting_for=[role for role, info in infos.items() if not info]
            )
            deadline = None  # said once
        await asyncio.sleep(READY_POLL_S)


def broker_rss_mb(broker: EmbeddedBroker) -> float:
    if broker.process is None:
        return 0.0
    try:
        status = Path(f"/proc/{broker.process.pid}/status").read_text()
    except OSError:
        return 0.0
    return int(status.split("VmRSS:")[1].split()[0]) / 1024 if "VmRSS:" in status else 0.0


async def watch_broker(broker: EmbeddedBroker, settings: Settings, stop: asyncio.Event, children: list[Child]) -> None:
    """Restart the embedded broker on its port if it dies, or on purpose once it holds more memory than
    ``embedded_broker_max_mb`` (journal mode only: then nothing the broker held is needed). What it held
    is gone: the edge publishes again what its journal holds, and the consumers are restarted, their
    read positions belonging to the old broker's topics. A recycle first waits for topic consumers
    (see runtime/recycle_gate.py)."""
    await recycle_gate.serve_metrics(settings)
    while not stop.is_set():
        await asyncio.sleep(BROKER_CHECK_S)
        if stop.is_set():
            continue
        if broker.process is None:  # the last restart failed
            log.error("embedded broker not running, starting it again", bootstrap=broker.bootstrap)
        elif broker.process.poll() is not None:
            log.error(
                "embedded broker died, restarting it", exit_code=broker.process.returncode, bootstrap=broker.bootstrap
            )
        elif settings.journal_enabled and (reason := recycle_gate.reason_to_recycle(settings, broker_rss_mb(broker))):
            log.warning("embedded broker to be recycled, recycling it", reason=reason)
            await recycle_gate.wait_for_consumers(settings, stop)
            await asyncio.to_thread(broker.stop)
        else:
            continue
        await restart_broker(broker, settings, children)


async def restart_broker(broker: EmbeddedBroker, settings: Settings, children: list[Child]) -> None:
    try:
        broker.spawn()  # on the main thread, like the first start
        await asyncio.to_thread(broker.wait_ready)
        await kafka.ensure_topics(settings)
    except Exception as exc:  # keep watching: the next round tries again
        log.error("embedded broker restart failed", error=str(exc))
        return
    _write_run_file(settings, broker)
    for child in children:
        if child.process is None or child.process.returncode is not None:
            continue
        if child.role in CONSUMER_ROLES:
            # No drain: their state belongs to the dead broker. Nothing is lost by killing them, as
            # they commit only what is stored downstream; supervise() starts them again.
            child.stopped_on_purpose = True
            child.process.send_signal(signal.SIGKILL)
        else:
            child.process.send_signal(signal.SIGUSR1)  # the edge: publish again what the journal holds


async def supervise(children: list[Child], stop: asyncio.Event) -> int:
    """Wait for the stop signal; restart any role that dies meanwhile, with backoff. A role that
    refuses its configuration (exit code 2) is not restarted: `ringback run` stops with that code."""
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
            if child.stopped_on_purpose:
                child.stopped_on_purpose = False
                log.info("role restarting on the new broker", role=child.role)
                await child.spawn()
                continue
            if future.result() == EXIT_CONFIG_ERROR:
                log.error("role refused its configuration; stopping", role=child.role)
                stop_wait.cancel()
                return EXIT_CONFIG_ERROR
            ran_for = time.monotonic() - child.started_at
            if ran_for >= STABLE_AFTER_S:
                child.restarts = 0
            delay = RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]
            log.error("role died, restarting", role=child.role, exit_code=future.result(), restart_in_s=delay)
            child.restarts += 1
            try:
                await asyncio.wait_for(asyncio.shield(stop_wait), delay)
                break
            except TimeoutError:
                await child.spawn()
    stop_wait.cancel()
    return 0


#: The route of the banner's sample callback.
SAMPLE_ROUTE = "tencent/sms-status"


def sample_url(settings: Settings, edge: str) -> str:
    """Where the banner's sample goes: the tenant-less route, or, when a tenants file closes it, the
    first tenant's URL with a placeholder for its secret (never printed)."""
    anonymous = f"{edge}/callbacks/{SAMPLE_ROUTE}"
    if not settings.tenants_file:
        return anonymous
    from ringback.edge.tenants import TenantsError, load

    try:
        table = load(Path(settings.tenants_file))
    except TenantsError:
        return anonymous  # the edge says what is wrong with the file
    if table.allow_anonymous or not table.by_id:
        return anonymous
    return f"{edge}/t/{min(table.by_id)}/<secret>/callbacks/{SAMPLE_ROUTE}"


def print_banner(settings: Settings, ready: dict[str, dict[str, str]], embedded_broker: bool) -> None:
    edge = ready["edge"]["url"]
    kafka_note = "embedded Tansu, in memory" if embedded_broker else "external"
    store_note = "embedded chDB" if settings.embedded_clickhouse else "server"
    data_dir_flag = f" --data-dir {settings.data_dir}" if settings.data_dir != "./data" else ""
    lines = [
        "",
        RUNNING_LINE,
        f"  edge         {edge}/callbacks/...   health {edge}/healthz   ready {edge}/readyz",
        (
            f"  metrics      edge {edge}/metrics   normalizer {ready['normalizer']['metrics']}   sink "
            f"{ready['sink']['metrics']}"
        ),
        (
            f"  kafka        {settings.kafka_bootstrap} ({kafka_note}); topics {settings.topic_raw}, "
            f"{settings.topic_normalized}, {settings.topic_dlq}"
        ),
        (
            f"  clickhouse   {settings.effective_clickhouse_dsn} ({store_note}); tables ringback.events (exact), "
            "ringback.dead_letters, ringback.event_conflicts"
        ),
        "",
        "  send one:    curl -s -X POST -H 'Content-Type: application/json' \\",
        f"                 {sample_url(settings, edge)} \\",
        (
            """                 -d '[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","""
            """"mobile":"13800138000","report_status":"SUCCESS","errmsg":"DELIVRD","""
            """"description":"The SMS message is successfully delivered","sid":"demo-1"}]'"""
        ),
        (
            f'  query it:    ringback sql{data_dir_flag} "SELECT event_type, status, to_e164, occurred_at FROM '
            'ringback.events"'
        ),
        "",
        "  Ctrl-C or SIGTERM stops everything: the edge first, normalizer and sink drain and commit, the broker last.",
        "",
    ]
    print("\n".join(lines), flush=True)

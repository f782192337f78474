"""A load run: bodies sent over keep-alive connections at a rate or as fast as they go, resends and
malformed bodies mixed in, and the summary of what was accepted and which events to expect."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ringback.tools.loadgen.connection import Connection, HttpError
from ringback.tools.loadgen.leakage import Leakage
from ringback.tools.loadgen.parties import DEFAULT_APPS, Tenant
from ringback.tools.loadgen.traffic import DEFAULT_MIX, TAG_IN_EXTEND, Generated, TrafficMaker

REQUEST_TIMEOUT_S = 30.0
#: A resend repeats one of the last this many bodies accepted (vendors retry recent pushes; memory stays bounded).
RESEND_WINDOW = 10_000


@dataclass
class LoadSummary:
    tag: str
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    resends: int = 0
    malformed: int = 0
    expected_events: int = (
        0  # unique events the accepted well-formed bodies normalize to, with the run tag in a vendor id
    )
    expected_replies: int = 0  # the same for SMS replies, with the run tag in attributes['extend'] (see TAG_IN_EXTEND)
    by_route: Counter[str] = field(default_factory=Counter)
    by_tenant: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    accepted_at: dict[str, float] = field(default_factory=dict)  # body key -> wall time of its first success
    #: Keys sent more than once: when their row became queryable depends on which copy arrived first.
    resent_keys: set[str] = field(default_factory=set)

    def percentile(self, p: float) -> float:
        if not self.latencies_s:
            return 0.0
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "sent": self.sent,
            "accepted": self.accepted,
            "failed": self.failed,
            "resends": self.resends,
            "malformed": self.malformed,
            "expected_events": self.expected_events,
            "expected_replies": self.expected_replies,
            "rate_per_s": round(self.rate, 1),
            "latency_ms": {f"p{p}": round(self.percentile(p) * 1000, 2) for p in (50, 90, 99, 100)},
            "by_route": dict(self.by_route),
            "by_tenant": dict(self.by_tenant),
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }

    def render(self) -> str:
        lines = [
            (
                f"loadgen {self.tag}: sent {self.sent} in {self.elapsed_s:.1f}s ({self.rate:.0f}/s), accepted "
                f"{self.accepted}, failed {self.failed}"
            ),
            (
                f"  resends {self.resends}, malformed {self.malformed}, unique events expected {self.expected_events} "
                f"(and SMS replies {self.expected_replies})"
            ),
            "  latency ms: " + "  ".join(f"p{p} {self.percentile(p) * 1000:.1f}" for p in (50, 90, 99, 100)),
            "  statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())),
            "  routes: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.by_route.items())),
        ]
        if any(self.by_tenant):
            lines.append("  tenants: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.by_tenant.items())))
        return "\n".join(lines)


@dataclass
class LoadPlan:
    url: str
    requests: int = 0  # 0 = until duration ends
    duration_s: float = 10.0
    rate: float = 0.0  # requests per second, 0 = as fast as the connections allow
    connections: int = 32
    resend_share: float = 0.05
    malformed_share: float = 0.01
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    seed: int = 7
    tag: str = field(default_factory=lambda: "lg" + uuid.uuid4().hex[:8])
    tenants: list[Tenant] = field(default_factory=list)  # none: the tenant-less routes
    apps: int = DEFAULT_APPS
    leakage: Leakage = field(default_factory=Leakage)  # CDRs dropped, receipts stuck, the statement


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        route, _, weight = part.partition("=")
        if route.strip() not in DEFAULT_MIX:
            raise ValueError(f"unknown route {route!r}; known: {', '.join(DEFAULT_MIX)}")
        mix[route.strip()] = int(weight or 1)
    return mix


async def run(plan: LoadPlan, show_progress: bool = True) -> LoadSummary:
    maker = TrafficMaker(plan.tag, plan.mix, plan.seed, tenants=plan.tenants, apps=plan.apps, leakage=plan.leakage)
    summary = LoadSummary(tag=plan.tag)
    sent_ok: list[Generated] = []  # the last RESEND_WINDOW well-formed bodies accepted
    remembered = 0
    counted: set[str] = set()
    deadline = time.monotonic() + plan.duration_s if not plan.requests else float("inf")
    issued = 0
    start = time.monotonic()
    progress = _progress(show_progress, plan)

    def next_body() -> Generated | float | None:
        """The next body to send; a float: wait until that monotonic time; None: done."""
        nonlocal issued
        if (plan.requests and issued >= plan.requests) or time.monotonic() >= deadline:
            return None
        if plan.rate:
            due = start + issued / plan.rate
            if due > time.monotonic():
                return due
        issued += 1
        roll = maker.rng.random()
        if sent_ok and roll < plan.resend_share:
            summary.resends += 1
            resend = maker.rng.choice(sent_ok)
            summary.resent_keys.add(resend.key)
            return resend
        if roll < plan.resend_share + plan.malformed_share:
            summary.malformed += 1
            return maker.malformed()
        return maker.next()

    def remember_for_resends(item: Generated) -> None:
        nonlocal remembered
        if len(sent_ok) < RESEND_WINDOW:
            sent_ok.append(item)
        else:
            sent_ok[remembered % RESEND_WINDOW] = item
        remembered += 1

    async def worker() -> None:
        connection = Connection(plan.url, REQUEST_TIMEOUT_S)
        try:
            await send_until_done(connection)
        finally:
            connection.close()

    async def send_until_done(connection: Connection) -> None:
        while True:
            item = next_body()
            if item is None:
                return
            if isinstance(item, float):
                await asyncio.sleep(max(0.0, item - time.monotonic()))
                continue
            began = time.perf_counter()
            try:
                status, _ = await connection.post(item.path, item.body)
            except HttpError:
                status = 0
            summary.latencies_s.append(time.perf_counter() - began)
            summary.sent += 1
            summary.statuses[status] += 1
            summary.by_route[item.route] += 1
            summary.by_tenant[item.tenant] += 1
            if 200 <= status < 300:
                summary.accepted += 1
                if item.key not in counted:
                    counted.add(item.key)
                    summary.accepted_at[item.key] = time.time()
                    if item.route in TAG_IN_EXTEND:
                        summary.expected_replies += item.events
                    else:
                        summary.expected_events += item.events
                    if item.events:
                        remember_for_resends(item)
            else:
                summary.failed += 1
            if progress is not None:
                progress.advance()

    if progress is not None:
        progress.start()
    try:
        await asyncio.gather(*(worker() for _ in range(plan.connections)))
    finally:
        if progress is not None:
            progress.stop()
    summary.elapsed_s = time.monotonic() - start
    return summary


class _LiveProgress:
    """A rich progress bar with the live request rate."""

    def __init__(self, plan: LoadPlan) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]loadgen"),
            BarColumn(),
            TextColumn("{task.description} sent"),
            TextColumn("{task.fields[rate]:>8.0f}/s"),
            TimeElapsedColumn(),
            transient=False,
        )
        self.total = plan.requests or None
        self.task = self.progress.add_task("0", total=self.total or max(1.0, plan.duration_s), rate=0.0)
        self.by_time = not plan.requests
        self.started = time.monotonic()
        self.count = 0

    def start(self) -> None:
        self.progress.start()

    def advance(self) -> None:
        self.count += 1
        elapsed = time.monotonic() - self.started
        completed = min(elapsed, self.progress.tasks[0].total or elapsed) if self.by_time else self.count
        if self.count % 50 == 0 or self.count == self.total:
            self.progress.update(
                self.task,
                completed=completed,
                rate=self.count / elapsed if elapsed else 0.0,
                description=f"{self.count}",
            )

    def stop(self) -> None:
        self.progress.stop()


def _progress(show: bool, plan: LoadPlan) -> _LiveProgress | None:
    return _LiveProgress(plan) if show else None

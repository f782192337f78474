"""`ringback status`: the whole pipeline at a glance, for an operator at 3 a.m.

Each role is asked, with a short timeout, for its readiness (``/readyz``, with the reasons when it is
not ready) and its metrics; a role that does not answer in time (dead, stopped, hung) is shown as such.
On top: consumer lag, the edge journal's depth and the age of its oldest callback not yet stored, the
last successful insert, and the dead letters of the last minutes. The command exits 1 when anything
is wrong, so it can run from a probe or cron.

With `ringback run` the roles are found through ``<data_dir>/run``; production roles are named by URL
(``--edge``, ``--normalizer``, ``--sink``: each role's base URL, where /readyz and /metrics are).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ringback.config import Settings
from ringback.runtime import runfiles
from ringback.sink.store import EVENTS_TABLE

ROLES = ("edge", "normalizer", "sink")
PROBE_TIMEOUT_S = 2.0
QUERY_TIMEOUT_S = 5.0
DEAD_LETTER_MINUTES = 15
BYTES_PER_KB = 1024


@dataclass
class RoleStatus:
    role: str
    url: str | None
    answering: bool = False
    ready: bool = False
    reasons: list[str] = field(default_factory=list)
    readiness: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # "name{label=value,...}" -> value

    def total(self, name: str) -> float:
        """The sum of a metric over all its label sets."""
        return sum(value for key, value in self.metrics.items() if key == name or key.startswith(name + "{"))

    def value(self, name: str, **labels: str) -> float | None:
        for key, value in self.metrics.items():
            if key.split("{", 1)[0] == name and all(f'{k}="{v}"' in key for k, v in labels.items()):
                return value
        return None


@dataclass
class PipelineStatus:
    roles: dict[str, RoleStatus]
    broker: dict[str, Any] | None
    dead_letters: dict[str, int] | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _get(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _metrics(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def probe(role: str, base_url: str | None) -> RoleStatus:
    status = RoleStatus(role, base_url)
    if base_url is None:
        status.reasons = ["not running (no run file)"]
        return status
    try:
        code, body = _get(base_url + "/readyz")
        status.answering = True
        status.readiness = json.loads(body or b"{}")
        status.ready = code == 200
        status.reasons = list(status.readiness.get("reasons", []))
        if not status.ready and not status.reasons:
            status.reasons = [f"/readyz answered {code}"]
        status.metrics = _metrics(_get(base_url + "/metrics")[1].decode("utf-8", "replace"))
    except (OSError, ValueError) as exc:  # refused, timed out (stopped or hung), or garbage
        status.answering = False
        status.reasons = [f"not answering at {base_url}: {getattr(exc, 'reason', exc)}"]
    return status


def role_urls(settings: Settings, given: dict[str, str | None]) -> dict[str, str | None]:
    """Each role's base URL: as given, else from the run files of `ringback run`."""
    urls: dict[str, str | None] = {}
    for role in ROLES:
        if given.get(role):
            urls[role] = str(given[role]).rstrip("/")
            continue
        info = runfiles.read_live(settings.run_dir, role)
        if info is None:
            urls[role] = None
        elif role == "edge":
            urls[role] = info["url"]
        else:
            urls[role] = info["metrics"].rsplit("/metrics", 1)[0]
    return urls


def dead_letters_by_reason(settings: Settings) -> dict[str, int] | None:
    """Requests dead-lettered in the last minutes, by the reason of their latest dead letter; None when the
    store did not answer. Each request once: a dead letter delivered twice, or written again by a replay
    that failed again, is still one row until the table's merges collapse it."""
    from ringback.sql import QueryError, run_sql

    query = (
        "SELECT failure_type, count() AS n FROM ("
        "SELECT argMax(failure_type, dead_lettered_at) AS failure_type FROM ringback.dead_letters "
        f"WHERE received_at >= now() - INTERVAL {DEAD_LETTER_MINUTES} MINUTE GROUP BY route, ingest_id"
        ") GROUP BY failure_type FORMAT JSONEachRow"
    )
    try:
        rows = run_sql(settings, query, "JSONEachRow", timeout_s=QUERY_TIMEOUT_S)
    except (QueryError, OSError):
        return None
    return {str(row["failure_type"]): int(row["n"]) for row in map(json.loads, rows.splitlines()) if row}


def collect(settings: Settings, given: dict[str, str | None], max_journal_age_s: float) -> PipelineStatus:
    roles = {role: probe(role, url) for role, url in role_urls(settings, given).items()}
    problems = [f"{role}: {reason}" for role, status in roles.items() if not status.ready for reason in status.reasons]
    edge = roles["edge"]
    journal = edge.readiness.get("journal") or {}
    oldest = journal.get("oldest_age_s")
    if isinstance(oldest, (int, float)) and oldest > max_journal_age_s:
        problems.append(f"edge: oldest callback not yet stored is {oldest:.0f}s old (limit {max_journal_age_s:.0f}s)")
    run = runfiles.read_live(settings.run_dir, "run")
    broker = None if run is None else {"bootstrap": run.get("kafka_bootstrap"), "pid": run.get("broker_pid")}
    return PipelineStatus(roles, broker, dead_letters_by_reason(settings), problems)


def render(status: PipelineStatus) -> str:
    lines = [f"{'role':<11} {'state':<13} detail"]
    if status.broker is not None:
        lines.append(f"{'broker':<11} {'-':<13} {status.broker['bootstrap']} (pid {status.broker['pid']})")
    for role, s in status.roles.items():
        state = "ready" if s.ready else ("NOT READY" if s.answering else "NO ANSWER")
        lines.append(f"{role:<11} {state:<13} {_detail(s)}")
        lines += [f"{'':<25} ! {reason}" for reason in s.reasons]
    if status.dead_letters is None:
        lines.append(f"dead letters (last {DEAD_LETTER_MINUTES} min): unknown (the store did not answer)")
    else:
        by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(status.dead_letters.items())) or "none"
        lines.append(
            f"dead letters (last {DEAD_LETTER_MINUTES} min): {sum(status.dead_letters.values())} ({by_reason})"
        )
    lines.append("ok" if status.ok else "PROBLEMS:\n" + "\n".join(f"  - {p}" for p in status.problems))
    return "\n".join(lines)


def _detail(s: RoleStatus) -> str:
    if not s.answering:
        return ""
    if s.role == "edge":
        journal = s.readiness.get("journal") or {}
        broker = s.readiness.get("broker", "?")
        if not journal:
            return f"broker {broker}; no journal"
        age = journal.get("oldest_age_s")
        age_text = f", oldest {age:.1f}s" if isinstance(age, (int, float)) else ""
        return (
            f"broker {broker}; {journal.get('mode')} {journal.get('records')} callbacks "
            f"({journal.get('bytes', 0) / BYTES_PER_KB:.0f} KB){age_text}, unpublished {journal.get('unpublished')}"
        )
    lag = int(s.total("ringback_consumer_lag_messages"))
    if s.role == "normalizer":
        tripped = s.value("ringback_normalizer_guard_tripped")
        return f"lag {lag}; guard {'TRIPPED' if tripped else 'ok'}"
    last = s.value("ringback_sink_last_insert_timestamp_seconds", table=EVENTS_TABLE)
    since = f"{time.time() - last:.0f}s ago" if last else "none yet"
    return f"lag {lag}; last insert {since}"


def as_json(status: PipelineStatus) -> dict[str, Any]:
    return {
        "ok": status.ok,
        "problems": status.problems,
        "broker": status.broker,
        "dead_letters": status.dead_letters,
        "roles": {
            role: {
                "url": s.url,
                "answering": s.answering,
                "ready": s.ready,
                "reasons": s.reasons,
                "readiness": s.readiness,
                "lag": s.total("ringback_consumer_lag_messages") if s.role != "edge" else None,
            }
            for role, s in status.roles.items()
        },
    }

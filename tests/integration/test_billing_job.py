"""The example billing job on a running `ringback run`: CDRs and Tencent voice callbacks, anonymous and of
a tenant, some sent two or three times, also after the job ran once; the job's totals per tenant, app
and China day equal the docs' billing query over `ringback.events_dedup` on the same run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.pipeline import Pipeline, post, ringback, sql_rows, wait_for_rows, wait_until_caught_up

pytestmark = pytest.mark.integration
SECRET = "acme-secret-7c2e91b04d"
ACME_APP_ID = "1400987654"
TENANTS_FILE = f"""
allow_anonymous = true
[[tenants]]
id = "acme"
secret = "{SECRET}"
app_id = "{ACME_APP_ID}"
"""
JOB = REPO_ROOT / "examples" / "billing_job.py"
JOB_TIMEOUT_S = 120
#: The embedded broker ignores a member leaving; a short session lets the job's second run join at once.
SESSION_TIMEOUT_MS = "2000"
# The billing query of docs/tenants-security.md, per tenant ("Going to production: tenants").
BILLING_QUERY = """
SELECT tenant, app_id, toDate(occurred_at, 'Asia/Shanghai') AS day, count() AS events,
       sum(charge) AS charge, sum(billable_minutes) AS billable_minutes, sum(duration_s) AS duration_s
FROM ringback.events_dedup
GROUP BY tenant, app_id, day ORDER BY day, tenant, app_id
FORMAT JSONEachRow
"""


def cdr(request_id: str, app: str, charge: str, duration: int, start: str, end: str) -> bytes:
    return json.dumps(
        {
            "cdr": [
                {
                    "requestid": request_id,
                    "appid": app,
                    "fid": "4",
                    "caller": "13810603954",
                    "called": "18810207016",
                    "callerstime": start,
                    "calleretime": end,
                    "duration": str(duration),
                    "oriamount": charge,
                    "stateDesc": "正常",
                }
            ]
        }
    ).encode()


def voice_code_cdr(request_id: str, app: str, charge: str, duration: int) -> bytes:
    return json.dumps(
        {
            "cdr": [
                {
                    "requestid": request_id,
                    "appid": app,
                    "fid": "2",
                    "tel": "13800138000",
                    "stime": "2026-11-21 11:19:36.000",
                    "etime": "2026-11-21 11:19:58.000",
                    "duration": str(duration),
                    "oriamount": charge,
                }
            ]
        }
    ).encode()


def voice(call_id: str, fee: int, end: int) -> bytes:
    return json.dumps(
        {
            "voicecode_callback": {
                "result": "0",
                "accept_time": str(end - 20),
                "call_from": "075583763333",
                "callid": call_id,
                "end_calltime": str(end),
                "fee": str(fee),
                "mobile": "13800138000",
                "nationcode": "86",
                "start_calltime": str(end - 30),
            }
        }
    ).encode()


ANONYMOUS, ACME = "", "acme"
# (tenant, route, body, times sent) before the job's first run ...
FIRST = [
    (
        ANONYMOUS,
        "cdr-push",
        cdr("call-1", "app-a", "1.20", 60, "2026-11-21 11:19:36.000", "2026-11-21 11:20:36.000"),
        3,
    ),
    (ANONYMOUS, "cdr-push", cdr("call-2", "app-a", "0.06", 7, "2026-11-21 23:59:00.000", "2026-11-21 23:59:07.000"), 1),
    (
        ANONYMOUS,
        "cdr-push",
        cdr("call-3", "app-a", "2.00", 95, "2026-11-22 00:30:00.000", "2026-11-22 00:31:35.000"),
        2,
    ),  # next China day
    (ANONYMOUS, "cdr-push", voice_code_cdr("code-1", "app-b", "0.05", 22), 1),
    (
        ACME,
        "cdr-push",
        cdr("call-1", "app-a", "1.20", 60, "2026-11-21 11:19:36.000", "2026-11-21 11:20:36.000"),
        2,
    ),  # same ids, other tenant
    (
        ACME,
        "cdr-push",
        cdr("call-9", "app-c", "3.333333", 200, "2026-11-21 09:00:00.000", "2026-11-21 09:03:20.000"),
        1,
    ),
    (ACME, "tencent/voicecode", voice("tc-1", 1, 1795742400), 2),
    (ACME, "tencent/voicecode", voice("tc-2", 2, 1795746000), 1),
    (ANONYMOUS, "tencent/voicecode", voice("tc-1", 1, 1795742400), 1),  # the same call id without a tenant
]
# ... and after it: new callbacks, and resends of what the first run billed.
SECOND = [
    (
        ANONYMOUS,
        "cdr-push",
        cdr("call-1", "app-a", "1.20", 60, "2026-11-21 11:19:36.000", "2026-11-21 11:20:36.000"),
        1,
    ),
    (ACME, "tencent/voicecode", voice("tc-2", 2, 1795746000), 2),
    (
        ANONYMOUS,
        "cdr-push",
        cdr("call-4", "app-a", "0.60", 30, "2026-11-22 10:00:00.000", "2026-11-22 10:00:30.000"),
        2,
    ),
    (ACME, "tencent/voicecode", voice("tc-3", 3, 1795750000), 1),
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("billing")
    (home / "tenants.toml").write_text(TENANTS_FILE)
    running = Pipeline(home / "data", extra_args=["--tenants-file", str(home / "tenants.toml")]).start()
    yield running
    running.stop()


def send(pipeline: Pipeline, callbacks: list[tuple[str, str, bytes, int]]) -> None:
    for tenant, route, body, times in callbacks:
        url = (
            f"{pipeline.edge_url}/t/{tenant}/{SECRET}/callbacks/{route}"
            if tenant
            else f"{pipeline.edge_url}/callbacks/{route}"
        )
        for _ in range(times):
            assert post(url, body)[0] == 200, (tenant, route)


def stored(pipeline: Pipeline, unique_events: int) -> None:
    rows = wait_for_rows(
        pipeline.data_dir, f"SELECT 1 FROM ringback.events_dedup HAVING count() >= {unique_events}", 1, timeout_s=90
    )
    assert rows, f"fewer than {unique_events} events stored"


def events_stored(pipeline: Pipeline) -> int:
    (row,) = sql_rows(pipeline.data_dir, "SELECT count() AS n FROM ringback.events_dedup")
    return int(row["n"])


def run_job(pipeline: Pipeline, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            str(JOB),
            "--data-dir",
            str(pipeline.data_dir),
            "--out",
            str(out),
            "--csv",
            str(out.with_suffix(".csv")),
            "--session-timeout-ms",
            SESSION_TIMEOUT_MS,
        ],
        capture_output=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr.decode()
    summary: dict[str, Any] = json.loads(done.stderr.decode().strip().splitlines()[-1])
    return summary


def billing_rows(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The docs' query, through `ringback sql -` (the query on standard input)."""
    done = subprocess.run(
        ringback("sql", "--data-dir", str(pipeline.data_dir), "-"),
        input=BILLING_QUERY.encode(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def comparable(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["tenant"],
        row["app_id"],
        row["day"],
        int(row["events"]),
        Decimal(str(row["charge"] or 0)),
        int(row["billable_minutes"] or 0),
        int(row["duration_s"] or 0),
    )


def sent_copies(callbacks: list[tuple[str, str, bytes, int]]) -> int:
    return sum(times for *_, times in callbacks)


def test_the_jobs_totals_equal_the_billing_query_also_across_its_restart(pipeline: Pipeline, tmp_path: Path) -> None:
    out = tmp_path / "totals.json"
    before = events_stored(pipeline)  # what other tests of this module stored, if they ran first
    send(pipeline, FIRST)
    stored(pipeline, before + len(FIRST))
    first = run_job(pipeline, out)
    assert first["events"] == before + len(FIRST) and first["duplicates"] >= sent_copies(FIRST) - len(FIRST)

    send(pipeline, SECOND)
    new_events = 2  # call-4 and tc-3; the rest are resends of events already billed
    stored(pipeline, before + len(FIRST) + new_events)
    second = run_job(pipeline, out)
    assert second["events"] == new_events and second["remembered"] > 0
    assert second["duplicates"] >= sent_copies(SECOND) - new_events

    result = json.loads(out.read_text())
    job = sorted((comparable(row) for row in result["totals"]), key=repr)
    clickhouse = sorted((comparable(row) for row in billing_rows(pipeline)), key=repr)
    assert job == clickhouse
    assert result["conflicts"] == []
    assert len(out.with_suffix(".csv").read_text().splitlines()) == len(job) + 1

    by_app = {(t, app, day): (events, charge) for t, app, day, events, charge, *_ in job}
    assert by_app[(ANONYMOUS, "app-a", "2026-11-21")] == (2, Decimal("1.26"))  # call-1 once, however often sent
    assert by_app[(ANONYMOUS, "app-a", "2026-11-22")] == (2, Decimal("2.60"))  # 00:30 China time is the next day
    assert by_app[(ACME, "app-a", "2026-11-21")] == (1, Decimal("1.20"))  # the tenant's call-1 is its own
    assert sum(events for (t, app, _), (events, _c) in by_app.items() if app == ACME_APP_ID) == 3


def test_tail_shows_every_copy_on_the_topic(pipeline: Pipeline) -> None:
    send(pipeline, [(ANONYMOUS, "cdr-push", voice_code_cdr("code-tail", "app-tail", "0.01", 3), 2)])
    wait_until_caught_up(pipeline)  # both copies are on the normalized topic
    done = subprocess.run(
        ringback(
            "tail",
            "--data-dir",
            str(pipeline.data_dir),
            "--from",
            "beginning",
            "--no-follow",
            "--json",
            "--type",
            "voice.code_cdr",
        ),
        capture_output=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr.decode()
    copies = [json.loads(line) for line in done.stdout.decode().splitlines()]
    tail_copies = [event for event in copies if event["request_id"] == "code-tail"]
    assert len(tail_copies) == 2 and len({event["event_id"] for event in tail_copies}) == 1
    assert tail_copies[0]["charge"] == "0.010000" and {event["event_type"] for event in copies} == {"voice.code_cdr"}

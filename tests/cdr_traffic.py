"""CDR traffic with known charges, sent through a running pipeline, and its exact totals in ClickHouse."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from tests.pipeline import Pipeline, post, sql_rows

CDR_ROUTE = "/callbacks/cdr-push"
SETTLE_TIMEOUT_S = 120.0


def cdr(tag: str, i: int) -> tuple[bytes, Decimal]:
    charge = Decimal(f"{(i % 97) + 1}.{i % 100:02d}")
    entry = {
        "requestid": f"{tag}-{i}",
        "appid": f"app-{tag}",
        "fid": "4",
        "caller": "13810603954",
        "called": "18810207016",
        "callerstime": "2026-11-21 11:19:36.000",
        "calleretime": "2026-11-21 11:20:36.000",
        "calledstime": "2026-11-21 11:19:40.000",
        "calledetime": "2026-11-21 11:20:40.000",
        "tapesurl": "NoTapes",
        "duration": "60",
        "oriamount": str(charge),
        "stateDesc": "正常",
        "customParm": str(i),
    }
    return json.dumps({"cdr": [entry]}).encode(), charge


def send_all(edge_url: str, bodies: list[bytes], workers: int = 8) -> list[int]:
    with ThreadPoolExecutor(workers) as pool:
        return [status for status, _ in pool.map(lambda body: post(edge_url + CDR_ROUTE, body), bodies)]


def stored_totals(data_dir: Path, tag: str) -> tuple[int, Decimal]:
    (row,) = sql_rows(
        data_dir,
        f"SELECT count() AS n, toString(sum(charge)) AS total FROM ringback.events_dedup WHERE app_id = 'app-{tag}'",
    )
    return int(row["n"]), Decimal(row["total"] or 0)


def stored_totals_or_none(data_dir: Path, tag: str) -> tuple[int, Decimal] | None:
    """None while the store does not answer (a sink stopped or restarting after a fault)."""
    try:
        return stored_totals(data_dir, tag)
    except AssertionError:
        return None


def wait_for_totals(pipeline: Pipeline, tag: str, count: int, total: Decimal) -> tuple[int, Decimal]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    seen = (0, Decimal(0))
    while time.monotonic() < deadline:
        seen = stored_totals_or_none(pipeline.data_dir, tag) or seen
        if seen == (count, total):
            return seen
        time.sleep(1)
    return seen


def role_pid(pipeline: Pipeline, role: str, not_pid: int | None = None, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid = int(pipeline.run_file(role)["pid"])
            if pid != not_pid:
                os.kill(pid, 0)
                return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{role} is not running")


def traffic(tag: str, n: int) -> tuple[list[bytes], Decimal]:
    made = [cdr(tag, i) for i in range(n)]
    return [body for body, _ in made], sum((charge for _, charge in made), Decimal(0))


class Sender:
    """Sends ``bodies`` to the CDR route from a thread of its own, counting the answers as they come, so
    that a test can break something once the traffic is certainly under way."""

    def __init__(self, edge_url: str, bodies: list[bytes], workers: int = 4) -> None:
        self.edge_url = edge_url
        self.bodies = bodies
        self.workers = workers
        self.statuses: list[int] = []
        self._answered = threading.Semaphore(0)
        self._seen = 0
        self._thread = threading.Thread(target=self._send)
        self._thread.start()

    def _send_one(self, body: bytes) -> int:
        status = post(self.edge_url + CDR_ROUTE, body)[0]
        self._answered.release()
        return status

    def _send(self) -> None:
        with ThreadPoolExecutor(self.workers) as pool:
            self.statuses.extend(pool.map(self._send_one, self.bodies))

    def wait_answered(self, count: int, timeout_s: float = 60.0) -> None:
        """Returns once ``count`` requests in all were answered (whatever the answer)."""
        deadline = time.monotonic() + timeout_s
        while self._seen < count:
            assert self._answered.acquire(timeout=max(0.0, deadline - time.monotonic())), (
                f"only {self._seen} of {count} requests answered"
            )
            self._seen += 1

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout_s: float = 300.0) -> list[int]:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the sender did not finish"
        return self.statuses

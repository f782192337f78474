"""The edge gives memory back after a spool-full episode (it once grew 64 -> 945 MB over two)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from tests.pipeline import ringback

pytestmark = pytest.mark.integration
BODY_BYTES = 400_000
REQUESTS_PER_EPISODE = 400
CONCURRENCY = 96
#: What the process may keep after an episode, over its RSS before the first one.
KEPT_AFTER_EPISODE_MB = 48


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


async def post(port: int, body: bytes) -> int:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /callbacks/cdr-push HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        writer.close()
        return status
    except (OSError, IndexError, ValueError):
        return 0


async def episode(port: int, pid: int) -> tuple[Counter[int], float]:
    """Many large callbacks at once; returns the replies and the peak RSS seen meanwhile."""
    body = b'{"cdr":[' + b" " * BODY_BYTES + b"]}"
    gate = asyncio.Semaphore(CONCURRENCY)
    replies: Counter[int] = Counter()
    peak = 0.0

    async def one() -> None:
        nonlocal peak
        async with gate:
            replies[await post(port, body)] += 1
            peak = max(peak, rss_mb(pid))

    await asyncio.gather(*(one() for _ in range(REQUESTS_PER_EPISODE)))
    return replies, peak


async def wait_until_drained(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = await reader.read()
        writer.close()
        if json.loads(reply.split(b"\r\n\r\n", 1)[1])["journal"]["records"] == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the spool did not drain")


async def test_memory_is_returned_after_spool_full_episodes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    broker = EmbeddedBroker()  # a broker of its own: this test pauses it
    broker.start()
    settings = make_settings(
        kafka_bootstrap=broker.bootstrap,
        spool_max_bytes=24 * 1024 * 1024,
        publish_timeout_s=0.5,
        max_body_bytes=512 * 1024,
        edge_journal="off",
        edge_in_flight_share_per_ip=1.0,  # one client address plays all the vendors
    )
    await kafka.ensure_topics(settings)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RINGBACK_")},
        **settings.as_env(),
        "RINGBACK_LOG_LEVEL": "error",
    }
    edge = subprocess.Popen(ringback("edge"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (settings.run_dir / "edge.json").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        port = int(json.loads((settings.run_dir / "edge.json").read_text())["url"].rsplit(":", 1)[1])
        before = rss_mb(edge.pid)
        after: list[float] = []
        for _ in range(2):
            assert broker.process is not None
            os.kill(broker.process.pid, signal.SIGSTOP)
            try:
                replies, peak = await episode(port, edge.pid)
            finally:
                os.kill(broker.process.pid, signal.SIGCONT)
            assert replies[200] and replies[500], replies  # some spooled, the rest refused: the spool was full
            await wait_until_drained(port)
            await asyncio.sleep(1.0)
            after.append(rss_mb(edge.pid))
            assert peak > before + KEPT_AFTER_EPISODE_MB  # the episode did cost memory while it lasted...
        assert max(after) < before + KEPT_AFTER_EPISODE_MB, (
            f"RSS before {before:.0f} MB, after each episode {after}"
        )  # ...and it came back
    finally:
        edge.terminate()
        edge.wait(30)
        broker.stop()

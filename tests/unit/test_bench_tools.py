"""The end-to-end bench's own tools: the wrk mix's bodies, the OS's CPU accounting, wrk's report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from ringback.normalizer.adapters import registry
from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Rejection
from ringback.normalizer.step import normalize_message
from ringback.runtime.avro import EventCodec
from ringback.runtime.raw import RawCallback, new_ingest_id
from ringback.tools.bench import callback_mix, cpu, wrk

REPO_ROOT = Path(__file__).resolve().parents[2]
CODEC = EventCodec.from_dir(REPO_ROOT / "schemas")


def _body(kind: callback_mix.Kind, request_id: str, mobile: str = "13800138000") -> bytes:
    """The body the Lua script builds for one request: the fixed parts joined around the id and mobile."""
    text = orjson.dumps(kind.body).decode().replace(callback_mix.ID, request_id)
    return text.replace(callback_mix.MOBILE, mobile).encode()


def _events(kind: callback_mix.Kind, request_id: str) -> list[Any]:
    body = _body(kind, request_id)
    raw = RawCallback(kind.route, new_ingest_id(), time.time_ns() // 1000, "127.0.0.1", "application/json", body)
    outcomes = normalize_message(raw, registry(), Context(blank_event=CODEC.blank_event()))
    assert not [o for o in outcomes if isinstance(o, Rejection)], outcomes
    return list(outcomes)


@pytest.mark.parametrize("kind", callback_mix.KINDS, ids=lambda kind: f"{kind.route}-{kind.events}")
def test_each_kind_normalizes_to_its_events_with_the_tag_in_a_vendor_id(kind: callback_mix.Kind) -> None:
    events = _events(kind, "wbtagt0n17")
    assert len(events) == kind.events
    for event in events:
        ids = [event.get(name) for name in ("sid", "call_id", "request_id")]
        assert next(i for i in ids if i).startswith("wbtagt0n17"), ids


def test_two_requests_make_different_events_so_dedup_keeps_both() -> None:
    for kind in callback_mix.KINDS:
        first = {e.get("event_id") for e in _events(kind, "wbtagt0n1")}
        second = {e.get("event_id") for e in _events(kind, "wbtagt1n1")}
        assert first.isdisjoint(second), kind.route


def test_the_mix_is_the_issue_s_shares_at_two_events_a_callback() -> None:
    shares: dict[str, int] = {}
    for kind in callback_mix.KINDS:
        shares[kind.route] = shares.get(kind.route, 0) + kind.share
    assert {route: share / callback_mix.CYCLE for route, share in shares.items()} == {
        "tencent/sms-status": 0.5,
        "cdr-push": 0.2,
        "tencent/voicecode": 0.15,
        "callback-call/hangup": 0.15,
    }
    assert callback_mix.EVENTS_PER_CALLBACK == 2.0


def test_the_script_builds_raw_requests_with_quoted_line_ends_and_the_tag() -> None:
    script = callback_mix.script("wbabc", "127.0.0.1:8080")
    assert "prefix = 'wbabct' .. thread_id .. 'n'" in script and "local id = prefix .. counter" in script
    assert script.count("HTTP/1.1\\r\\nHost: 127.0.0.1:8080\\r\\n") == len(callback_mix.KINDS)
    with pytest.raises(ValueError):
        callback_mix.script("wb'abc", "127.0.0.1:8080")


def test_cpu_times_count_this_process_s_work_and_none_once_gone() -> None:
    before = cpu.times(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = cpu.times(os.getpid())
    assert before is not None and after is not None and after.own_s - before.own_s >= 0.2
    assert cpu.times(2**22 + 1) is None  # above pid_max's default ceiling: no such process


def test_wrk_report_is_read_with_its_non_2xx_and_socket_errors() -> None:
    out = """Running 1s test @ http://127.0.0.1:1
  1 threads and 4 connections
  Latency Distribution
     50%    1.50ms
     75%    2.00ms
     90%    3.00ms
     99%   12.28ms
  5137 requests in 3.10s, 1.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   1653.00
"""
    result = wrk.parse(out)
    assert (result.requests, result.non_2xx, result.errors, result.accepted) == (5137, 4, 7, 5133)
    assert (result.p50_ms, result.p99_ms, result.rps) == (1.5, 12.28, 1653.0)


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the edge
    seen: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if len(self.seen) < 4000:
            self.seen.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.skipif(not wrk.available(), reason="wrk not installed (make tools installs it)")
def test_wrk_sends_the_script_s_requests_well_formed_unique_and_in_the_mix() -> None:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        result = wrk.run_script(f"http://{host}", callback_mix.script("wbunit", host), 2, 1)
    finally:
        server.shutdown()
        server.server_close()
    assert result.errors == 0 and result.requests >= callback_mix.CYCLE and result.cpu_s > 0
    bodies = [orjson.loads(body) for _, body in _Recorder.seen]  # each Content-Length was right: all parse
    assert len({orjson.dumps(body) for body in bodies}) == len(bodies)
    route_of_slot = [kind.route for kind in callback_mix.KINDS for _ in range(kind.share)]
    for path, body in _Recorder.seen:  # the request's counter picks its kind: the mix holds over any window
        counter = int(re.search(rb"wbunitt0n(\d+)", body).group(1))
        assert path == "/callbacks/" + route_of_slot[counter % callback_mix.CYCLE], (path, body)
    mobiles = [r["mobile"] for path, body in _Recorder.seen if path.endswith("sms-status") for r in orjson.loads(body)]
    assert mobiles and all(re.fullmatch(r"1[3-9][0-9]{9}", m) for m in mobiles), mobiles[:5]
    segments = {m[:7] for m in mobiles}  # new numbers, as real recipients: nearly every request a new segment
    assert len(segments) >= 0.9 * len(mobiles) / 3, (len(segments), len(mobiles))


BURN = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
began = time.process_time()
while time.process_time() - began < float(sys.argv[1]):
    pass
print("burnt", flush=True)
sys.stdin.readline()
"""


def _burner(seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN, str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    return child


def _burn(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline() == "burnt\n"


def test_cpu_account_follows_a_replaced_process_and_recovers_what_the_ended_one_spent_unsampled(
    tmp_path: Path,
) -> None:
    """As a broker recycled mid-window: the old process ends between samples, a new pid takes its place;
    this process stands for the supervisor that reaps it."""
    first, second = _burner(0.4), _burner(0.2)
    (tmp_path / "run.json").write_text(json.dumps({"broker_pid": first.pid}))
    account = cpu.CpuAccount(os.getpid(), tmp_path, interval_s=60)  # no sample between start and stop
    account.start()
    _burn(first)
    first.communicate("end\n")  # reaped: its CPU joins this process's children's
    (tmp_path / "run.json").write_text(json.dumps({"broker_pid": second.pid}))
    _burn(second)  # seen only at stop: born in the window, all of it counts
    account.stop()
    second.communicate("end\n")
    spent = account.seconds_by_role()
    assert account.processes_by_role() == {"broker": 2}
    assert 0.35 <= spent["ended_unsampled"] < 1.0, spent
    assert 0.15 <= spent["broker"] < 1.0, spent

"""`ringback run` as configured: --metrics-port reaches the worker roles, and the banner's sample works.

Measured before: under `ringback run` the normalizer and the sink listened on free ports whatever
--metrics-port said, and with a tenants file that closes the tenant-less routes the banner's sample
curl went to one of them and got 401.
"""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline import Pipeline, post

pytestmark = pytest.mark.integration
SECRET = "wiring-secret-5c2e9a7d41"
TENANTS_FILE = f"""
allow_anonymous = false
[[tenants]]
id = "wiring"
secret = "{SECRET}"
"""
SAMPLE = re.compile(r"(http://\S+/callbacks/\S+) \\\n\s+-d '(.+)'")


def two_free_ports() -> int:
    """A port N with N and N + 1 both free now."""
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(TENANTS_FILE)
    port = two_free_ports()
    running = Pipeline(tmp_path / "data", extra_args=["--metrics-port", str(port), "--tenants-file", str(tenants)])
    running.metrics_port = port  # type: ignore[attr-defined]
    yield running
    running.stop()


def test_metrics_port_and_the_banner_sample(pipeline: Pipeline) -> None:
    pipeline.start()
    port = pipeline.metrics_port  # type: ignore[attr-defined]
    for role, role_port in (("normalizer", port), ("sink", port + 1)):
        assert pipeline.run_file(role)["metrics"] == f"http://127.0.0.1:{role_port}/metrics"
        with urllib.request.urlopen(f"http://127.0.0.1:{role_port}/healthz", timeout=10) as reply:
            assert reply.status == 200, role
    found = SAMPLE.search(pipeline.log())
    assert found is not None, pipeline.log()
    url, body = found.groups()
    assert "/t/wiring/<secret>/callbacks/" in url and SECRET not in pipeline.log()
    status, reply_body = post(url.replace("<secret>", SECRET), body.encode())
    assert status == 200, reply_body

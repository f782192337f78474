"""`ringback run` without an analysts file: the ClickHouse HTTP interface admits loopback clients as
`default`, says so at start, and answers `curl '…/?query=SELECT%201'` with 1."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from ringback.runtime.ports import free_port
from tests.integration.test_sql_http import WAIT_S, http_get
from tests.pipeline import Pipeline, wait_for_run_file

pytestmark = pytest.mark.integration

MAX_BODY_BYTES = 1_048_576


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    home = tmp_path_factory.mktemp("loopback")
    running = Pipeline(home / "data", extra_args=["--sql-http-port", str(free_port())]).start()
    try:
        yield running
    finally:
        running.stop()


def test_loopback_without_credentials_answers_one(pipeline: Pipeline) -> None:
    url = wait_for_run_file(pipeline.data_dir, "sql-http", pipeline.process)["url"]
    assert http_get(url + "?query=SELECT%201")[:2] == (200, b"1\n")
    assert "loopback clients only" in pipeline.log()
    status, _, headers = http_get(url + "?query=SELECT%201", {"X-ClickHouse-User": "someone"})
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (401, "516")


def test_a_body_over_the_bound_is_refused(pipeline: Pipeline) -> None:
    url = wait_for_run_file(pipeline.data_dir, "sql-http", pipeline.process)["url"]
    body = b"SELECT 1 -- " + b"x" * MAX_BODY_BYTES
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 413

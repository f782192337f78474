"""Analysts' saved views (``analyst_views_dir``): the files become views in the ``analyst`` database when
the sink starts, each passing the same guard as `ringback sql`; no file can write, read the host, replace
a table of ``ringback``, or stop the sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest

from ringback import metrics
from ringback.config import Settings
from ringback.runtime import kafka
from ringback.runtime.broker import EmbeddedBroker
from ringback.sink import analyst_views
from ringback.sink.worker import Sink
from tests.conftest import REPO_ROOT
from tests.integration.test_sql_readonly import ESCAPES, MULTI_STATEMENTS

pytestmark = pytest.mark.integration

GOOD = {
    "events_by_type": "SELECT event_type, count() AS events FROM ringback.events GROUP BY event_type",
    # Reads a view made from another file, which comes later in name order.
    "a_total": "-- every event, summed over the types\nSELECT sum(events) AS events FROM analyst.events_by_type;",
    "answered_calls": "SELECT call_key, answered_at FROM ringback.calls WHERE answered",
}


def write_folder(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


class Sinks:
    """Sinks started on the shared store, each with a views folder; whatever is still running is stopped."""

    def __init__(self, broker: EmbeddedBroker, chdb_dir: Path, make_settings: Callable[..., Settings]) -> None:
        self.broker, self.chdb_dir, self.make_settings = broker, chdb_dir, make_settings
        self.running: list[Sink] = []

    async def start(self, folder: Path) -> Sink:
        settings = self.make_settings(
            kafka_bootstrap=self.broker.bootstrap,
            clickhouse_dsn=f"chdb://{self.chdb_dir}",
            analyst_views_dir=str(folder),
        )
        await kafka.ensure_topics(settings)
        sink = Sink(settings)
        await sink.start()
        self.running.append(sink)
        return sink

    async def stop(self, sink: Sink) -> None:
        self.running.remove(sink)
        await sink.stop()


@pytest.fixture
async def sinks(broker: EmbeddedBroker, chdb_dir: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[Sinks]:
    started = Sinks(broker, chdb_dir, make_settings)
    yield started
    for sink in list(started.running):
        await started.stop(sink)


async def views_in(sink: Sink) -> list[str]:
    reply = await sink.query("SELECT name FROM system.tables WHERE database = 'analyst' ORDER BY name", "JSONEachRow")
    return [orjson.loads(line)["name"] for line in reply.splitlines()]


async def test_saved_views_are_made_and_queried_like_any_table(sinks: Sinks, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "views", {f"{name}.sql": text for name, text in GOOD.items()})
    sink = await sinks.start(folder)
    assert await views_in(sink) == ["a_total", "answered_calls", "events_by_type"]
    total = orjson.loads(await sink.query("SELECT * FROM analyst.a_total", "JSONEachRow"))
    expected = orjson.loads(await sink.query("SELECT count() AS events FROM ringback.events", "JSONEachRow"))
    assert int(total["events"]) == int(expected["events"])
    assert metrics.ANALYST_VIEWS.labels("applied")._value.get() == 3
    assert metrics.ANALYST_VIEWS.labels("refused")._value.get() == 0


async def test_every_escape_in_a_view_file_is_refused_and_the_rest_still_applies(
    sinks: Sinks, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("canary-do-not-read\n")
    target = tmp_path / "written"
    hostile = {
        f"escape_{i:02d}.sql": escape.replace("{canary}", str(canary)).replace("{target}", str(target))
        for i, (escape, _) in enumerate(ESCAPES)
    }
    hostile |= {
        f"multi_{i}.sql": text.replace("{canary}", str(canary)).replace("{target}", str(target))
        for i, text in enumerate(MULTI_STATEMENTS)
    }
    hostile |= {
        "shadow.sql": "SELECT 1 AS x",  # harmless, but lands in analyst, never ringback
        "show_tables.sql": "SHOW TABLES FROM ringback",
        "with_format.sql": "SELECT 1 FORMAT JSON",
        "create_inside.sql": "CREATE OR REPLACE VIEW ringback.events AS SELECT 1",
        "unknown_table.sql": "SELECT * FROM ringback.no_such_table",
        "Bad-Name.sql": "SELECT 1",
        "empty.sql": "  ;\n",
        "huge.sql": "SELECT 1 -- " + "x" * analyst_views.MAX_FILE_BYTES,
        "not_utf8.sql": b"SELECT '\xff'".decode("latin-1"),
        "events_by_type.sql": GOOD["events_by_type"],
    }
    folder = write_folder(tmp_path / "views", hostile)
    (folder / "not_utf8.sql").write_bytes(b"SELECT '\xff\xfe'")
    (folder / "readme.txt").write_text("not a view file: ignored")
    sink = await sinks.start(folder)

    assert await views_in(sink) == ["events_by_type", "shadow"]
    assert not target.exists()
    refused = metrics.ANALYST_VIEWS.labels("refused")._value.get()
    assert refused == len(hostile) - 2
    # ringback's own objects are untouched and the sink stores as before.
    assert b"View" in await sink.query(
        "SELECT engine FROM system.tables WHERE database = 'ringback' AND name = 'events'", "TabSeparated"
    )
    await sink.flush()


async def test_the_folder_is_the_truth_views_without_a_file_are_dropped(sinks: Sinks, tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "views", {"events_by_type.sql": GOOD["events_by_type"], "answered_calls.sql": GOOD["answered_calls"]}
    )
    first = await sinks.start(folder)
    assert await views_in(first) == ["answered_calls", "events_by_type"]
    await sinks.stop(first)
    (folder / "answered_calls.sql").unlink()
    (folder / "events_by_type.sql").write_text(
        "SELECT * FROM file('/etc/passwd', 'RawBLOB')"
    )  # a file that no longer passes
    second = await sinks.start(folder)
    assert await views_in(second) == []


async def test_the_example_views_apply_and_run(sinks: Sinks) -> None:
    folder = REPO_ROOT / "examples" / "views"
    sink = await sinks.start(folder)
    names = sorted(path.stem for path in folder.glob("*.sql"))
    assert await views_in(sink) == names
    assert metrics.ANALYST_VIEWS.labels("refused")._value.get() == 0
    for name in names:
        await sink.query(f"SELECT * FROM analyst.{name} LIMIT 1", "JSONEachRow")


async def test_a_missing_folder_leaves_the_views_as_they_are(sinks: Sinks, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "views", {"events_by_type.sql": GOOD["events_by_type"]})
    first = await sinks.start(folder)
    await sinks.stop(first)
    second = await sinks.start(tmp_path / "unmounted")
    assert await views_in(second) == ["events_by_type"]

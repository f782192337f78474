"""A store whose stored times are in the first ``ringback.event_keys`` (sorted by the event id itself) has
them moved at the next start into ``ringback.event_keys_v2`` (sorted by a hash of the id): every key
kept — those its view wrote and any other row of the old table — the old table and its view gone, the
sink's lookup finding the times there; and a second start changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.integration.test_ddl_upgrade import OLD_STORE, upgraded

pytestmark = pytest.mark.integration
KEYS_BY_ID_DDL = FIXTURES / "ddl_v4"  # the stored times sorted by event id, as before event_keys_v2

KEYS_UPGRADE = (
    OLD_STORE
    + r"""
from ringback.sink.placement import Placed, stored_times
def rows(sql):
    return [list(r) for r in client.query(sql).result_rows]
at = datetime(2026, 12, 1, 11, 19, 58, tzinfo=timezone.utc)
columns = ["event_id", "event_type", "source", "route", "ingest_id", "report_index", "received_at", "occurred_at",
           "status", "normalizer_version"]
for event_id, occurred in (("e-1", at), ("e-2", None)):  # stored before the upgrade: the old view keeps their times
    row = [event_id, "sms.status", "tencent_sms", "tencent/sms-status", "r-" + event_id, 0, at, occurred]
    row += ["delivered", "v"]
    client.insert("ringback.event_copies", [row], column_names=columns)
client.insert("ringback.event_keys", [["only-in-keys", at]], column_names=["event_id", "occurred_at"])
TABLES = "SELECT name FROM system.tables WHERE database = 'ringback' AND name LIKE 'event_keys%' ORDER BY name"
KEYS = "SELECT event_id, occurred_at FROM ringback.event_keys_v2 FINAL ORDER BY event_id"
def state():
    asked = [Placed("tencent/sms-status", i, 1, 7) for i in ("e-1", "e-2", "only-in-keys", "new")]
    return {
        "tables": rows(TABLES),
        "keys": [[r[0], str(r[1])] for r in rows(KEYS)],
        "times": stored_times(client, asked),
    }
clickhouse.apply_ddl(client, new)
first = state()
clickhouse.apply_ddl(client, new)  # the next start
print(json.dumps({"first": first, "again": state()}))
"""
)


def test_stored_times_move_to_the_table_sorted_by_id_hash(tmp_path: Path) -> None:
    result = upgraded(KEYS_UPGRADE, tmp_path / "store", KEYS_BY_ID_DDL)
    first = result["first"]
    assert first["tables"] == [["event_keys_v2"], ["event_keys_v2_from_copies"]]  # the old table and view are gone
    assert first["keys"] == [
        ["e-1", "2026-12-01 11:19:58"],
        ["e-2", "None"],
        ["only-in-keys", "2026-12-01 11:19:58"],
    ]
    at_us = 1_796_123_998_000_000  # 2026-12-01 11:19:58 UTC
    assert first["times"] == {"e-1": at_us, "e-2": None, "only-in-keys": at_us, "new": 7}
    assert result["again"] == first

"""The sink's lookup of the times a batch's events are already stored with, on the real embedded engine:
every id found, however it is spelt (the ids go as their hashes, one joined string of numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringback.config import Settings
from ringback.runtime import clickhouse
from ringback.sink.placement import KEYS_TABLE, LOOKUP_IDS, Placed, stored_times

pytestmark = pytest.mark.integration
STORED_US = 1_796_000_000_000_000


def _placed(event_id: str, occurred_at_us: int | None = None) -> Placed:
    return Placed("tencent/sms-status", event_id, STORED_US + 5, occurred_at_us)


@pytest.mark.parametrize("odd_id", ["", "a,b", "it's", "\\,", "末尾,"], ids=["empty", "comma", "quote", "esc", "text"])
def test_stored_times_find_every_stored_id(tmp_path: Path, odd_id: str) -> None:
    client = clickhouse.connect(f"chdb://{tmp_path / 'store'}")
    clickhouse.apply_ddl(client, Settings().schemas_dir)
    stored = [f"{n:032x}" for n in range(LOOKUP_IDS + 7)]  # more than one query's worth
    client.insert(
        KEYS_TABLE,
        [[*stored, odd_id], [STORED_US + n for n in range(len(stored) + 1)]],
        column_names=["event_id", "occurred_at"],
        column_oriented=True,
    )
    for batch in ([*stored, odd_id, "new-1"], [*stored, "new-1"]):  # with and without the odd id
        times = stored_times(client, [_placed(event_id, 42) for event_id in batch])
        assert times["new-1"] == 42  # not stored: the batch's own time
        for n, event_id in enumerate(stored):
            assert times[event_id] == STORED_US + n
        if odd_id in batch:
            assert times[odd_id] == STORED_US + len(stored)

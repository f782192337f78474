"""The edge counts what it accepted where it accepts it (the group commit), per hour, route and tenant:
the same totals as reading the journal back, without reading it while the edge runs, and frames taken
before a start (after the last checkpoint) are read back once, never counted twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from ringback.config import Settings
from ringback.edge.accepted import AcceptedCounts
from ringback.edge.intake import Intake
from ringback.edge.journal import Journal, Position
from ringback.edge.publisher import Publisher
from ringback.runtime.raw import RawCallback, new_ingest_id

HOUR_US = 3600 * 1_000_000
T0_US = 1_795_000_000 * 1_000_000 // HOUR_US * HOUR_US
NOW_S = T0_US / 1_000_000 + 60


def raw(route: str, tenant: str = "", hour: int = 0) -> RawCallback:
    return RawCallback(route, new_ingest_id(), T0_US + hour * HOUR_US + 1, "10.0.0.1", "", b"{}", tenant=tenant)


MIX = [raw("cdr-push"), raw("cdr-push", tenant="acme"), raw("tencent/sms-status", hour=1), raw("cdr-push")]
EXPECTED = {
    (T0_US // 1_000_000, "cdr-push", ""): 2,
    (T0_US // 1_000_000, "cdr-push", "acme"): 1,
    (T0_US // 1_000_000 + 3600, "tencent/sms-status", ""): 1,
}


def read_back(folder: Path, bound: int) -> dict[tuple[int, str, str], int]:
    """What reading every frame of the journal counts (the reference the edge's counts must equal)."""
    journal = Journal(folder, bound)
    try:
        counts = AcceptedCounts(journal, through=journal.trimmed)
        counts.catch_up()
        return counts.totals
    finally:
        journal.close()


@pytest.fixture
def journal_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(edge_journal="on", kafka_bootstrap="127.0.0.1:9")


async def accept_all(intake: Intake, raws: list[RawCallback]) -> None:
    assert intake.commit is not None
    writer = asyncio.create_task(intake.commit.run())
    try:
        assert await asyncio.gather(*(intake.accept(r) for r in raws)) == ["journal"] * len(raws)
    finally:
        writer.cancel()


async def test_accepted_callbacks_are_counted_as_the_journal_takes_them(
    journal_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = Intake(journal_settings, Publisher(journal_settings), tmp_path / "journal")
    journal, accepted = intake.journal, intake.accepted
    assert journal is not None and accepted is not None
    try:
        await accept_all(intake, MIX)
        assert accepted.totals == EXPECTED and accepted.through == journal.end

        def unread(*args: object) -> None:
            raise AssertionError("the journal was read back to count what the edge accepted")

        monkeypatch.setattr(journal, "read", unread)
        message, _ = accepted.checkpoint(NOW_S)
        assert message is not None and accepted.totals == EXPECTED
    finally:
        journal.close()
    assert read_back(tmp_path / "journal", journal_settings.spool_max_bytes) == EXPECTED


async def test_frames_taken_before_a_start_are_read_back_once(journal_settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    before = Journal(folder, journal_settings.spool_max_bytes)
    before.append([r.to_bytes() for r in MIX[:2]])  # taken, then the edge died before a checkpoint
    before.close()
    intake = Intake(journal_settings, Publisher(journal_settings), folder)
    journal, accepted = intake.journal, intake.accepted
    assert journal is not None and accepted is not None
    try:
        await accept_all(intake, MIX[2:3])  # not counted yet: the frames before it are not
        assert accepted.through == Position(0, 0) and not accepted.totals
        accepted.count_and_save(NOW_S)  # what runs before every trim and every ledger message
        await accept_all(intake, MIX[3:])
        assert accepted.totals == EXPECTED and accepted.through == journal.end
    finally:
        journal.close()
    assert read_back(folder, journal_settings.spool_max_bytes) == EXPECTED

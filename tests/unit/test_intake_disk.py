"""The edge's intake over a journal whose disk fails (made at the journal's OS-call seam): every request
of a failed group commit hears a retryable failure, readiness waits for room and comes back, and a
trim the disk refused lets go of nothing and is tried again."""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ringback.config import Settings
from ringback.edge import intake as intake_module
from ringback.edge.flights import Flight
from ringback.edge.intake import Intake, NotDurable
from ringback.edge.journal import Journal, Position
from ringback.edge.publisher import Publisher
from ringback.runtime.raw import RawCallback, new_ingest_id
from tests.unit.test_journal_disk import Disk

REQUESTS = 40


class SizedDisk(Disk):
    def __init__(self) -> None:
        super().__init__()
        self.free = 1 << 30

    def free_bytes(self, directory: Path) -> int:
        return self.free


def raw(i: int) -> RawCallback:
    return RawCallback(
        "cdr-push", new_ingest_id(), time.time_ns() // 1000, "10.0.0.1", "application/json", b'{"i":%d}' % i
    )


@pytest.fixture
def intake_on(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Disk], Intake]:
    def build(disk: Disk) -> Intake:
        settings = make_settings(edge_journal="on", kafka_bootstrap="127.0.0.1:9")
        monkeypatch.setattr(intake_module, "Journal", lambda folder, bound: Journal(folder, bound, ops=disk))
        return Intake(settings, Publisher(settings), tmp_path / "journal")

    return build


async def accept_all(intake: Intake, start: int) -> list[str | Exception]:
    results = await asyncio.gather(
        *(intake.accept(raw(i)) for i in range(start, start + REQUESTS)), return_exceptions=True
    )
    return [r if isinstance(r, (str, Exception)) else repr(r) for r in results]


async def test_a_failing_disk_fails_every_request_and_readiness_comes_back_with_room(
    intake_on: Callable[[Disk], Intake],
) -> None:
    disk = SizedDisk()
    intake = intake_on(disk)
    assert intake.journal is not None
    assert intake.commit is not None
    writer = asyncio.create_task(intake.commit.run())
    try:
        assert await accept_all(intake, 0) == ["journal"] * REQUESTS
        disk.full, disk.free = True, 0
        refused = await accept_all(intake, 100)
        assert all(isinstance(r, NotDurable) for r in refused), refused
        assert intake.journal.untrimmed_records == REQUESTS
        assert not intake.accepting
        assert (intake.refusal or "").startswith("the journal's disk has no room"), intake.refusal
        disk.fail_fsync, disk.full = OSError(errno.EIO, "Input/output error"), False
        assert all(isinstance(r, NotDurable) for r in await accept_all(intake, 200))
        disk.fail_fsync, disk.free = None, 1 << 30  # room again (a trim or an operator freed it)
        assert intake.accepting and intake.refusal is None
        assert await accept_all(intake, 300) == ["journal"] * REQUESTS
        bodies = [RawCallback.from_bytes(p).body for p in intake.journal.read(intake.journal.trimmed, 1000)[0]]
        assert bodies == [raw(i).body for i in [*range(REQUESTS), *range(300, 300 + REQUESTS)]]
    finally:
        writer.cancel()
        intake.journal.close()


async def test_a_trim_the_disk_refuses_keeps_the_flights_and_is_tried_again(
    intake_on: Callable[[Disk], Intake],
) -> None:
    disk = SizedDisk()
    intake = intake_on(disk)
    journal, mending = intake.journal, intake.mending
    assert journal is not None and mending is not None
    try:
        journal.append([raw(i).to_bytes() for i in range(5)])
        _, end = journal.read(journal.trimmed, 10)
        intake.flights.add(Flight(end, 5, {0: (0, 4)}))
        mending.watermark.is_stored = lambda partition, low, high: True  # type: ignore[method-assign]
        disk.fail_write = OSError(errno.EIO, "Input/output error")
        await mending.trim_stored()
        assert len(intake.flights) == 1 and journal.trimmed == Position(0, 0) and journal.untrimmed_records == 5
        disk.fail_write = None
        await mending.trim_stored()
        assert not intake.flights and journal.trimmed == end and journal.is_empty
    finally:
        journal.close()


async def test_spool_mode_remembers_a_trim_the_disk_refused(intake_on: Callable[[Disk], Intake]) -> None:
    disk = SizedDisk()
    intake = intake_on(disk)
    journal, publisher = intake.journal, intake.journal_publisher
    assert journal is not None and publisher is not None
    try:
        journal.append([raw(i).to_bytes() for i in range(3)])
        _, end = journal.read(journal.trimmed, 10)
        publisher.owed_trim = (end, 3)
        disk.fail_fsync = OSError(errno.EIO, "Input/output error")
        await publisher.trim_owed()
        assert publisher.owed_trim == (end, 3) and journal.untrimmed_records == 3
        disk.fail_fsync = None
        await publisher.trim_owed()
        assert publisher.owed_trim is None and journal.is_empty
    finally:
        journal.close()

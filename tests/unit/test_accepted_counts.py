"""What the edge acknowledged, counted from its journal: exact across trims, crashes and lost messages."""

from __future__ import annotations

from pathlib import Path

import orjson

from ringback.edge.accepted import AcceptedCounts
from ringback.edge.journal import Journal
from ringback.runtime.ledger import EDGE_ACCEPTED_TOTAL, ledger_rows
from ringback.runtime.raw import RawCallback

HOUR_S = 3600
T0_US = 1_795_000_000 * 1_000_000 // (HOUR_S * 1_000_000) * (HOUR_S * 1_000_000)
NOW_S = T0_US / 1_000_000 + 60


def raws(n: int, route: str = "cdr-push", tenant: str = "", hour: int = 0) -> list[bytes]:
    at = T0_US + hour * HOUR_S * 1_000_000
    return [
        RawCallback(route, f"ingest-{route}-{hour}-{i}", at + i, "", "", b"{}", tenant=tenant).to_bytes()
        for i in range(n)
    ]


def totals(counts: AcceptedCounts) -> dict[tuple[str, str], int]:
    return {(route, tenant): n for (_, route, tenant), n in counts.totals.items()}


def said(message: bytes | None) -> dict[tuple[str, str], int]:
    assert message is not None
    return {(row.route, row.tenant): row.seq for row in ledger_rows(message) if row.stage == EDGE_ACCEPTED_TOTAL}


def test_every_frame_is_counted_once_across_trims_and_reopening(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(raws(3))
    end = journal.append(raws(2, tenant="acme"))
    counts = AcceptedCounts.open(journal)
    message, _ = counts.checkpoint(NOW_S)
    assert said(message) == {("cdr-push", ""): 3, ("cdr-push", "acme"): 2}
    journal.trim(end, 5)
    journal.append(raws(4, route="tencent/sms-status"))
    journal.close()

    # the edge dies: the journal and the checkpoint are all that is left
    reopened = AcceptedCounts.open(Journal(tmp_path, max_bytes=1_000_000))
    message, _ = reopened.checkpoint(NOW_S)
    assert totals(reopened) == {("cdr-push", ""): 3, ("cdr-push", "acme"): 2, ("tencent/sms-status", ""): 4}
    assert said(message) == totals(reopened)  # everything said again after a start
    assert reopened.instance == counts.instance


def test_a_total_not_published_goes_out_with_the_next_one_and_all_again_after_a_broker_loss(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(raws(2))
    counts = AcceptedCounts.open(journal)
    _, keys = counts.checkpoint(NOW_S)
    counts.give_back(keys)  # the broker did not take it
    journal.append(raws(1, route="other"))
    message, _ = counts.checkpoint(NOW_S)
    assert said(message) == {("cdr-push", ""): 2, ("other", ""): 1}
    assert counts.checkpoint(NOW_S)[0] is None  # nothing new
    counts.say_all_again()
    assert said(counts.checkpoint(NOW_S)[0]) == {("cdr-push", ""): 2, ("other", ""): 1}


def test_the_same_total_said_twice_is_one_ledger_row(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(raws(2))
    counts = AcceptedCounts.open(journal)
    first, _ = counts.checkpoint(NOW_S)
    counts.say_all_again()
    again, _ = counts.checkpoint(NOW_S)
    assert first is not None and again is not None
    assert ledger_rows(first) == ledger_rows(again)


def test_counts_before_a_trim_cover_it_also_when_the_trim_comes_first(tmp_path: Path) -> None:
    """The edge saves the counts before every trim: frames let go of are never uncounted."""
    journal = Journal(tmp_path, max_bytes=1_000_000)
    end = journal.append(raws(5))
    counts = AcceptedCounts.open(journal)
    counts.count_and_save(NOW_S)
    journal.trim(end, 5)
    journal.close()
    reopened = AcceptedCounts.open(Journal(tmp_path, max_bytes=1_000_000))
    reopened.catch_up()
    assert totals(reopened) == {("cdr-push", ""): 5}


def test_old_hours_are_dropped(tmp_path: Path) -> None:
    journal = Journal(tmp_path, max_bytes=1_000_000)
    journal.append(raws(1, hour=0))
    journal.append(raws(1, hour=100))
    counts = AcceptedCounts.open(journal)
    message, _ = counts.checkpoint(NOW_S + 100 * HOUR_S)
    latest = T0_US // 1_000_000 + 100 * HOUR_S
    assert [hour for hour, *_ in counts.totals] == [latest]
    assert [row[0] for row in orjson.loads(message or b"{}")["rows"]] == [latest]

"""What the edge acknowledged, counted from its journal: exact across trims, crashes and lost messages."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),  # frames
            st.integers(min_value=0, max_value=80),  # hour of receipt
            st.sampled_from(["cdr-push", "tencent/sms-status"]),
            st.sampled_from(["", "acme", "zeta"]),
            st.integers(min_value=0, max_value=160),  # the hour of the checkpoint (0: none now)
        ),
        max_size=12,
    )
)
def test_the_checkpoint_written_is_every_total_kept_and_reopens_to_them(
    steps: list[tuple[int, int, str, str, int]],
) -> None:
    """A save writes again only the hours counted since the last one; the file must still hold every
    total kept, sorted, whatever hours were counted, saved, expired or reopened in between. (A save
    with nothing new counted writes nothing: an hour expired then leaves the file at the next one.)"""
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(Path(folder), max_bytes=10_000_000)
        counts = AcceptedCounts.open(journal)
        unsaved = False
        for n, (frames, hour, route, tenant, now_hour) in enumerate(steps):
            start = journal.end
            taken = [
                RawCallback.from_bytes(p)
                for p in raws(frames, route=route, tenant=tenant, hour=hour)
                if journal.append([p.replace(b"ingest-", f"ingest-{n}-".encode())]) or True
            ]
            counts.took(start, journal.end, taken)
            unsaved = unsaved or frames > 0
            if now_hour:
                counts.checkpoint(NOW_S + now_hour * HOUR_S)
                if not unsaved:
                    continue
                unsaved = False
                written = orjson.loads(counts.path.read_bytes())["totals"]
                assert written == [[h, r, t, total] for (h, r, t), total in sorted(counts.totals.items())]
                reopened = AcceptedCounts.open(journal)
                assert reopened.totals == counts.totals and reopened.through == counts.through


def test_a_save_costs_the_hour_counted_since_not_every_total_kept(tmp_path: Path) -> None:
    """100 tenants x 5 routes x 72 hours kept: every trim saves the checkpoint on the journal's thread
    (group commits wait behind it). Sorting and rendering all 36,000 totals cost ~65 ms a save; only
    the hour counted since is rendered again (~4 ms here, most of it writing the file)."""
    journal = Journal(tmp_path, max_bytes=100_000_000)
    counts = AcceptedCounts.open(journal)
    for hour in range(72):
        for route in range(5):
            start = journal.end
            frames = [
                p for tenant in range(100) for p in raws(1, route=f"route-{route}", tenant=f"t{tenant}", hour=hour)
            ]
            journal.append(frames)
            counts.took(start, journal.end, [RawCallback.from_bytes(p) for p in frames])
    now_s = NOW_S + 71 * HOUR_S
    counts.save(now_s)
    assert len(counts.totals) == 36_000
    latest = [RawCallback.from_bytes(p) for p in raws(1, tenant="t7", hour=71)]
    started = time.process_time()
    for _ in range(60):
        start = journal.end
        journal.append([p.to_bytes() for p in latest])
        counts.took(start, journal.end, latest)
        counts.save(now_s)
    assert time.process_time() - started < 2.0  # ~0.3 s here; all rendered at every save: ~4 s
    written = {
        (r, t): n
        for h, r, t, n in orjson.loads(counts.path.read_bytes())["totals"]
        if h == latest[0].received_at_us // 10**6
    }
    assert len(written) == 501 and written[("cdr-push", "t7")] == 60

"""The consumer kit's durable id store: the dedupe rule kept on disk, across processes, within its window."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ringback.consumer import DurableIds, Verdict, billing_digest, micros

RECEIVED = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
BILL = (Decimal("1.000000"), 60, 1, "answered")
ID = "0123456789abcdef0123456789abcdef"


def at(minutes: float) -> int:
    return micros(RECEIVED + timedelta(minutes=minutes))


def test_ids_kept_are_known_after_reopening(tmp_path: Path) -> None:
    ids = DurableIds(tmp_path / "g.ids.sqlite")
    assert ids.judge(ID, at(0), BILL) is Verdict.FIRST
    assert ids.judge(ID, at(0), BILL) is Verdict.DUPLICATE  # within the same batch, before it is kept
    ids.keep()
    ids.close()
    again = DurableIds(tmp_path / "g.ids.sqlite")
    assert again.judge(ID, at(5), BILL) is Verdict.DUPLICATE
    assert again.judge(ID, at(5), (Decimal("9.99"), 60, 1, "answered")) is Verdict.CONFLICT
    assert again.judge("other", at(5), BILL) is Verdict.FIRST


def test_ids_of_a_batch_not_processed_are_not_kept(tmp_path: Path) -> None:
    ids = DurableIds(tmp_path / "g.ids.sqlite")
    assert ids.judge(ID, at(0), BILL) is Verdict.FIRST
    ids.drop_pending()
    ids.keep()
    assert ids.judge(ID, at(0), BILL) is Verdict.FIRST


def test_ids_are_forgotten_after_max_age_of_stream_time_and_beyond_max_ids(tmp_path: Path) -> None:
    ids = DurableIds(tmp_path / "g.ids.sqlite", max_age=timedelta(hours=1), max_ids=3)
    for n in range(3):
        ids.judge(f"id-{n}", at(n), BILL)
    ids.keep()
    ids.judge("id-3", at(3), BILL)
    ids.keep()
    assert len(ids) == 3  # id-0, the oldest, made room
    assert ids.judge("id-0", at(3), BILL) is Verdict.FIRST
    ids.judge("late", at(200), BILL)  # stream time moves three hours on
    ids.keep()
    assert ids.judge("id-3", at(200), BILL) is Verdict.FIRST


def test_the_billing_digest_is_the_same_in_every_process() -> None:
    """``hash`` of text is salted per process; what is stored must compare across runs."""
    code = (
        "from decimal import Decimal; from ringback.consumer import billing_digest; "
        "print(billing_digest((Decimal('1.50'), 60, 1, 'answered')).hex())"
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout for _ in range(2)}
    assert runs == {billing_digest((Decimal("1.5"), 60, 1, "answered")).hex().encode() + b"\n"}


@pytest.mark.parametrize(("max_age", "max_ids"), [(timedelta(0), 10), (timedelta(hours=1), 0)])
def test_an_empty_window_is_refused(tmp_path: Path, max_age: timedelta, max_ids: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        DurableIds(tmp_path / "g.ids.sqlite", max_age, max_ids)

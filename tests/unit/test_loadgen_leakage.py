"""The load generator's leakage: CDRs dropped for answered calls, final receipts that never come, and
the statement the CDR platform would send for a run's calls."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from ringback.tools.loadgen.cdr_platform import two_way_call
from ringback.tools.loadgen.leakage import Leakage
from ringback.tools.loadgen.parties import ANONYMOUS, make_apps
from ringback.tools.loadgen.story import Push, StoryKit
from ringback.tools.loadgen.tencent_sms import sms_send

STORIES = 300
START = 1_795_000_000


def calls(leakage: Leakage) -> list[list[Push]]:
    rng = random.Random(11)
    kit = StoryKit(rng, "lk", leakage)
    app = make_apps(rng, 1, [ANONYMOUS])[0]
    return [two_way_call(kit, app, number).tell(START) for number in range(STORIES)]


def answered(pushes: list[Push]) -> bool:
    return any(isinstance(p.body, dict) and p.body.get("state") == "answer" for p in pushes)


def has_cdr(pushes: list[Push]) -> bool:
    return any(isinstance(p.body, dict) and "cdr" in p.body for p in pushes)


def test_every_call_has_its_cdr_without_leakage() -> None:
    leakage = Leakage()
    told = calls(leakage)
    assert all(has_cdr(pushes) for pushes in told)
    assert leakage.statement == []  # kept only when asked for


def test_dropped_cdrs_are_those_of_answered_calls_and_the_statement_bills_every_call(tmp_path: Path) -> None:
    leakage = Leakage(drop_cdrs_pct=50, keep_statement=True)
    told = calls(leakage)
    without = [pushes for pushes in told if not has_cdr(pushes)]
    assert without and all(answered(pushes) for pushes in without)
    assert len(without) == leakage.dropped_cdrs
    assert all(has_cdr(pushes) for pushes in told if not answered(pushes))
    path = tmp_path / "statement.csv"
    assert leakage.write_statement(path) == 0  # nothing sent yet: nothing billed
    leakage.sent_until = float("inf")
    assert leakage.write_statement(path) == STORIES
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [row["requestid"] for row in rows] == [f"lk-{n}" for n in range(STORIES)]


def test_stuck_receipts_never_get_their_final_receipt() -> None:
    rng = random.Random(5)
    leakage = Leakage(stuck_receipts_pct=100)
    kit = StoryKit(rng, "lk", leakage)
    app = make_apps(rng, 1, [ANONYMOUS])[0]
    codes: dict[str, list[str]] = {}
    for number in range(STORIES):
        for push in sms_send(kit, app, number).tell(START):
            if push.route == "tencent/sms-status":
                for receipt in push.body:
                    codes.setdefault(receipt["sid"], []).append(receipt["errmsg"])
    enroute = [sid for sid, seen in codes.items() if seen[0] == "ENROUTE"]
    assert enroute and all(codes[sid] == ["ENROUTE"] for sid in enroute)
    assert leakage.stuck_messages == len(enroute)


@pytest.mark.parametrize("pct", [-1.0, 100.5])
def test_a_share_outside_0_to_100_is_refused(pct: float) -> None:
    with pytest.raises(ValueError, match="percentage"):
        Leakage(drop_cdrs_pct=pct)

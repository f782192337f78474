"""The table of Chinese mobile segments built with the environment answers as looking each segment up
would, and a table that does not fit (another phonenumbers, another lookup, a damaged file) is not taken."""

from __future__ import annotations

import json
import random
from array import array
from collections.abc import Callable
from pathlib import Path

import phonenumbers
import pytest

from ringback.normalizer import phones
from ringback.tools import segments

BUILT = phones.SEGMENT_TABLE


def test_the_table_built_with_the_environment_is_taken() -> None:
    assert phones.SEGMENTS.loaded, phones.SEGMENT_TABLE_REFUSED or f"no table at {BUILT}: `make venv` builds it"
    assert segments.main(["--check"]) == 0


def test_its_answers_are_those_of_looking_each_segment_up() -> None:
    """Every segment where the answer changes (both sides), and a sample of the others."""
    taken = phones.SegmentAnswers()
    assert taken.load(BUILT.read_bytes()) is None
    slots = array("H", BUILT.read_bytes().split(b"\n", 2)[2])
    changes = [i for i in range(1, len(slots)) if slots[i] != slots[i - 1]]
    rng = random.Random(3)
    sample = {0, len(slots) - 1, *rng.sample(range(len(slots)), 1500)}
    for i in rng.sample(changes, min(len(changes), 700)):
        sample |= {i - 1, i}
    for slot in sorted(sample):
        segment = phones.CN_FIRST_SEGMENT + slot
        assert taken.answer(segment) == phones._segment_carrier_and_region(segment), segment


def _with_header(change: dict[str, object]) -> bytes:
    magic, line, body = BUILT.read_bytes().split(b"\n", 2)
    return b"\n".join([magic, json.dumps({**json.loads(line), **change}).encode(), body])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (lambda: b"not a table", "not a segment table"),
        (lambda: phones.SEGMENT_TABLE_MAGIC + b"\n{oops\n", "does not read"),
        (lambda: _with_header({"phonenumbers": "0.0.1"}), "made for phonenumbers 0.0.1"),
        (lambda: _with_header({"source": "0" * 64}), "made before phones.py changed"),
        (lambda: _with_header({"answers": [["a", 1]]}), "does not read"),
        (lambda: BUILT.read_bytes()[:-2], "size is wrong"),
        (lambda: _with_header({"answers": [["China Mobile", "Beijing"]]}), "names answers it does not hold"),
    ],
)
def test_a_table_that_does_not_fit_is_not_taken(data: Callable[[], bytes], reason: str) -> None:
    answers = phones.SegmentAnswers()
    refused = answers.load(data())
    assert refused is not None and reason in refused
    assert not answers.loaded
    assert answers.answer(1_380_013) == phones._segment_carrier_and_region(1_380_013)  # looked up, as without one


def test_the_check_fails_without_a_table_that_is_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(phones, "SEGMENT_TABLE", tmp_path / "cn_segments.bin")
    assert segments.main(["--check"]) == 1
    (tmp_path / "cn_segments.bin").write_bytes(_with_header({"phonenumbers": "0.0.1"}))
    assert segments.main(["--check"]) == 1
    assert phonenumbers.__version__ != "0.0.1"

"""A story: what happens, decided first, told later as the vendor's pushes; the kit stories draw on."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ringback.tools.loadgen.calls import (
    ANSWERED,
    NOT_ANSWERED,
    Dial,
    dial,
)
from ringback.tools.loadgen.draws import LogNormal
from ringback.tools.loadgen.leakage import Leakage
from ringback.tools.loadgen.parties import MOBILE_PREFIX_TABLE, MOBILE_STRIDE, MOBILE_SUFFIXES, App

CHINA_UTC_OFFSET_S = 8 * 3600  # Asia/Shanghai, the vendors' local time (no daylight saving since 1991)
LOCAL_TIME_CACHE = 4096


@dataclass(slots=True)
class Push:
    """One push of a story: it happened at ``at`` (unix seconds) and the vendor sends it ``delay`` later."""

    route: str
    at: int
    delay: float
    body: Any
    events: int = 1


@dataclass(frozen=True)
class Story:
    """What happens, decided; ``tell`` renders its pushes, in the vendor's order, for a start time."""

    last_event_s: int  # the last event, in seconds after the start
    tell: Callable[[int], list[Push]]


class StoryKit:
    """What every story draws on: the run's random source and tag, unique mobile numbers, local times,
    outcomes and dialled legs, and an app's way of writing numbers."""

    def __init__(self, rng: random.Random, tag: str, leakage: Leakage | None = None) -> None:
        self.rng = rng
        self.tag = tag
        self.leakage = leakage or Leakage()
        self.numbers = 0
        self.number_offset = rng.randrange(MOBILE_SUFFIXES)
        self.local_times: dict[int, str] = {}

    def mobile(self) -> str:
        """A mobile number no other party of this run has."""
        self.numbers += 1
        suffix = (
            self.numbers * MOBILE_STRIDE + self.number_offset
        ) % MOBILE_SUFFIXES + MOBILE_SUFFIXES  # a leading 1 keeps the zeros
        return MOBILE_PREFIX_TABLE[int(self.rng.random() * len(MOBILE_PREFIX_TABLE))] + str(suffix)[1:]

    def local(self, unix: int) -> str:
        """China local time as the CDR platform and Tencent SMS write it."""
        text = self.local_times.get(unix)
        if text is None:
            if len(self.local_times) >= LOCAL_TIME_CACHE:
                self.local_times.clear()
            text = self.local_times[unix] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix + CHINA_UTC_OFFSET_S))
        return text

    def outcome(self, app: App) -> str:
        return ANSWERED if self.rng.random() < app.answer_ratio else NOT_ANSWERED.draw(self.rng)

    def dial(self, outcome: str, talk: LogNormal) -> Dial:
        """A leg dialled at 0: rings, then is answered and talks, or is not answered and why."""
        return dial(self.rng, outcome, talk)

    def amount(self, app: App, text: str) -> Any:
        return float(text) if app.amounts_as_numbers else text  # a 2-decimal float prints as its 2 decimals

    def count(self, app: App, value: int) -> Any:
        return value if app.amounts_as_numbers else str(value)

"""How a dialled leg goes: outcomes, ring and talk times, the vendors' push delays, billed minutes."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ringback.tools.loadgen.draws import LogNormal, Weighted, between

# --- Calls: outcomes and durations -----------------------------------------------------------------------
ANSWERED, NO_ANSWER, BUSY, REJECTED, UNREACHABLE, INVALID_NUMBER, CALL_FAILED = (
    "answered",
    "no_answer",
    "busy",
    "rejected",
    "unreachable",
    "invalid_number",
    "call_failed",
)
#: Why a placed call that was not answered was not (the app's answer ratio decides whether it was).
NOT_ANSWERED = Weighted({NO_ANSWER: 45, UNREACHABLE: 20, BUSY: 14, REJECTED: 8, INVALID_NUMBER: 7, CALL_FAILED: 6})
TALK_S = LogNormal(median=75, sigma=0.9, low=1, high=1800)  # a conversation: mean ~110 s, 30 min at most
SETUP_S = (1, 3)  # uniform: dialled -> ringing
RING_S = LogNormal(median=7, sigma=0.5, low=1, high=50)  # ringing -> answered
NO_ANSWER_RING_S = (30, 60)  # uniform: how long an unanswered phone rings before the network gives up
REJECT_AFTER_S = (3, 15)  # uniform: ringing -> declined
FAIL_AFTER_S = (1, 8)  # uniform: dialled -> busy tone, announcement (powered off, vacant) or error
#: Event -> push (the vendor's delivery), per kind of push.
STATE_PUSH_DELAY_S = LogNormal(median=0.8, sigma=0.6, low=0.05, high=10)
CDR_PUSH_DELAY_S = LogNormal(median=3, sigma=0.6, low=0.5, high=30)
RECORDING_DELAY_S = LogNormal(median=12, sigma=0.5, low=2, high=60)  # the file is processed first
PUSH_DELAY_MAX_S = 60  # the highest of the delays above


@dataclass(slots=True)
class Dial:
    """How a dialled leg went, in seconds after it was dialled (None: never)."""

    outcome: str
    rang: int | None
    answered: int | None
    ended: int

    @property
    def talk_s(self) -> int:
        return self.ended - self.answered if self.answered is not None else 0


def billed_minutes(talk_s: int) -> int:
    return -(-talk_s // 60)


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def dial(rng: random.Random, outcome: str, talk: LogNormal) -> Dial:
    """A leg dialled at 0: rings, then is answered and talks, or is not answered and why."""
    if outcome in (UNREACHABLE, INVALID_NUMBER, CALL_FAILED, BUSY):  # a busy tone, an announcement or an error
        return Dial(outcome, None, None, between(rng, FAIL_AFTER_S))
    rang = between(rng, SETUP_S)
    if outcome == NO_ANSWER:
        return Dial(outcome, rang, None, rang + between(rng, NO_ANSWER_RING_S))
    if outcome == REJECTED:
        return Dial(outcome, rang, None, rang + between(rng, REJECT_AFTER_S))
    answered = rang + RING_S.seconds(rng)
    return Dial(outcome, rang, answered, answered + talk.seconds(rng))

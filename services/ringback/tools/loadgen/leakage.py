"""Leakage to find: CDRs the CDR platform never sends for answered calls (``--drop-cdrs``), SMS whose
final receipt never comes (``--stuck-receipts``), and the statement the CDR platform would send for the
calls of a run (``--statement-out``): every two-way call it billed, sent or not, at its ``oriamount``."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

PERCENT = 100.0
STATEMENT_HEADER = ("requestid", "calltime", "fee", "duration")


@dataclass
class Leakage:
    drop_cdrs_pct: float = 0.0
    stuck_receipts_pct: float = 0.0
    keep_statement: bool = False  # a long run keeps no statement unless asked to
    statement: list[tuple[float, tuple[str, str, str, str]]] = field(default_factory=list)
    #: The due time of the last push sent: the statement bills the calls whose CDR was due by then.
    sent_until: float = -math.inf
    dropped_cdrs: int = 0
    stuck_messages: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_cdrs_pct", "stuck_receipts_pct"):
            value = getattr(self, name)
            if not 0.0 <= value <= PERCENT:
                raise ValueError(f"{name.removesuffix('_pct').replace('_', '-')} must be a percentage from 0 to 100")

    def drops_cdr(self, rng: random.Random) -> bool:
        """Whether the platform never sends this answered call's CDR (no draw when nothing is dropped, so
        runs without leakage stay what their seed makes them)."""
        dropped = self.drop_cdrs_pct > 0 and rng.random() * PERCENT < self.drop_cdrs_pct
        self.dropped_cdrs += dropped
        return dropped

    def sticks(self, rng: random.Random) -> bool:
        """Whether the final receipt of a message first reported ENROUTE never comes."""
        stuck = self.stuck_receipts_pct > 0 and rng.random() * PERCENT < self.stuck_receipts_pct
        self.stuck_messages += stuck
        return stuck

    def bill(self, due: float, request_id: str, local_time: str, amount: str, duration_s: int) -> None:
        """A call the platform bills; ``due``: when its CDR push is (or would have been) sent."""
        if self.keep_statement:
            self.statement.append((due, (request_id, local_time, amount, str(duration_s))))

    def write_statement(self, path: Path) -> int:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(STATEMENT_HEADER)
            lines = [line for due, line in self.statement if due <= self.sent_until]
            writer.writerows(lines)
        return len(lines)

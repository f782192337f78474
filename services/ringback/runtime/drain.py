"""Draining a consumer on shutdown: keep polling until the topic has gone quiet, within a deadline.

The check is "consecutive polls that return nothing", not a comparison with the partitions' end
offsets: the embedded broker reports the latest offset as the last batch's base offset + 1, which
would end a drain early whenever that batch held more than one record.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

QUIET_POLLS = 2


async def drain(poll: Callable[[], Awaitable[int]], timeout_s: float) -> int:
    """Call ``poll`` (returning how many records it handled) until it is quiet or time runs out."""
    deadline = time.monotonic() + timeout_s
    handled = 0
    quiet = 0
    while quiet < QUIET_POLLS and time.monotonic() < deadline:
        count = await poll()
        handled += count
        quiet = quiet + 1 if count == 0 else 0
    return handled

"""Stop signals to `ringback run`: a burst is one request, a later one hurries, none ends the process."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from ringback.runtime import lifecycle
from ringback.runtime.lifecycle import REPEAT_WINDOW_S, Shutdown, shutdown_on_signals


def test_repeated_signals_never_end_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle.time, "monotonic", lambda: 100.0)  # all within the window, however slow the box

    async def handled(shutdown: Shutdown, count: int) -> None:
        while shutdown.requests < count:
            await asyncio.sleep(0)

    async def main() -> Shutdown:
        shutdown = shutdown_on_signals()
        for count, sig in enumerate((signal.SIGTERM, signal.SIGINT, signal.SIGTERM, signal.SIGINT), start=1):
            os.kill(os.getpid(), sig)
            await asyncio.wait_for(handled(shutdown, count), 5)  # each one handled before the next is sent
        return shutdown

    shutdown = asyncio.run(main())  # still here: neither the default SIGTERM nor KeyboardInterrupt
    assert shutdown.stop.is_set() and not shutdown.hurry.is_set()


def test_asked_again_after_the_window_hurries(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(lifecycle.time, "monotonic", lambda: now[0])
    shutdown = Shutdown()
    shutdown.request(signal.SIGTERM)
    now[0] += REPEAT_WINDOW_S / 2
    shutdown.request(signal.SIGTERM)  # timeout's or make's copy of the same stop
    assert shutdown.stop.is_set() and not shutdown.hurry.is_set()
    now[0] += REPEAT_WINDOW_S
    shutdown.request(signal.SIGINT)
    assert shutdown.hurry.is_set()

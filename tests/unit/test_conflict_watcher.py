"""When the sink looks for billing conflicts: only when events were stored since its last look, and
once the interval has passed even when no batch follows (the last resends before a quiet spell)."""

from __future__ import annotations

import time
from typing import Any

from ringback.sink.conflicts import ConflictWatcher


class NoVariants:
    """A store holding no conflicting variants; counts the looks."""

    def __init__(self) -> None:
        self.looks = 0

    def query(self, *_args: Any, **_kwargs: Any) -> Any:
        self.looks += 1
        return type("Result", (), {"result_rows": []})()


def test_nothing_stored_nothing_owed() -> None:
    assert not ConflictWatcher(0.01).due()


def test_a_look_owed_by_a_batch_stored_inside_the_interval_is_taken_after_it_without_more_traffic() -> None:
    watcher, store = ConflictWatcher(0.2), NoVariants()
    watcher.stored()
    assert watcher.due()
    watcher.look(store)  # type: ignore[arg-type]
    assert not watcher.due()  # nothing stored since
    watcher.stored()  # the resends, stored right after the look
    assert not watcher.due()  # inside the interval
    time.sleep(0.25)
    assert watcher.due()  # and no batch has to follow for it
    watcher.look(store)  # type: ignore[arg-type]
    assert store.looks == 2 and not watcher.due()

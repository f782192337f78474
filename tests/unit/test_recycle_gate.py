"""When the embedded broker is recycled: over its memory bound, or asked to by a file (taken once)."""

from __future__ import annotations

from pathlib import Path

from ringback.config import Settings
from ringback.runtime.recycle_gate import RECYCLE_REQUEST, reason_to_recycle


def test_a_broker_is_recycled_over_its_memory_bound_or_when_asked_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), embedded_broker_max_mb=100)
    assert reason_to_recycle(settings, 99.0) is None
    assert "more than embedded_broker_max_mb" in (reason_to_recycle(settings, 101.0) or "")
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / RECYCLE_REQUEST).touch()
    assert "asked to" in (reason_to_recycle(settings, 1.0) or "")
    assert reason_to_recycle(settings, 1.0) is None  # the request was taken

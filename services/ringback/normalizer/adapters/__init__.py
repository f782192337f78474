"""Vendor formats: one module per format, each exposing ``ADAPTERS``; this package finds them all.

Adding a vendor format means adding one module here (and its fixtures under ``tests/fixtures``), and
its route to ``ringback.routes`` (the edge's side: path and reply style).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ringback.normalizer.event import Context
from ringback.normalizer.outcome import Outcome
from ringback.routes import BY_NAME
from ringback.runtime.raw import RawCallback

Normalize = Callable[[RawCallback, Context], list[Outcome]]


@dataclass(frozen=True)
class Adapter:
    route: str  # a route of ringback.routes, e.g. "tencent/sms-status"
    source: str  # vendor format name stored on every event, e.g. "tencent.sms_status"
    normalize: Normalize


@lru_cache(maxsize=1)
def registry() -> dict[str, Adapter]:
    """Every adapter in this package, by route."""
    found: dict[str, Adapter] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for adapter in getattr(module, "ADAPTERS", ()):
            if adapter.route in found:
                raise RuntimeError(f"two adapters claim route {adapter.route!r}")
            if adapter.route not in BY_NAME:
                raise RuntimeError(f"adapter for {adapter.route!r}, a route ringback.routes does not list")
            found[adapter.route] = adapter
    return found

"""Request rate limits: one token bucket per tenant or per remote address.

A bucket holds up to ``rate × burst_s`` tokens and refills at ``rate`` per second; a request takes one.
Buckets for remote addresses are kept for the most recently seen ``max_buckets`` addresses only, so a
flood of source addresses cannot grow the edge's memory without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self, burst_s: float, max_buckets: int = DEFAULT_MAX_BUCKETS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst_s = burst_s
        self.max_buckets = max_buckets
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def allow(self, key: str, rate_per_s: float) -> bool:
        """Take a token from ``key``'s bucket; False when it is empty. A rate of 0 means no limit."""
        if rate_per_s <= 0:
            return True
        now = self.clock()
        capacity = max(1.0, rate_per_s * self.burst_s)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(capacity, now)
            if len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate_per_s)
            bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def __len__(self) -> int:
        return len(self._buckets)

"""What the callback requests being handled hold, and when the edge sheds load.

Two budgets, each with a share per client address (its address as the door sees it, so behind trusted
proxies the client's, not the load balancer's):

- requests: at most ``edge_max_in_flight`` at once, at most ``edge_in_flight_share_per_ip`` of them
  from one address;
- body bytes: counted as they arrive (and, for a compressed body, as they are decoded), never as a
  ``Content-Length`` announces them — a client that announces a megabyte and sends nothing holds
  nothing. At most ``edge_max_in_flight_bytes`` at once, at most the address's share of them (never
  less than one ``max_body_bytes`` body, so a lone request always fits).

A request past a budget is shed with the vendor's retryable failure. Shedding for lack of room in the
whole edge makes ``/readyz`` answer 503 (``shedding``, with its reason) until nothing has been shed for
``edge_shed_ready_hold_s``; an address over its share is shed alone and the edge stays ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ringback import logs, metrics

#: Shedding reasons. The first two are the whole edge's; the others one address's.
REQUESTS = "in_flight_requests"
BYTES = "in_flight_bytes"
ADDRESS_REQUESTS = "address_share_requests"
ADDRESS_BYTES = "address_share_bytes"
EDGE_REASONS = (REQUESTS, BYTES)
#: At most one log line per shedding reason in this many seconds.
SHED_LOG_INTERVAL_S = 5.0

log = logs.get(__name__)


@dataclass
class Holding:
    """What one address holds now."""

    requests: int = 0
    bytes: int = 0


@dataclass
class Lease:
    """One request's place in the budgets, released exactly once."""

    budget: InFlight
    address: str
    bytes: int = 0
    released: bool = False

    def hold(self, total: int) -> str | None:
        """The request now holds ``total`` body bytes; None when that fits, else the shedding reason
        (the bytes held stay as they were)."""
        return self.budget._resize(self, total)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.budget._release(self)


@dataclass
class InFlight:
    limit: int
    byte_limit: int
    share: float
    clock: Callable[[], float] = time.monotonic
    count: int = 0
    bytes: int = 0
    _by_address: dict[str, Holding] = field(default_factory=dict)
    _last_shed: dict[str, float] = field(default_factory=dict)
    _last_logged: dict[str, float] = field(default_factory=dict)

    def export_gauges(self) -> None:
        """What is in flight, as gauges read when metrics are scraped: no gauge is set per request (a
        set takes a lock, ~0.3 µs, three to five times a request)."""
        metrics.EDGE_IN_FLIGHT.set_function(lambda: self.count)
        metrics.EDGE_IN_FLIGHT_BYTES.set_function(lambda: self.bytes)

    @property
    def per_address_limit(self) -> int:
        return max(1, int(self.limit * self.share))

    @property
    def per_address_bytes(self) -> int:
        return int(self.byte_limit * self.share)

    def enter(self, address: str) -> Lease | str:
        """A lease for a new request from ``address``, or why it is shed."""
        holding = self._by_address.get(address)
        if self.count >= self.limit:
            return self._shed(REQUESTS, address)
        if holding is not None and holding.requests >= self.per_address_limit:
            return self._shed(ADDRESS_REQUESTS, address)
        if holding is None:
            holding = self._by_address[address] = Holding()
        holding.requests += 1
        self.count += 1
        return Lease(self, address)

    def _resize(self, lease: Lease, total: int) -> str | None:
        more = total - lease.bytes
        holding = self._by_address[lease.address]
        if more > 0:
            # A lone request always fits (its body is bounded by max_body_bytes): a budget or share below one
            # body would otherwise refuse every such body.
            if self.count > 1 and self.bytes + more > self.byte_limit:
                return self._shed(BYTES, lease.address)
            if holding.requests > 1 and holding.bytes + more > self.per_address_bytes:
                return self._shed(ADDRESS_BYTES, lease.address)
        lease.bytes = total
        holding.bytes += more
        self.bytes += more
        return None

    def _release(self, lease: Lease) -> None:
        holding = self._by_address[lease.address]
        holding.requests -= 1
        holding.bytes -= lease.bytes
        if holding.requests <= 0:
            del self._by_address[lease.address]
        self.count -= 1
        self.bytes -= lease.bytes

    def _shed(self, reason: str, address: str) -> str:
        now = self.clock()
        self._last_shed[reason] = now
        metrics.EDGE_SHED.labels(reason).inc()
        if now - self._last_logged.get(reason, float("-inf")) >= SHED_LOG_INTERVAL_S:
            self._last_logged[reason] = now
            holding = self._by_address.get(address, Holding())
            log.warning(
                "load shed: callback answered with a retryable failure",
                reason=reason,
                remote_addr=address,
                in_flight=self.count,
                in_flight_bytes=self.bytes,
                address_in_flight=holding.requests,
                address_bytes=holding.bytes,
            )
        return reason

    def shedding(self, hold_s: float) -> tuple[list[str], float | None]:
        """The reasons load was shed for within the last ``hold_s`` seconds, and how long ago the last was."""
        now = self.clock()
        recent = {reason: now - at for reason, at in self._last_shed.items() if now - at < hold_s}
        return sorted(recent), (min(recent.values()) if recent else None)

    def address_count(self) -> int:
        return len(self._by_address)

"""Who may write a callback, and whose it is — decided before the body is read, nothing published
for a refusal.

- On ``/t/{tenant}/{secret}/callbacks/…``: an unknown tenant or a wrong secret is ``401``, an address
  outside the tenant's ``allow_ips`` is ``403``, a tenant over its rate is the vendor's retryable failure.
- On the tenant-less ``/callbacks/…``: with a tenants file that says ``allow_anonymous = false``, ``401``;
  otherwise open, with a rate limit per remote address.

Every refusal is counted by route and reason and logged with the tenant id and address — never the
secret, which appears in no log line, metric, topic or table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from ringback import logs, metrics
from ringback.config import Settings, trusted_proxy_networks
from ringback.edge.client_address import client_address
from ringback.edge.rate_limits import RateLimiter
from ringback.edge.tenant_source import TenantSource
from ringback.edge.tenants import ACCEPTED, ADDRESS_NOT_ALLOWED, Tenant, unmapped

TENANT = "tenant"
SECRET = "secret"
ANONYMOUS_NOT_ALLOWED = "anonymous_not_allowed"
RATE_LIMITED = "rate_limited"
UNAUTHORIZED = 401
FORBIDDEN = 403
#: At most one log line per refusal reason and route in this many seconds.
REFUSAL_LOG_INTERVAL_S = 5.0

log = logs.get(__name__)


@dataclass(frozen=True)
class Admitted:
    address: str
    tenant: Tenant | None


@dataclass(frozen=True)
class Refused:
    reason: str
    status: int | None  # None: the vendor's retryable failure (rate limited)
    message: str


class Door:
    def __init__(self, settings: Settings, tenants: TenantSource) -> None:
        self.settings = settings
        self.tenants = tenants
        self.trusted_proxies = tuple(unmapped(network) for network in trusted_proxy_networks(settings))
        self.forwarded_header = settings.forwarded_header.lower()
        self.limiter = RateLimiter(settings.rate_limit_burst_s)
        self._last_logged: dict[tuple[str, str], float] = {}

    def admit(self, request: web.Request, route: str) -> Admitted | Refused:
        address = client_address(request, self.trusted_proxies, self.forwarded_header)
        table = self.tenants.current  # one table for the whole request, whatever a reload does meanwhile
        tenant_id = request.match_info.get(TENANT)
        if tenant_id is None:
            if table is not None and not table.allow_anonymous:
                return self._refuse(
                    route, address, None, Refused(ANONYMOUS_NOT_ALLOWED, UNAUTHORIZED, "a tenant URL is required")
                )
            if not self.limiter.allow(f"address:{address}", self.settings.anonymous_rate_limit_per_s):
                return self._refuse(route, address, None, Refused(RATE_LIMITED, None, "too many requests"))
            return Admitted(address, None)
        if table is None:
            return self._refuse(
                route, address, tenant_id, Refused("unknown_tenant", UNAUTHORIZED, "unknown tenant or wrong secret")
            )
        verdict, tenant = table.check(tenant_id, request.match_info.get(SECRET, ""), address)
        if verdict != ACCEPTED or tenant is None:
            status = FORBIDDEN if verdict == ADDRESS_NOT_ALLOWED else UNAUTHORIZED
            message = "address not allowed for this tenant" if status == FORBIDDEN else "unknown tenant or wrong secret"
            return self._refuse(
                route, address, tenant_id if tenant is not None else None, Refused(verdict, status, message)
            )
        rate = tenant.rate_limit_per_s if tenant.rate_limit_per_s is not None else self.settings.tenant_rate_limit_per_s
        if not self.limiter.allow(f"tenant:{tenant.id}", rate):
            return self._refuse(route, address, tenant.id, Refused(RATE_LIMITED, None, "too many requests"))
        return Admitted(address, tenant)

    def _refuse(self, route: str, address: str, tenant_id: str | None, refusal: Refused) -> Refused:
        metrics.EDGE_REFUSED.labels(route, refusal.reason).inc()
        now = time.monotonic()
        if now - self._last_logged.get((route, refusal.reason), 0.0) >= REFUSAL_LOG_INTERVAL_S:
            self._last_logged[(route, refusal.reason)] = now
            # Only a known tenant's id is logged: an unknown one is whatever the caller typed.
            log.warning("callback refused", route=route, reason=refusal.reason, tenant=tenant_id, remote_addr=address)
        return refusal

"""Tenants: who may write callbacks, and whose they are.

Vendors cannot sign their pushes or set headers, so a secret in the callback URL identifies the sender:
``POST /t/{tenant}/{secret}/callbacks/{route}``. The tenants file (TOML, see DESIGN.md "Tenants"):

```toml
allow_anonymous = false              # optional; true keeps the tenant-less /callbacks/... routes open
[[tenants]]
id = "acme"                          # [a-z0-9_-]{1,64}
secret = "at-least-16-characters"    # or secret_sha256 = "<hex>"; a list (secrets = [...]) while rotating
app_id = "1400123456"                # optional: app_id of pushes that carry none (Tencent SMS and voice)
allow_ips = ["203.0.113.0/24"]       # optional CIDRs; empty = any address
rate_limit_per_s = 200               # optional: this tenant's request rate (default: tenant_rate_limit_per_s)
```

A file with no tenants is refused unless it says ``allow_anonymous = true``: it would refuse every
callback, and it is what a non-atomic save leaves for a moment.

Secrets are kept only as SHA-256 digests, compared in constant time (an unknown tenant costs the same
comparison as a known one), and never logged. A file that does not validate is refused as a whole
with a message naming the problem; while running, the edge then keeps the tenants it had.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TENANT_ID = re.compile(r"[a-z0-9_-]{1,64}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MIN_SECRET_CHARS = 16
TOP_LEVEL_KEYS = frozenset({"allow_anonymous", "tenants"})
TENANT_KEYS = frozenset({"id", "secret", "secrets", "secret_sha256", "app_id", "allow_ips", "rate_limit_per_s"})
#: Compared against when the tenant is unknown, so that an unknown tenant takes as long as a wrong secret.
_NOBODY = hashlib.sha256(b"ringback: no such tenant").digest()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``::ffff:0:0/96``: the IPv6 prefix that carries an IPv4 address in its last 32 bits.
IPV4_MAPPED_PREFIX = 96
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Verdicts of a check; the first is the only good one.
ACCEPTED = "accepted"
UNKNOWN_TENANT = "unknown_tenant"
WRONG_SECRET = "wrong_secret"
ADDRESS_NOT_ALLOWED = "address_not_allowed"


class TenantsError(ValueError):
    """The tenants file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Tenant:
    id: str
    secret_digests: tuple[bytes, ...]
    app_id: str | None = None
    allow_ips: tuple[Network, ...] = ()
    rate_limit_per_s: float | None = None

    def allows(self, address: str) -> bool:
        if not self.allow_ips:
            return True
        parsed = parse_address(address)
        return parsed is not None and any(parsed in network for network in self.allow_ips)


@dataclass(frozen=True)
class Tenants:
    by_id: dict[str, Tenant]
    allow_anonymous: bool

    def check(self, tenant_id: str, secret: str, address: str) -> tuple[str, Tenant | None]:
        """(verdict, tenant): ACCEPTED with the tenant, or why not."""
        tenant = self.by_id.get(tenant_id)
        given = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
        digests = tenant.secret_digests if tenant is not None else (_NOBODY,)
        matched = False
        for digest in digests:  # every digest compared: the time does not tell which one matched
            matched |= hmac.compare_digest(given, digest)
        if tenant is None:
            return UNKNOWN_TENANT, None
        if not matched:
            return WRONG_SECRET, tenant
        if not tenant.allows(address):
            return ADDRESS_NOT_ALLOWED, tenant
        return ACCEPTED, tenant


def parse_address(text: str) -> Address | None:
    """The address ``text`` names, an IPv4-mapped IPv6 address as the IPv4 address it carries (so that it
    matches IPv4 ranges); None when it names none."""
    try:
        parsed = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def unmapped(network: Network) -> Network:
    """An IPv4-mapped IPv6 range (``::ffff:198.51.100.0/120``) as the IPv4 range it covers: addresses are
    compared in their IPv4 form (``parse_address``)."""
    mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
    if mapped is None or network.prefixlen < IPV4_MAPPED_PREFIX:
        return network
    return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - IPV4_MAPPED_PREFIX}")


def parse_networks(values: Iterable[Any], where: str) -> tuple[Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(unmapped(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError as exc:
            raise TenantsError(f"{where}: {value!r} is not a CIDR network ({exc})") from None
    return tuple(networks)


def load(path: Path) -> Tenants:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TenantsError(f"tenants file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TenantsError(f"tenants file {path} is not valid TOML: {exc}") from None
    return parse(data, str(path))


def parse(data: dict[str, Any], name: str = "tenants file") -> Tenants:
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise TenantsError(f"{name}: unknown keys {', '.join(unknown)} (allowed: allow_anonymous, [[tenants]])")
    allow_anonymous = data.get("allow_anonymous", False)
    if not isinstance(allow_anonymous, bool):
        raise TenantsError(f"{name}: allow_anonymous must be true or false")
    entries = data.get("tenants", [])
    if not isinstance(entries, list):
        raise TenantsError(f"{name}: tenants must be an array of tables ([[tenants]])")
    by_id: dict[str, Tenant] = {}
    for index, entry in enumerate(entries):
        tenant = _tenant(entry, f"{name}: tenants[{index}]")
        if tenant.id in by_id:
            raise TenantsError(f"{name}: tenant id {tenant.id!r} appears twice")
        by_id[tenant.id] = tenant
    if not by_id and not allow_anonymous:
        # What a save that truncates the file before writing it leaves behind: in force, it would answer
        # every callback 401, which the CDR platform does not retry.
        raise TenantsError(
            f"{name}: no tenants and allow_anonymous = false would refuse every callback (an empty or half-written "
            "file? save it atomically: write a temporary file, then rename it over this one)"
        )
    return Tenants(by_id, allow_anonymous)


def _tenant(entry: Any, where: str) -> Tenant:
    if not isinstance(entry, dict):
        raise TenantsError(f"{where} must be a table")
    unknown = sorted(set(entry) - TENANT_KEYS)
    if unknown:
        raise TenantsError(f"{where}: unknown keys {', '.join(unknown)}")
    tenant_id = entry.get("id")
    if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
        raise TenantsError(f"{where}: id must match [a-z0-9_-]{{1,64}}")
    where = f"{where} ({tenant_id})"
    app_id = entry.get("app_id")
    if app_id is not None and (
        not isinstance(app_id, (str, int)) or isinstance(app_id, bool) or not str(app_id).strip()
    ):
        raise TenantsError(f"{where}: app_id must be a non-empty string")
    rate = entry.get("rate_limit_per_s")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0):
        raise TenantsError(f"{where}: rate_limit_per_s must be a number >= 0 (0 = no limit)")
    allow_ips = entry.get("allow_ips", [])
    if not isinstance(allow_ips, list):
        raise TenantsError(f"{where}: allow_ips must be a list of CIDR networks")
    return Tenant(
        id=tenant_id,
        secret_digests=_digests(entry, where),
        app_id=None if app_id is None else str(app_id).strip(),
        allow_ips=parse_networks(allow_ips, f"{where}: allow_ips"),
        rate_limit_per_s=None if rate is None else float(rate),
    )


def _digests(entry: dict[str, Any], where: str) -> tuple[bytes, ...]:
    plain: Sequence[Any] = [entry["secret"]] if "secret" in entry else entry.get("secrets", [])
    if not isinstance(plain, list) and "secrets" in entry:
        raise TenantsError(f"{where}: secrets must be a list of strings")
    hashed: Sequence[Any] = entry.get("secret_sha256", [])
    hashed = [hashed] if isinstance(hashed, str) else hashed
    if "secret" in entry and "secrets" in entry:
        raise TenantsError(f"{where}: give secret or secrets, not both")
    digests = []
    for secret in plain:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
            raise TenantsError(f"{where}: a secret must be a string of at least {MIN_SECRET_CHARS} characters")
        if "/" in secret or secret != secret.strip():
            raise TenantsError(f"{where}: a secret cannot hold '/' or surrounding spaces (it is a URL path segment)")
        digests.append(hashlib.sha256(secret.encode()).digest())
    for value in hashed:
        if not isinstance(value, str) or not SHA256_HEX.fullmatch(value.lower()):
            raise TenantsError(f"{where}: secret_sha256 must be 64 hexadecimal characters")
        digests.append(bytes.fromhex(value))
    if not digests:
        raise TenantsError(f"{where}: no secret (secret, secrets or secret_sha256)")
    return tuple(digests)

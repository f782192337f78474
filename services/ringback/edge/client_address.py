"""The address a callback came from, seen through the load balancers the edge is told to trust.

Only when the connection comes from a trusted proxy (``--trusted-proxies`` CIDRs) is a forwarding header
read, and only ONE: ``X-Forwarded-For`` by default, ``Forwarded`` when ``forwarded_header = forwarded``.
The other is ignored, whatever it says: a client can send either, and only the one the load balancer
appends to carries an entry the client did not write. The chain is walked from the right (the entries
the trusted proxies appended), skipping trusted proxies; the first entry that is not one is the client.
An entry there that is not an address (``unknown``, an obfuscated name, garbage) ends the walk: the
client is then the connection's peer, the proxy itself, never something a client wrote further left.
From anyone else no header is read: a client cannot claim an address.

Addresses are compared and recorded in one form: an IPv4-mapped IPv6 address (``::ffff:198.51.100.7``,
what a dual-stack socket reports for an IPv4 client) is the IPv4 address it carries.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from aiohttp import web

from ringback.config import FORWARDING_HEADERS
from ringback.edge.tenants import Network, parse_address

X_FORWARDED_FOR, FORWARDED = FORWARDING_HEADERS


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    parsed = parse_address(address)
    return parsed is not None and any(parsed in network for network in proxies)


def _without_port(node: str) -> str:
    """``[2001:db8::1]:4711`` → ``2001:db8::1``; ``192.0.2.1:4711`` → ``192.0.2.1``; anything else as is."""
    node = node.strip()
    if node.startswith("["):
        closing = node.find("]")
        return node[1:closing] if closing > 0 else ""  # an unclosed bracket names nothing
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


def _forwarded_for(values: list[str]) -> list[str]:
    """The ``for=`` node of each element of ``Forwarded`` (RFC 7239), oldest first; an element without
    one counts as an unreadable entry."""
    chain = []
    for element in ",".join(values).split(","):
        if not element.strip():
            continue
        node = ""
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() == "for":
                node = value.strip().strip('"')
        chain.append(_without_port(node))
    return chain


def _x_forwarded_for(values: list[str]) -> list[str]:
    return [_without_port(part) for value in values for part in value.split(",") if part.strip()]


def forwarded_chain(request: web.Request, header: str) -> list[str]:
    """The client addresses the proxies recorded in ``header``, nearest last."""
    if header == FORWARDED:
        return _forwarded_for(request.headers.getall("Forwarded", []))
    return _x_forwarded_for(request.headers.getall("X-Forwarded-For", []))


#: Peers repeat (a vendor calls from a few addresses): parsing one costs ~2 µs, a cached answer ~0.1.
CANONICAL_CACHE = 4096


@functools.lru_cache(maxsize=CANONICAL_CACHE)
def canonical(address: str) -> str:
    """One spelling per address (IPv4-mapped IPv6 as IPv4); text that is no address stays as it is."""
    parsed = parse_address(address)
    return str(parsed) if parsed is not None else address


def client_address(request: web.Request, trusted_proxies: Sequence[Network], header: str = X_FORWARDED_FOR) -> str:
    peer = canonical(request.remote or "")
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    for hop in reversed(forwarded_chain(request, header)):
        if parse_address(hop) is None:
            return peer  # unreadable where only a trusted proxy writes: trust nothing the chain says
        if not _trusted(hop, trusted_proxies):
            return canonical(hop)
    return peer

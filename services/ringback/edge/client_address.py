"""The address a callback came from, seen through the load balancers the edge is told to trust.

Only when the connection comes from a trusted proxy (``--trusted-proxies`` CIDRs) are ``Forwarded`` and
``X-Forwarded-For`` read: from the right, skipping addresses of trusted proxies, the first one that is
not is the client. From anyone else those headers are ignored: a client cannot claim an address.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from ringback.edge.tenants import Network, parse_address


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    parsed = parse_address(address)
    return parsed is not None and any(parsed in network for network in proxies)


def _forwarded_chain(request: web.Request) -> list[str]:
    """The client addresses the proxies recorded, nearest last (``Forwarded`` wins over ``X-Forwarded-For``)."""
    forwarded = request.headers.getall("Forwarded", [])
    if forwarded:
        chain = []
        for element in ",".join(forwarded).split(","):
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                if name.lower() == "for":
                    value = value.strip().strip('"')
                    chain.append(value.rsplit(":", 1)[0] if value.startswith("[") or value.count(":") == 1 else value)
        return chain
    return [
        part.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for part in header.split(",")
        if part.strip()
    ]


def client_address(request: web.Request, trusted_proxies: Sequence[Network]) -> str:
    peer = request.remote or ""
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    for hop in reversed(_forwarded_chain(request)):
        address = hop.strip("[]")
        if parse_address(address) is None:
            return peer  # unreadable: trust nothing the proxies said
        if not _trusted(address, trusted_proxies):
            return address
    return peer

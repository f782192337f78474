"""The client's address behind trusted proxies: one header, read from the right, nothing a client wrote."""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from ringback import config
from ringback.edge.client_address import FORWARDED, X_FORWARDED_FOR, client_address
from ringback.edge.tenants import Tenant, parse_address, parse_networks

LOAD_BALANCERS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:1b::/48"))
ALLOWED = "198.51.100.7"  # the address an attacker would like to be
ATTACKER = "203.0.113.66"  # the address the load balancer saw


def request(peer: str, headers: list[tuple[str, str]]) -> web.Request:
    req = make_mocked_request("POST", "/callbacks/cdr-push", headers=CIMultiDict(headers))
    req._transport_peername = (peer, 4242)  # type: ignore[attr-defined]
    return req


@pytest.mark.parametrize(
    "headers",
    [
        # the client sends Forwarded, the load balancer appends to X-Forwarded-For
        [("Forwarded", f"for={ALLOWED}"), ("X-Forwarded-For", ATTACKER)],
        [("Forwarded", f'for="{ALLOWED}";proto=https'), ("X-Forwarded-For", f"{ALLOWED}, {ATTACKER}")],
        # the client writes its own X-Forwarded-For, the load balancer appends to it
        [("X-Forwarded-For", f"{ALLOWED}, {ATTACKER}")],
        [("X-Forwarded-For", ALLOWED), ("X-Forwarded-For", ATTACKER)],  # appended as a header line of its own
        # the client's entry dressed as a trusted hop, or garbage, to the left of what the proxies appended
        [("X-Forwarded-For", f"{ALLOWED}, 10.0.0.5, {ATTACKER}, 10.0.0.9")],
        [("X-Forwarded-For", f'{ALLOWED}, "garbage, ]][[, {ATTACKER}')],
    ],
)
def test_a_client_cannot_claim_an_address_the_load_balancer_did_not_see(headers: list[tuple[str, str]]) -> None:
    assert client_address(request("10.0.0.2", headers), LOAD_BALANCERS) == ATTACKER


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-For", f"{ALLOWED}"), ("Forwarded", f"for={ATTACKER}")],
        [("Forwarded", f"for={ALLOWED}, for={ATTACKER}")],
        [("Forwarded", f'for={ALLOWED}, for="{ATTACKER}:4711";by=10.0.0.2')],
        [("Forwarded", f"for={ALLOWED}"), ("Forwarded", f"for={ATTACKER}, for=10.0.0.7")],
    ],
)
def test_with_forwarded_configured_only_forwarded_is_read(headers: list[tuple[str, str]]) -> None:
    assert client_address(request("10.0.0.2", headers), LOAD_BALANCERS, FORWARDED) == ATTACKER


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        (f"{ATTACKER}, 10.0.0.3, 10.1.2.3", ATTACKER),  # several trusted hops are skipped
        (f"{ALLOWED}, {ATTACKER}, 2001:db8:1b::4", ATTACKER),
        (f"{ATTACKER}:5555, 10.0.0.3", ATTACKER),  # a port appended by a proxy
        ("[2001:db8:cafe::17]:4711, 10.0.0.3", "2001:db8:cafe::17"),
        ("10.0.0.3, 10.0.0.4", "10.0.0.2"),  # every hop trusted: the peer
        (f"{ALLOWED}, unknown", "10.0.0.2"),  # unreadable where only proxies write: the peer, never further left
        (f"{ALLOWED}, _hidden, 10.0.0.3", "10.0.0.2"),
        (f"{ALLOWED}, , 999.1.1.1", "10.0.0.2"),
        (",,,", "10.0.0.2"),
        ("", "10.0.0.2"),
    ],
)
def test_the_rightmost_untrusted_entry_is_the_client(chain: str, expected: str) -> None:
    assert client_address(request("10.0.0.2", [("X-Forwarded-For", chain)]), LOAD_BALANCERS) == expected


@pytest.mark.parametrize(
    ("header", "value"), [("Forwarded", "for=unknown"), ("Forwarded", "proto=https"), ("Forwarded", 'for="[::1')]
)
def test_an_unreadable_forwarded_element_gives_the_peer(header: str, value: str) -> None:
    chain = [(header, f"for={ALLOWED}, {value}")]
    assert client_address(request("10.0.0.2", chain), LOAD_BALANCERS, FORWARDED) == "10.0.0.2"


def test_from_an_untrusted_peer_no_header_is_read() -> None:
    headers = [("X-Forwarded-For", ALLOWED), ("Forwarded", f"for={ALLOWED}")]
    for header in (X_FORWARDED_FOR, FORWARDED):
        assert client_address(request(ATTACKER, headers), LOAD_BALANCERS, header) == ATTACKER


@pytest.mark.parametrize("mapped", ["::ffff:198.51.100.7", "[::ffff:198.51.100.7]", "::FFFF:c633:6407"])
def test_an_ipv4_mapped_address_is_its_ipv4_address_and_matches_ipv4_ranges(mapped: str) -> None:
    tenant = Tenant("acme", (b"",), allow_ips=parse_networks(["198.51.100.0/24"], "test"))
    assert tenant.allows(mapped)
    assert str(parse_address(mapped)) == "198.51.100.7"
    via_header = request("10.0.0.2", [("X-Forwarded-For", mapped)])
    assert client_address(via_header, LOAD_BALANCERS) == "198.51.100.7"
    assert client_address(request(mapped.strip("[]"), []), ()) == "198.51.100.7"  # a dual-stack socket's peer
    behind_mapped_peer = request("::ffff:10.0.0.2", [("X-Forwarded-For", mapped)])
    assert client_address(behind_mapped_peer, LOAD_BALANCERS) == "198.51.100.7"


def test_an_ipv4_mapped_range_covers_the_ipv4_addresses_it_maps() -> None:
    tenant = Tenant("acme", (b"",), allow_ips=parse_networks(["::ffff:198.51.100.0/120"], "test"))
    assert tenant.allows("198.51.100.9") and tenant.allows("::ffff:198.51.100.9")
    assert not tenant.allows("198.51.101.9")


def test_the_forwarding_header_is_one_of_two() -> None:
    assert config.load({"forwarded_header": "Forwarded"}).forwarded_header == "Forwarded"
    with pytest.raises(config.ConfigError, match="forwarded_header"):
        config.load({"forwarded_header": "x-real-ip"})

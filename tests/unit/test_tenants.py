"""The tenants file, the secret check, rate limits and client addresses."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from ringback.edge.client_address import client_address
from ringback.edge.rate_limits import RateLimiter
from ringback.edge.tenant_source import TenantSource
from ringback.edge.tenants import ACCEPTED, ADDRESS_NOT_ALLOWED, UNKNOWN_TENANT, WRONG_SECRET, TenantsError, load, parse

SECRET = "acme-secret-0123456789"
GOOD = {
    "allow_anonymous": False,
    "tenants": [
        {"id": "acme", "secret": SECRET, "app_id": "1400123456", "allow_ips": ["203.0.113.0/24", "2001:db8::/32"]},
        {"id": "beta", "secrets": ["beta-old-secret-000000", "beta-new-secret-111111"]},
        {"id": "gamma", "secret_sha256": hashlib.sha256(b"gamma-secret-22222222").hexdigest(), "rate_limit_per_s": 5},
    ],
}


def test_a_valid_file_is_read_with_its_secrets_only_as_digests() -> None:
    tenants = parse(GOOD)
    assert set(tenants.by_id) == {"acme", "beta", "gamma"} and tenants.allow_anonymous is False
    acme = tenants.by_id["acme"]
    assert acme.app_id == "1400123456" and SECRET.encode() not in repr(acme).encode()
    assert tenants.by_id["gamma"].rate_limit_per_s == 5.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tenants": [GOOD["tenants"][0], GOOD["tenants"][0]]}, "appears twice"),
        ({"tenants": [{"id": "short", "secret": "too-short"}]}, "at least 16"),
        ({"tenants": [{"id": "x", "secret": SECRET, "allow_ips": ["203.0.113.0/33"]}]}, "not a CIDR"),
        ({"tenants": [{"id": "x", "secret": SECRET, "allow_ips": ["example.com"]}]}, "not a CIDR"),
        ({"tenants": [{"id": "Bad Id", "secret": SECRET}]}, "must match"),
        ({"tenants": [{"id": "x"}]}, "no secret"),
        ({"tenants": [{"id": "x", "secret": SECRET, "secrets": [SECRET]}]}, "not both"),
        ({"tenants": [{"id": "x", "secret_sha256": "not-hex"}]}, "64 hexadecimal"),
        ({"tenants": [{"id": "x", "secret": SECRET, "colour": "blue"}]}, "unknown keys colour"),
        ({"tenants": [{"id": "x", "secret": "has/a/slash/in/it/!!"}]}, "cannot hold '/'"),
        ({"tenants": [{"id": "x", "secret": SECRET, "rate_limit_per_s": -1}]}, "rate_limit_per_s"),
        ({"allow_anonymous": "yes"}, "true or false"),
        ({"tenant": []}, "unknown keys tenant"),
    ],
)
def test_a_broken_file_is_refused_with_a_clear_reason(change: dict, message: str) -> None:
    with pytest.raises(TenantsError, match=message):
        parse({**GOOD, **change})


def test_the_check_tells_unknown_wrong_and_address_apart() -> None:
    tenants = parse(GOOD)
    assert tenants.check("acme", SECRET, "203.0.113.9")[0] == ACCEPTED
    assert tenants.check("acme", SECRET, "2001:db8::7")[0] == ACCEPTED
    assert tenants.check("acme", SECRET, "198.51.100.1")[0] == ADDRESS_NOT_ALLOWED
    assert tenants.check("acme", "wrong-secret-0000000000", "203.0.113.9")[0] == WRONG_SECRET
    assert tenants.check("nobody", SECRET, "203.0.113.9") == (UNKNOWN_TENANT, None)
    assert tenants.check("gamma", "gamma-secret-22222222", "10.0.0.1")[0] == ACCEPTED  # from its SHA-256


def test_both_secrets_work_while_rotating() -> None:
    tenants = parse(GOOD)
    assert tenants.check("beta", "beta-old-secret-000000", "10.0.0.1")[0] == ACCEPTED
    assert tenants.check("beta", "beta-new-secret-111111", "10.0.0.1")[0] == ACCEPTED


def test_a_reload_keeps_the_old_tenants_when_the_new_file_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text(f'[[tenants]]\nid = "acme"\nsecret = "{SECRET}"\n')
    source = TenantSource(str(path))
    assert source.current is not None and set(source.current.by_id) == {"acme"}
    path.write_text('[[tenants]]\nid = "acme"\nsecret = "short"\n')
    assert source.reload() is False
    assert set(source.current.by_id) == {"acme"}  # still in force
    path.write_text(
        f'[[tenants]]\nid = "acme"\nsecret = "{SECRET}"\n[[tenants]]\nid = "new"\nsecret = "new-secret-33333333"\n'
    )
    assert source.reload() is True and set(source.current.by_id) == {"acme", "new"}
    with pytest.raises(TenantsError):
        load(tmp_path / "missing.toml")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(burst_s=2.0, clock=clock)
    assert sum(limiter.allow("t", 5) for _ in range(30)) == 10  # 5/s for 2 s of burst
    clock.now += 1.0
    assert sum(limiter.allow("t", 5) for _ in range(30)) == 5
    assert all(limiter.allow("other", 0) for _ in range(1000))  # 0 = no limit


def test_buckets_are_bounded_in_number() -> None:
    limiter = RateLimiter(burst_s=1.0, max_buckets=100)
    for i in range(1000):
        limiter.allow(f"address:{i}", 10)
    assert len(limiter) == 100


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


def request(peer: str, headers: dict[str, str]) -> object:
    req = make_mocked_request("POST", "/callbacks/cdr-push", headers=headers)
    req._transport_peername = (peer, 4242)  # type: ignore[attr-defined]
    return req


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        (
            "198.51.100.7",
            {"X-Forwarded-For": "203.0.113.5"},
            "198.51.100.7",
        ),  # not a trusted proxy: the header is ignored
        ("10.0.0.2", {"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5"),
        ("10.0.0.2", {"X-Forwarded-For": "6.6.6.6, 203.0.113.5, 10.0.0.9"}, "203.0.113.5"),  # rightmost untrusted hop
        ("10.0.0.2", {"Forwarded": 'for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"'}, "10.0.0.2"),
        ("10.0.0.2", {"Forwarded": "for=192.0.2.43", "X-Forwarded-For": "6.6.6.6"}, "6.6.6.6"),  # one header is read
        ("10.0.0.2", {"X-Forwarded-For": "not-an-address"}, "10.0.0.2"),
        ("10.0.0.2", {}, "10.0.0.2"),
    ],
)
def test_the_client_address_is_read_through_trusted_proxies_only(
    peer: str, headers: dict[str, str], expected: str
) -> None:
    assert client_address(request(peer, headers), TRUSTED) == expected  # type: ignore[arg-type]


def test_without_trusted_proxies_no_header_is_believed() -> None:
    assert client_address(request("10.0.0.2", {"X-Forwarded-For": "203.0.113.5"}), ()) == "10.0.0.2"  # type: ignore[arg-type]

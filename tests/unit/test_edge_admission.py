"""Connection admission: a trusted load balancer carries many clients and is not bounded per address."""

from __future__ import annotations

import ipaddress

from ringback.edge.connections import Admission


def test_trusted_proxies_are_bounded_in_total_only() -> None:
    admission = Admission(max_total=10, max_per_address=2, unbounded=(ipaddress.ip_network("10.0.0.0/8"),))
    assert [admission.admit("10.0.0.2") for _ in range(5)] == [None] * 5
    assert [admission.admit("::ffff:10.0.0.3") for _ in range(2)] == [None] * 2  # a dual-stack socket's form
    assert [admission.admit("203.0.113.1") for _ in range(3)] == [None, None, "per_address_limit"]
    assert admission.admit("10.0.0.2") is None  # the tenth
    assert admission.admit("10.0.0.2") == "total_limit"


def test_without_trusted_proxies_every_address_is_bounded() -> None:
    admission = Admission(max_total=10, max_per_address=2)
    assert [admission.admit("10.0.0.2") for _ in range(3)] == [None, None, "per_address_limit"]

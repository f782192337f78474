"""The in-flight gauges say what the budget holds when scraped (they are read, not set per request)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from ringback.edge.in_flight import InFlight, Lease


def scraped() -> tuple[float | None, float | None]:
    return (
        REGISTRY.get_sample_value("ringback_edge_in_flight_requests"),
        REGISTRY.get_sample_value("ringback_edge_in_flight_bytes"),
    )


def test_the_gauges_follow_the_budget_between_scrapes() -> None:
    budget = InFlight(limit=10, byte_limit=10_000, share=1.0)
    budget.export_gauges()
    assert scraped() == (0.0, 0.0)
    first = budget.enter("10.0.0.1")
    second = budget.enter("10.0.0.2")
    assert isinstance(first, Lease) and isinstance(second, Lease)
    assert first.hold(300) is None and second.hold(200) is None
    assert scraped() == (2.0, 500.0)
    first.release()
    assert scraped() == (1.0, 200.0)
    second.release()
    assert scraped() == (0.0, 0.0)

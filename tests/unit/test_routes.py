"""The route table: one adapter per route, and an edge that needs no parser."""

from __future__ import annotations


def test_every_route_has_exactly_one_adapter_and_the_edge_needs_no_parser() -> None:
    import subprocess
    import sys

    from ringback.normalizer.adapters import registry
    from ringback.routes import ROUTES

    assert set(registry()) == {route.name for route in ROUTES}
    # The edge's modules load without the normalizer's: the route table sits below both.
    probe = (
        "import sys, ringback.edge.app, ringback.edge.server; print(any(m.startswith('ringback.normalizer') for m in "
        "sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"

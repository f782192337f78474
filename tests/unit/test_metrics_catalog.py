"""The metrics catalog in deploy/metrics.md is the code's: a metric added, renamed or relabelled in
ringback.metrics or in the reconcile exporter changes it, and this test fails until it is regenerated."""

from __future__ import annotations

from ringback import metrics
from tests import metrics_catalog


def test_the_catalog_is_what_the_code_defines() -> None:
    assert metrics_catalog.CATALOG.read_text(encoding="utf-8") == metrics_catalog.render(), (
        "deploy/metrics.md differs from the metrics in the code: run `python -m tests.metrics_catalog` and review "
        "the diff"
    )


def test_the_catalog_names_every_metric_once() -> None:
    text = metrics_catalog.CATALOG.read_text(encoding="utf-8")
    names = [m.name for m in metrics_catalog.every_metric()]
    assert len(names) == len(set(names))
    for name in names:
        assert text.count(f"| `{name}` |") == 1, name


def test_every_metric_object_of_the_module_is_in_the_catalog() -> None:
    # catalog() finds metrics by type; one defined another way (a Summary, say) would be missed
    from prometheus_client import REGISTRY

    catalogued = {s for m in metrics.catalog() for s in m.series}
    exported = {metric.name for metric in REGISTRY.collect() if metric.name.startswith("ringback_")}
    for family in exported:
        assert any(series == family or series.startswith(family + "_") for series in catalogued), family


def test_roles_come_from_the_names() -> None:
    by_name = {m.name: m for m in metrics.catalog()}
    assert by_name["ringback_edge_requests_total"].roles == ("edge",)
    assert by_name["ringback_sink_rows_total"].roles == ("sink",)
    assert by_name["ringback_alarm"].roles == metrics.CONSUMING_ROLES
    assert by_name["ringback_edge_request_seconds"].series == (
        "ringback_edge_request_seconds_bucket",
        "ringback_edge_request_seconds_sum",
        "ringback_edge_request_seconds_count",
    )


def test_the_edge_outcomes_are_the_ones_the_help_names() -> None:
    from ringback.edge.app import OUTCOMES

    for outcome in OUTCOMES:
        assert outcome in metrics.EDGE_REQUESTS._documentation, outcome


def test_every_metric_the_docs_name_exists() -> None:
    import re

    from tests.conftest import REPO_ROOT
    from tests.docs import pages

    series = {s for m in metrics_catalog.every_metric() for s in (m.name, *m.series)}
    not_metrics = {"ringback_reconcile"}  # the reconcile exporter's Pushgateway job and textfile name
    for path in [*pages(), REPO_ROOT / "deploy" / "README.md"]:
        doc = path.relative_to(REPO_ROOT)
        for name in set(re.findall(r"\bringback_[a-z0-9_]*[a-z0-9]\b(?!_\*)", path.read_text(encoding="utf-8"))):
            assert name in series or name in not_metrics, f"{doc} names {name}, which no role exports"

"""The metrics catalog (deploy/metrics.md), made from the code: every metric of ringback.metrics and of
the reconcile exporter (deploy/prometheus/reconcile_textfile.py), with its type, labels and meaning.

``python -m tests.metrics_catalog`` rewrites the file; tests/unit/test_metrics_catalog.py fails while
it differs from what this module makes."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from prometheus_client import CollectorRegistry

from ringback import metrics
from ringback.metrics import MetricInfo
from tests.conftest import REPO_ROOT

CATALOG = REPO_ROOT / "deploy" / "metrics.md"
RECONCILE_EXPORTER = REPO_ROOT / "deploy" / "prometheus" / "reconcile_textfile.py"
HEADER = """\
# Metrics catalog

Every metric ringback exports, once. Generated from `services/ringback/metrics.py` and
`deploy/prometheus/reconcile_textfile.py` by `python -m tests.metrics_catalog`; a test fails while this
file differs from the code. The dashboards (`deploy/grafana/`) show every one of them, and the alert
rules (`deploy/prometheus/ringback-alerts.yml`) watch the ones that mean trouble.

Counters end in `_total`; a histogram is the series `_bucket` (label `le`), `_sum` and `_count`.
"""


def reconcile_exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reconcile_textfile", RECONCILE_EXPORTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reconcile_metrics() -> list[MetricInfo]:
    registry = CollectorRegistry()
    found = []
    for gauge in reconcile_exporter().build(registry).values():
        found.append(MetricInfo(gauge._name, gauge._type, tuple(gauge._labelnames), gauge._documentation))
    return found


def every_metric() -> list[MetricInfo]:
    return [*metrics.catalog(), *reconcile_metrics()]


def _table(rows: list[MetricInfo], with_roles: bool) -> list[str]:
    head = ["metric", "type", "labels", *(["roles"] if with_roles else []), "meaning"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in rows:
        labels = ", ".join(f"`{label}`" for label in m.labels) or "-"
        roles = [", ".join(m.roles)] if with_roles else []
        meaning = m.meaning.replace("|", "\\|")
        lines.append("| " + " | ".join([f"`{m.name}`", m.kind, labels, *roles, meaning]) + " |")
    return lines


def render() -> str:
    parts = [HEADER, "## The roles (`/metrics` of the edge, the normalizer and the sink)", ""]
    parts += _table(metrics.catalog(), with_roles=True)
    parts += [
        "",
        "## The reconcile exporter (`deploy/prometheus/reconcile_textfile.py`)",
        "",
        "Written from `ringback reconcile --json` by cron into node_exporter's textfile collector, or pushed",
        "to a Pushgateway (see deploy/README.md).",
        "",
    ]
    parts += _table(reconcile_metrics(), with_roles=False)
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    CATALOG.write_text(render(), encoding="utf-8")

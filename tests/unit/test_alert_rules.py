"""The alert rules in deploy/prometheus: promtool checks them and runs their unit tests (every alert
fires on the series it is about, and not on series close to them); every alert has a runbook line;
every metric they read exists (deploy/metrics.md)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests import metrics_catalog
from tests.conftest import REPO_ROOT
from tests.promtool import promtool

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "ringback-alerts.yml"
RULE_TESTS = PROMETHEUS / "ringback-alerts.test.yml"
SEVERITIES = {"critical", "warning"}


def alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_promtool_runs_the_rules_unit_tests() -> None:
    done = promtool("test", "rules", RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_fails_a_rule_that_does_not_parse(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        RULES.read_text(encoding="utf-8").replace(
            "max by (job, instance) (ringback_normalizer_guard_tripped)",
            "max by (job, instance (ringback_normalizer_guard_tripped)",
        )
    )
    assert promtool("check", "rules", broken).returncode != 0


def test_every_alert_has_a_severity_a_summary_and_a_runbook_line() -> None:
    names = [str(rule["alert"]) for rule in alerts()]
    assert len(names) == len(set(names))
    for rule in alerts():
        labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
        assert isinstance(labels, dict) and isinstance(annotations, dict)
        assert labels.get("severity") in SEVERITIES, rule["alert"]
        assert annotations.get("summary"), rule["alert"]
        runbook = annotations.get("runbook")
        assert isinstance(runbook, str) and runbook.strip() and "\n" not in runbook.strip(), rule["alert"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {str(rule["alert"]) for rule in alerts()}
    assert names - fired == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"


def test_the_rules_read_only_metrics_that_exist() -> None:
    series = {s for m in metrics_catalog.every_metric() for s in m.series} | {"up"}
    for rule in alerts():
        for name in re.findall(r"\bringback_[a-z0-9_]+", str(rule["expr"])):
            assert name in series, f"{rule['alert']} reads {name}, which no role exports"


def test_the_metrics_the_docs_say_to_alert_on_have_alerts() -> None:
    from tests.docs import all_docs_text

    readme = all_docs_text()
    paragraph = readme[readme.index("Metrics worth an alert:") :].split("\n\n")[0]
    named = set(re.findall(r"`(ringback_[a-z0-9_]+)", paragraph))
    assert named, "the docs' list of metrics worth an alert was not found"
    exprs = "\n".join(str(rule["expr"]) for rule in alerts())
    for name in named:
        assert name in exprs, f"the docs say to alert on {name}; no rule does"


def test_the_reconcile_exporter_writes_metrics_promtool_accepts(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, write_to_textfile

    exporter = metrics_catalog.reconcile_exporter()
    registry = CollectorRegistry()
    lines = [
        {"route": "cdr-push", "check": "gap", "accepted": 5, "stored_requests": 3},
        {"route": "cdr-push", "check": "ok", "accepted": 2, "stored_requests": 2},
        {"route": "tencent/sms-status", "check": "in_flight", "accepted": 9, "stored_requests": 1},
    ]
    exporter.record(exporter.build(registry), lines, 1_700_000_000.0)
    path = tmp_path / "ringback_reconcile.prom"
    write_to_textfile(str(path), registry)
    text = path.read_text()
    assert 'ringback_reconcile_lines{check="gap",route="cdr-push"} 1.0' in text
    assert 'ringback_reconcile_missing_requests{route="cdr-push"} 2.0' in text  # only closed hours count
    assert 'ringback_reconcile_missing_requests{route="tencent/sms-status"} 0.0' in text
    assert "ringback_reconcile_up 1.0" in text
    done = promtool("check", "metrics", stdin=text)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_reconcile_exporter_marks_a_failed_run() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    exporter = metrics_catalog.reconcile_exporter()
    registry = CollectorRegistry()
    exporter.record(exporter.build(registry), None, 1_700_000_000.0)
    assert b"ringback_reconcile_up 0.0" in generate_latest(registry)

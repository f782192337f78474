"""What `ringback run` hands its roles and prints: the ops ports of --metrics-port, the banner's sample URL."""

from __future__ import annotations

from pathlib import Path

from ringback import config
from ringback.supervisor import role_settings, sample_url

EDGE = "http://127.0.0.1:8080"
TENANT = """
[[tenants]]
id = "zeta"
secret = "zeta-secret-0123456789"
[[tenants]]
id = "acme"
secret = "acme-secret-0123456789"
"""


def test_metrics_port_gives_the_normalizer_and_the_sink_their_ports() -> None:
    settings = config.load({"metrics_port": 9300}, environ={})
    assert role_settings(settings, "normalizer").metrics_port == 9300
    assert role_settings(settings, "sink").metrics_port == 9301
    assert role_settings(settings, "edge") == settings


def test_no_metrics_port_means_free_ports() -> None:
    settings = config.load({}, environ={})
    assert {role_settings(settings, role).metrics_port for role in ("normalizer", "sink")} == {0}


def test_the_sample_uses_the_open_route_without_a_tenants_file() -> None:
    assert sample_url(config.load({}, environ={}), EDGE) == f"{EDGE}/callbacks/tencent/sms-status"


def test_the_sample_uses_a_tenant_url_when_the_open_routes_answer_401(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text("allow_anonymous = false\n" + TENANT)
    url = sample_url(config.load({"tenants_file": str(tenants)}, environ={}), EDGE)
    assert url == f"{EDGE}/t/acme/<secret>/callbacks/tencent/sms-status"
    assert "secret-0123456789" not in url


def test_the_sample_keeps_the_open_route_when_the_file_allows_it(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text("allow_anonymous = true\n" + TENANT)
    url = sample_url(config.load({"tenants_file": str(tenants)}, environ={}), EDGE)
    assert url == f"{EDGE}/callbacks/tencent/sms-status"

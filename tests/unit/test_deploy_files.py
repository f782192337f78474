"""The container and cluster files in deploy/, checked without a Docker engine or a cluster (and without
the network):

- docker-compose.yml against the Compose Specification's JSON schema (as vendored by the
  check-jsonschema package), and for what a schema cannot see: every bind-mounted file exists, every
  service named in depends_on exists, every named volume is declared, every required variable is in
  .env.example;
- the Kubernetes manifests rendered as `kubectl apply -k deploy/k8s` would (namespace, labels, image
  of kustomization.yaml) and validated in strict mode (no unknown field) against the schemas of
  Kubernetes 1.30 (as vendored by the kubernetes-validate package).
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"
#: Kinds that live outside a namespace (kustomize's namespace does not apply to them).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
#: The kustomization fields the renderer below implements; another one makes the test fail until it is.
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "images"}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(
        (importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    )
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification() -> None:
    assert compose_errors(compose()) == []


def test_the_compose_schema_check_catches_a_misspelt_key() -> None:
    document = compose()
    document["services"]["edge"]["restat"] = "always"
    document["services"]["sink"]["healthcheck"]["intervall"] = "10s"
    errors = "\n".join(compose_errors(document))
    assert "'restat' was unexpected" in errors and "'intervall'" in errors


def test_compose_references_resolve() -> None:
    document = compose()
    services = document["services"]
    declared_volumes = set(document.get("volumes", {}))
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name} depends on {other}, which is no service"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared_volumes, f"{name} uses the volume {source}, which is not declared"


def test_every_required_variable_of_compose_is_in_the_env_example() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text(encoding="utf-8")))
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    assert required and all(re.search(rf"^{name}=", example, re.MULTILINE) for name in required), required


def test_compose_provisions_the_monitoring() -> None:
    services = compose()["services"]
    grafana_mounts = {m.split(":")[1]: m.split(":")[0] for m in services["grafana"]["volumes"]}
    assert grafana_mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert grafana_mounts["/var/lib/grafana/dashboards"] == "./grafana/dashboards"
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    prometheus_mounts = {m.split(":")[1] for m in services["prometheus"]["volumes"]}
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert set(config["rule_files"]) <= prometheus_mounts
    scraped = {
        t.split(":")[0]
        for job in config["scrape_configs"]
        for t in (job.get("static_configs") or [{}])[0].get("targets", [])
    }
    scraped |= {n for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    assert scraped == {"edge", "normalizer", "sink", "pushgateway"} and scraped <= set(services)


# --- Kubernetes ---


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))


def rendered() -> list[dict[str, Any]]:
    """The resources as `kubectl apply -k deploy/k8s` applies them, for the fields kustomization.yaml uses."""
    kust = kustomization()
    assert set(kust) <= KUSTOMIZE_FIELDS, (
        f"kustomization.yaml uses {set(kust) - KUSTOMIZE_FIELDS}: teach rendered() about it"
    )
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in kust.get("images", [])}
    documents = []
    for name in kust["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            if doc is None:
                continue
            doc = copy.deepcopy(doc)
            if doc["kind"] not in CLUSTER_SCOPED and "namespace" in kust:
                doc["metadata"]["namespace"] = kust["namespace"]
            for group in kust.get("labels", []):
                doc["metadata"].setdefault("labels", {}).update(group["pairs"])
                assert not group.get("includeSelectors"), "selectors are not rendered here"
            _set_images(doc, images)
            documents.append(doc)
    return documents


def _set_images(node: Any, images: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    container["image"] = images.get(container["image"], container["image"])
            else:
                _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == {n for n in present if ".example." not in n}, (
        "a manifest is missing from kustomization.yaml, or listed but absent"
    )


@pytest.mark.parametrize("document", rendered(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_valid_kubernetes_in_strict_mode(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_example_secret_is_valid_too() -> None:
    for doc in yaml.safe_load_all((K8S / "clickhouse-secret.example.yaml").read_text(encoding="utf-8")):
        if doc:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    (statefulset,) = [d for d in rendered() if d["kind"] == "StatefulSet"]
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_workloads_select_their_own_pods_and_run_the_kustomized_image() -> None:
    images = {f"{i['newName']}:{i['newTag']}" for i in kustomization()["images"]}
    for doc in rendered():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), doc["metadata"]["name"]
            assert {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]} <= images

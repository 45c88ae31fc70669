"""Kubernetes manifests: offline schema validation and the deployment policy.

The API runs as a StatefulSet (deployment.yaml) whose replicas each keep their decision and
feedback records on a volume claim of their own; the Redis they share is in redis.yaml
(tests/unit/test_deploy_k8s_records.py checks both, and the settings the pods get)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

pytestmark = pytest.mark.unit

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted(path for path in K8S_DIR.glob("*.yaml") if path.name != "kustomization.yaml")


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource in deploy/k8s keyed by (kind, name)."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for path in MANIFESTS:
        for doc in load_documents(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in by_key, f"duplicate {key}"
            by_key[key] = doc
    return by_key


def resource(kind: str, name: str = "digits-api") -> dict[str, Any]:
    return resources()[(kind, name)]


def api() -> dict[str, Any]:
    """The API's workload: a StatefulSet (a claim of its own per replica for the records)."""
    return resource("StatefulSet")


def api_container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path: Path) -> None:
    documents = load_documents(path)
    assert documents
    for doc in documents:
        validate(doc)


def test_strict_validation_rejects_typos_and_wrong_types() -> None:
    """The schema check can fail: an unknown field and a mistyped value are errors."""
    deployment = api()
    misspelt = copy.deepcopy(deployment)
    api_container(misspelt)["readinessProbe"]["httpGet"]["pth"] = "/ready"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(misspelt)
    mistyped = copy.deepcopy(deployment)
    mistyped["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(mistyped)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(path.name for path in MANIFESTS)


def test_deployment_runs_replicated_with_probes_and_resources() -> None:
    deployment = api()
    assert deployment["spec"]["replicas"] >= 2
    container = api_container(deployment)
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


def test_deployment_is_locked_down() -> None:
    deployment = api()
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = api_container(deployment)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {
        mount["mountPath"]: mount["name"] for mount in api_container(deployment)["volumeMounts"]
    }
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {item["name"]: item.get("value") for item in api_container(deployment)["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")


def test_service_hpa_and_pdb_target_the_deployment() -> None:
    """The Services, the HPA and the PDB all follow the API's StatefulSet."""
    workload = api()
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = resource("Service")["spec"]
    assert service["selector"].items() <= pod_labels.items()
    assert service["ports"][0]["targetPort"] == "http"
    assert service["type"] == "ClusterIP"
    # The governing Service a StatefulSet needs: headless, on the same pods.
    governing = resource("Service", workload["spec"]["serviceName"])["spec"]
    assert governing["clusterIP"] == "None"
    assert governing["selector"].items() <= pod_labels.items()
    assert workload["spec"]["serviceName"] != "digits-api"  # clients keep their ClusterIP
    hpa = resource("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": workload["metadata"]["name"],
    }
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert hpa["minReplicas"] <= workload["spec"]["replicas"] <= hpa["maxReplicas"]
    pdb_selector = resource("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert pdb_selector.items() <= pod_labels.items()
    assert pdb_selector.items() <= workload["spec"]["selector"]["matchLabels"].items()


def test_pods_carry_prometheus_scrape_annotations() -> None:
    annotations = api()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_tls_terminates_at_the_ingress_and_the_service_stays_in_the_cluster() -> None:
    service, ingress = resource("Service"), resource("Ingress")
    assert service["spec"]["type"] == "ClusterIP"  # no NodePort/LoadBalancer around the TLS
    hosts = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    assert all(tls["secretName"] for tls in ingress["spec"]["tls"])
    rules = ingress["spec"]["rules"]
    assert {rule["host"] for rule in rules} <= hosts  # every routed host is served over TLS
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    backends = {
        path["backend"]["service"]["name"] for rule in rules for path in rule["http"]["paths"]
    }
    assert backends == {"digits-api"}


def test_production_pods_switch_off_swagger_and_the_demo_page() -> None:
    env = {item["name"]: item.get("value") for item in api_container(api())["env"]}
    assert env["DIGITS_DOCS"] == "off"
    assert env["DIGITS_DEMO"] == "off"
    assert env["DIGITS_AUTH"] in {"api-key", "jwt"}

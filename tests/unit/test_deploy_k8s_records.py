"""Kubernetes: decision and feedback records outlive a pod (issue 25, part 7).

Each API replica keeps its records on a volume claim of its own (a StatefulSet's
volumeClaimTemplates); feedback is on, and the replicas share a Redis (redis.yaml) for the
rate limits and the feedback index, reached with the password of a Secret. The manifests are
read as shipped; the settings the pods get are loaded by the service's own settings code.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from serving.settings import load_settings
from tests.unit.test_deploy_k8s import (
    K8S_DIR,
    api,
    api_container,
    resource,
    resources,
    validate,
)
from tests.unit.test_deploy_k8s_secrets import copy_of_k8s, render

pytestmark = pytest.mark.unit
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
PASSWORD = "0123456789abcdef" * 4  # what an operator puts in the Secret (openssl rand -hex 32)


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment Kubernetes gives ``container``: Secret references resolved (to
    ``PASSWORD``, the Secrets being generated from the operator's files) and ``$(VAR)``
    expanded from the variables defined before it, as the kubelet does."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["key"] in generated_secrets()[ref["name"]], ref
            env[item["name"]] = PASSWORD
        else:
            env[item["name"]] = REFERENCE.sub(lambda m: env.get(m[1], m[0]), item["value"])
    return env


def generated_secrets() -> dict[str, set[str]]:
    """The kustomization's secretGenerator: each Secret's name and keys (``key=file``)."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    return {
        entry["name"]: {source.split("=", 1)[0] for source in entry["files"]}
        for entry in kustomization["secretGenerator"]
    }


def mounted_volume(container: dict[str, Any], path: str) -> tuple[str, PurePosixPath]:
    """The volume holding ``path`` in ``container`` (the deepest mount above it)."""
    mounts = {m["name"]: PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]}
    holding = [name for name, where in mounts.items() if PurePosixPath(path).is_relative_to(where)]
    assert holding, f"{path} is on no volume"
    name = max(holding, key=lambda name: len(mounts[name].parts))
    return name, mounts[name]


def claim_templates(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c["spec"] for c in workload["spec"]["volumeClaimTemplates"]}


def gibibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Mi|Gi|Ti)", quantity)
    assert match, quantity
    return int(match[1]) * {"Mi": 1 / 1024, "Gi": 1, "Ti": 1024}[match[2]]


def test_records_are_on_a_volume_claim_of_each_replica() -> None:
    workload = api()
    spec, container = workload["spec"], api_container(workload)
    records = container_env(container)["DIGITS_DECISION_LOG_DIR"]
    volume, mount = mounted_volume(container, records)
    claims = claim_templates(workload)
    assert volume in claims  # a claim per replica, not an emptyDir that dies with the pod
    assert volume not in {v["name"] for v in spec["template"]["spec"]["volumes"]}
    assert PurePosixPath(records) != mount  # a directory the service makes 0700 in the volume
    claim = claims[volume]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert gibibytes(claim["resources"]["requests"]["storage"]) >= 1
    # Scaled away or deleted, a replica's claim (and its records) stays.
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    pod_security = spec["template"]["spec"]["securityContext"]
    assert pod_security["fsGroup"] == pod_security["runAsGroup"]  # the service may write it
    assert not [m for m in container["volumeMounts"] if m["name"] == volume and m.get("readOnly")]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True  # still read-only
    every_volume = [v for doc in resources().values() for v in pod_volumes(doc)]
    assert not [v for v in every_volume if "hostPath" in v]


def pod_volumes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The volumes of the pods a resource makes (none for a resource without pods)."""
    template: dict[str, Any] = doc.get("spec", {}).get("template", {})
    return list(template.get("spec", {}).get("volumes", []))


def test_pods_get_settings_the_service_accepts_with_feedback_and_the_shared_redis() -> None:
    env = container_env(api_container(api()))
    settings = load_settings(env)  # DIGITS_FEEDBACK=on is refused without decision records
    assert settings.feedback == "on"
    assert settings.decision_log_dir == env["DIGITS_DECISION_LOG_DIR"]
    assert settings.rate_limit_redis_url is not None
    url = urlsplit(settings.rate_limit_redis_url)
    assert url.scheme == "redis"
    assert url.password == PASSWORD  # $(REDIS_PASSWORD) defined before it, so expanded
    redis_service = resource("Service", url.hostname or "")
    assert url.port == redis_service["spec"]["ports"][0]["port"]
    redis = resource("StatefulSet", "digits-redis")
    pod_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert redis_service["spec"]["selector"].items() <= pod_labels.items()
    assert redis["spec"]["serviceName"] == redis_service["metadata"]["name"]
    assert redis_service["spec"]["clusterIP"] == "None"  # resolves to the ready Redis pod
    ports = api_container(redis)["ports"]
    assert [(p["name"], p["containerPort"]) for p in ports] == [("redis", url.port)]
    assert redis_service["spec"]["ports"][0]["targetPort"] == "redis"


def test_redis_is_locked_down_persistent_and_needs_the_password() -> None:
    redis = resource("StatefulSet", "digits-redis")
    pod = redis["spec"]["template"]["spec"]
    container = api_container(redis)
    assert redis["spec"]["replicas"] == 1  # one index: several would each hold a part
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]

    env = container_env(container)
    volume, _ = mounted_volume(container, env["REDIS_DATA_DIR"])
    assert volume in claim_templates(redis)  # the append-only file outlives the pod too
    conf, _ = mounted_volume(container, env["REDIS_CONF_DIR"])
    (conf_volume,) = [v for v in pod["volumes"] if v["name"] == conf]
    assert conf_volume["emptyDir"]["medium"] == "Memory"  # the password file is never on disk
    script = container["command"][-1]
    assert "--appendonly yes" in script
    assert "requirepass" in script
    assert "--requirepass" not in script  # not on the command line, where ps shows it
    # No password in the repository: the Secret is generated from the operator's file
    # (tests/unit/test_deploy_k8s_secrets.py), and Redis refuses to start without a valid
    # one (tests/integration/test_deploy_k8s_redis.py runs this script).
    assert generated_secrets()["digits-redis-auth"] == {"password"}


def test_only_the_api_pods_may_reach_redis() -> None:
    policy = resource("NetworkPolicy", "digits-redis")["spec"]
    redis_labels = resource("StatefulSet", "digits-redis")["spec"]["template"]["metadata"]["labels"]
    api_labels = api()["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= redis_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}  # pods of this namespace, no ipBlock
    allowed = source["podSelector"]["matchLabels"]
    assert allowed.items() <= api_labels.items()
    assert not allowed.items() <= redis_labels.items()
    assert rule["ports"] == [{"protocol": "TCP", "port": "redis"}]


def test_kustomize_renders_every_resource_valid_with_its_image(tmp_path: Path) -> None:
    """What `kubectl apply -k deploy/k8s` applies (kubectl's own kustomize), the operator's
    secret files present."""
    k8s = copy_of_k8s(tmp_path)
    (k8s / "secrets" / "api-keys.jsonl").write_text("", encoding="utf-8")
    (k8s / "secrets" / "redis-password").write_text(PASSWORD, encoding="utf-8")
    rendered = render(k8s)
    assert rendered.returncode == 0, rendered.stderr
    documents = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    keys = sorted((doc["kind"], doc["metadata"]["name"]) for doc in documents)
    generated = [("Secret", name) for name in generated_secrets()]
    assert keys == sorted([*resources(), *generated])
    for doc in documents:
        validate(doc)
    images = {
        container["image"]
        for doc in documents
        if doc["kind"] == "StatefulSet"
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"digits-api:latest", "redis:7.2-alpine"}

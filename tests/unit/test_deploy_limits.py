"""Every shipped deployment sets rate limits, and they are ones the service accepts
(issue 23, finding 7): compose, the Kubernetes deployment and the Cloud Run service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from limits import parse

from serving.settings import load_settings

pytestmark = pytest.mark.unit
REPO_ROOT = Path(__file__).resolve().parents[2]
LIMITS = ("DIGITS_RATE_LIMIT", "DIGITS_EXPLAIN_RATE_LIMIT")


def _compose_env() -> dict[str, str]:
    document = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    raw: dict[str, Any] = document["services"]["api"]["environment"]
    # ${NAME:-default}: the value compose uses when the operator sets nothing.
    return {k: re.sub(r"^\$\{\w+:-(.*)\}$", r"\1", str(v)) for k, v in raw.items()}


def _container_env(path: Path) -> dict[str, str]:
    documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    for document in documents:
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            return {item["name"]: str(item.get("value")) for item in container.get("env", [])}
    raise AssertionError(f"{path}: no container")


def _deployment_env(deployment: str) -> dict[str, str]:
    if deployment == "compose":
        return _compose_env()
    manifest = {"kubernetes": "k8s/deployment.yaml", "cloud run": "cloudrun/service.yaml"}
    return _container_env(REPO_ROOT / "deploy" / manifest[deployment])


@pytest.mark.parametrize("deployment", ["compose", "kubernetes", "cloud run"])
def test_shipped_deployments_set_rate_limits_the_service_accepts(deployment: str) -> None:
    env = _deployment_env(deployment)
    assert set(LIMITS) <= set(env), f"{deployment} sets no rate limit"
    settings = load_settings({name: env[name] for name in LIMITS})
    assert settings.rate_limit is not None
    assert settings.explain_rate_limit is not None
    general, explain = parse(settings.rate_limit), parse(settings.explain_rate_limit)
    # /explain costs 65 model runs a row: its limit is the stricter of the two.
    assert explain.amount / explain.get_expiry() < general.amount / general.get_expiry()

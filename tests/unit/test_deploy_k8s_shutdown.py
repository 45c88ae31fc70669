"""Kubernetes manifests: a pod leaves rotation before it stops serving (risk register R13).

A deleted pod (rolling update, eviction) is taken out of the Service's endpoints at once,
but kube-proxy and ingress controllers apply that a little later: the preStop sleep keeps
it serving meanwhile. Then SIGTERM: the service answers /ready with 503 for
DIGITS_SHUTDOWN_DRAIN_SECONDS while it keeps serving (long enough for the readiness probe
to fail), then stops gracefully. terminationGracePeriodSeconds must cover all of it, or the
kubelet kills requests in flight.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from serving.__main__ import WORKER_KILL_TIMEOUT_SECONDS
from serving.settings import load_settings
from tests.unit.test_deploy_k8s import api, api_container, validate

pytestmark = pytest.mark.unit


def drain_seconds() -> float:
    env = {item["name"]: item["value"] for item in api_container(api())["env"] if "value" in item}
    return load_settings(
        {"DIGITS_SHUTDOWN_DRAIN_SECONDS": env["DIGITS_SHUTDOWN_DRAIN_SECONDS"]}
    ).shutdown_drain_seconds


def test_pods_sleep_before_sigterm_and_drain_after_it() -> None:
    container = api_container(api())
    pre_stop = container["lifecycle"]["preStop"]
    assert pre_stop["sleep"]["seconds"] >= 5
    probe = container["readinessProbe"]
    assert probe["httpGet"]["path"] == "/ready"
    # The readiness probe sees the 503 before the service stops accepting.
    assert drain_seconds() >= probe["periodSeconds"] * probe["failureThreshold"]


def test_the_grace_period_covers_sleep_drain_and_requests_in_flight() -> None:
    workload = api()
    container = api_container(workload)
    needed = (
        container["lifecycle"]["preStop"]["sleep"]["seconds"]
        + drain_seconds()
        + WORKER_KILL_TIMEOUT_SECONDS
    )
    assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= needed


def test_the_schema_knows_the_sleep_action() -> None:
    """preStop ``sleep`` (Kubernetes >= 1.30 by default) validates; a misspelt one does not."""
    workload = api()
    validate(workload)
    container = api_container(workload)
    container["lifecycle"]["preStop"] = {"sleep": {"second": 5}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(workload)

"""MLServer as an anchor of ``make bench``: the project's models/model.joblib served by
MLServer's scikit-learn runtime over the Open Inference Protocol, from ``.venv-mlserver``
(requirements/mlserver.lock, ``make venv-mlserver``).

Configured for its best single-worker throughput: no access log (``debug: false``), no
metrics server or metrics middleware (``metrics_endpoint: null``), no GZip middleware
(``gzip_enabled: false``; wrk asks for no compression), no adaptive batching (the
default), and BLAS/OpenMP limited to one thread (bench/mlserver_launch.py). Its gRPC
server cannot be turned off in MLServer 1.7.1: it listens on a loopback port and idles.
Both single-worker modes are measured: ``parallel_workers: 0`` (inference in the HTTP
process) and ``parallel_workers: 1`` (one spawned inference process; MLServer's default).
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from bench.bodies import OIP_ROUTE
from bench.targets import REPO_ROOT, SINGLE_THREAD_ENV, Target, free_port

VENV = REPO_ROOT / ".venv-mlserver"
MODEL_NAME = "digits-classifier"
MODEL_FILE = REPO_ROOT / "models" / "model.joblib"
LAUNCHER = Path(__file__).with_name("mlserver_launch.py")


def settings(
    http_port: int, grpc_port: int, parallel_workers: int, home: Path
) -> dict[str, object]:
    """MLServer's settings.json for one target."""
    return {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "parallel_workers": parallel_workers,
        "metrics_dir": str(home / "metrics"),
        "environments_dir": str(home / "envs"),
    }


def model_settings() -> dict[str, object]:
    """model-settings.json: the scikit-learn runtime on models/model.joblib."""
    return {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(MODEL_FILE)},
    }


def mlserver(name: str, description: str, work: Path, parallel_workers: int) -> Target:
    """An MLServer target with its own model repository under ``work``."""
    python = VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{VENV} is missing: run `make venv-mlserver`")
    home = work / name
    (home / MODEL_NAME).mkdir(parents=True)
    port = free_port()
    config = settings(port, free_port(), parallel_workers, home)
    (home / "settings.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (home / MODEL_NAME / "model-settings.json").write_text(
        json.dumps(model_settings(), indent=2), encoding="utf-8"
    )
    # The joblib pipeline starts with the model's alignment step, stages.lib.align.CentroidAlign
    # (numpy and scikit-learn only): MLServer unpickles it from the repository, and from
    # nothing else of the project's environment.
    env = {**os.environ, **SINGLE_THREAD_ENV, "PYTHONPATH": str(REPO_ROOT)}
    return Target(
        name,
        description,
        [str(python), str(LAUNCHER), str(home)],
        port,
        env,
        ready_path=f"/v2/models/{MODEL_NAME}/ready",
        cwd=home,
    )


def _post(url: str, body: bytes) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        answer: dict[str, object] = json.loads(response.read())
    return answer


def mlserver_labels(base_url: str, body: bytes) -> list[int]:
    """The ``predict`` output MLServer answers to an OIP ``body``."""
    answer = _post(base_url + OIP_ROUTE, body)
    outputs = answer["outputs"]
    assert isinstance(outputs, list)
    predict = next(output for output in outputs if output["name"] == "predict")
    return [int(label) for label in predict["data"]]


def service_labels(base_url: str, body: bytes, authorization: str = "") -> list[int]:
    """The ``labels`` the service answers to a ``/predict`` ``body``."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        base_url + "/predict",
        data=body,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": authorization} if authorization else {}),
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        answer = json.loads(response.read())
    return [int(label) for label in answer["labels"]]

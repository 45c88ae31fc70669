"""Per-worker service state: readiness, the verified lineage, and the inference layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from litestar import Litestar

from serving.drain import DRAINING, DRAINING_MESSAGE, draining
from serving.feedback.service import Feedback
from serving.inference.inputs import ClientError
from serving.inference.predictor import Predictor
from serving.lineage import LineageError, VerifiedBundle
from serving.lineage.registry import RegistryInfo
from serving.monitoring.metrics import ServiceMetrics
from serving.schemas import GlobalImportance
from serving.settings import Settings

# /ready's words for a credential problem (ServiceState.credentials_problem): no details.
CREDENTIAL_PROBLEMS = {
    "keys_file_unreadable": "the API keys file cannot be re-read (revocations would not "
    "apply); the service log says why",
    "jwks_stale": "the JWKS has not been refreshed within DIGITS_JWT_JWKS_MAX_AGE; tokens "
    "are refused and the service log says why",
}
# /ready's words for every reason that is not about the model.
READY_MESSAGES = {**CREDENTIAL_PROBLEMS, DRAINING: DRAINING_MESSAGE}


@dataclass
class ServiceState:
    """Per-worker state: the verified model or the reason there is none."""

    settings: Settings
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    bundle: VerifiedBundle | None = None
    failure: LineageError | None = None
    model_body: bytes = b""
    # The GTO registry entry of the verified model (found once, at load): /model, records.
    registry: RegistryInfo | None = None
    importance: GlobalImportance | None = None
    worker_process: bool = False
    # Why credentials cannot be trusted now (set by the authentication step; /ready asks).
    credential_problem: Callable[[], str | None] | None = None
    # Called at shutdown, after the last request (e.g. the decision writer's final flush).
    closers: list[Callable[[], None]] = field(default_factory=list)
    # The inference layer: model sessions, micro-batcher, OOD policy, drift, model metrics.
    predictor: Predictor = field(init=False)
    # POST /feedback (DIGITS_FEEDBACK=on; set with the decision records' chain step).
    feedback: Feedback | None = None

    def __post_init__(self) -> None:
        self.predictor = Predictor(self.metrics, self.settings.ood_policy)

    def ready_bundle(self) -> VerifiedBundle:
        """The verified bundle, or the 503 not-ready error."""
        if self.bundle is None:
            raise self.not_ready()
        return self.bundle

    def not_ready(self) -> ClientError:
        """The one not-ready error (503): why there is no model, or that it is loading."""
        return ClientError(503, "model_not_ready", f"model not ready: {self.public_reason()}")

    def public_reason(self) -> str:
        """Why there is no model, in words fit for any caller: the reason code only.

        The failure's own message names absolute paths and md5s; that goes to the log
        (:func:`serving.lineage.loading.load_model`), not to unauthenticated callers of ``/ready``.
        """
        failure = self.failure
        if failure is None:
            return "model is loading"
        return f"the locked artifacts were refused ({failure.reason}); the service log says why"

    def not_ready_reason(self) -> str | None:
        """None when this worker is ready to serve; else the reason code /ready gives."""
        problem = self.credentials_problem()
        if self.bundle is None:
            return self.failure.reason if self.failure else "loading"
        if draining():  # the server got SIGTERM: out of rotation, still serving
            return DRAINING
        return problem

    def credentials_problem(self) -> str | None:
        """Why the credentials cannot be trusted now (a reason code), or None; kept in the
        ``auth_credentials_healthy`` gauge."""
        problem = None if self.credential_problem is None else self.credential_problem()
        self.metrics.access.credentials_healthy.set(0 if problem else 1)
        return problem

    def before_scrape(self) -> None:
        """Bring the drift and credential gauges up to date (before a ``/metrics`` render)."""
        if self.predictor.drift is not None:
            self.predictor.drift.publish()
        self.credentials_problem()


def service_of(app: Litestar) -> ServiceState:
    """The service state a Litestar app was composed with (``app.state.service``)."""
    return cast(ServiceState, app.state.service)

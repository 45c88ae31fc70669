"""The Litestar application: routes, error shape, request ids, metrics and model lifecycle."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
import numpy.typing as npt
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.response.base import ASGIResponse
from litestar.static_files import create_static_files_router
from litestar.types import (
    HTTPScope,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from serving import oip
from serving.batching import MicroBatcher, Prediction
from serving.dead_workers import sweep_dead_workers
from serving.demo import DEMO_PAGE_PATH, DEMO_STATIC_PATH, demo_router
from serving.drift import DriftMonitor, DriftReport, DriftSummary, parse_reference
from serving.fastpath import FastPath
from serving.inputs import ClientError, decode_samples
from serving.lineage import (
    REFERENCE_STATS_JSON,
    LineageError,
    VerifiedBundle,
    load_verified_bundle,
    load_verified_file,
)
from serving.logs import configure_logging, request_id_var
from serving.metrics import ServiceMetrics, mark_process_dead, render_latest
from serving.model import OnnxModel
from serving.registry import RegistryInfo, read_registry
from serving.schemas import (
    EXAMPLE_DIGIT,
    EXAMPLE_FLAT,
    GRID,
    ArtifactInfo,
    ErrorResponse,
    ExplainResponse,
    GlobalImportance,
    HealthResponse,
    ModelResponse,
    PredictResponse,
    ReadyResponse,
    RegistryResponse,
    SampleExplanation,
    StageResponse,
    samples_request_schema,
)
from serving.settings import Settings, load_settings
from serving.signature import check_worker as check_signature

log = logging.getLogger("serving")
access_log = logging.getLogger("serving.access")
STATIC_DIR = Path(__file__).parent / "static" / "swagger-ui"
STATIC_PATH = "/static/swagger-ui"
SERVING_PACKAGES = ("litestar", "msgspec", "numpy", "onnxruntime", "prometheus-client", "granian")
_JSON_MEDIA = (MediaType.JSON.value,)
DRIFT_PUBLISH_SECONDS = 1.0
_ENCODER = msgspec.json.Encoder()
_STATUS_REASONS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}
LINEAR_DESCRIPTION = (
    "Exact logit contributions of the linear model: coef[c][j] * (x_j - mean_j) / scale_j for "
    "the predicted class c; their sum plus base_value (the intercept) is the class logit."
)
OCCLUSION_DESCRIPTION = (
    "Occlusion: the drop in the predicted class probability when pixel j is set to 0; "
    "base_value is the unoccluded probability."
)


@dataclass
class ServiceState:
    """Per-worker state: the verified model or the reason there is none."""

    settings: Settings
    metrics: ServiceMetrics
    model: OnnxModel | None = None
    bundle: VerifiedBundle | None = None
    failure: LineageError | None = None
    model_body: bytes = b""
    importance: GlobalImportance | None = None
    drift: DriftMonitor | None = None

    def accept_batch(self, X: Any) -> None:
        """Record a validated inference batch: rows histogram and the drift window."""
        self.metrics.rows.observe(X.shape[0])
        self.observe_inputs(X)

    def observe_batch(self, X: Any, labels: npt.NDArray[np.int64]) -> None:
        """Record one model call: the drift window and the predicted-class counters."""
        self.observe_inputs(X)
        self.metrics.observe_predictions(labels)

    def observe_inputs(self, X: Any) -> None:
        """Feed a validated ``[n, 64]`` batch to the drift window."""
        if self.drift is not None:
            self.drift.observe(X)


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in SERVING_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _model_response(bundle: VerifiedBundle, registry: RegistryInfo | None) -> ModelResponse:
    card = bundle.card
    evaluate = bundle.evaluate_stage
    raw = bundle.raw_data
    return ModelResponse(
        name=card.name,
        version=bundle.version,
        model_type=card.model_type,
        classes=card.classes,
        artifacts={
            key: ArtifactInfo(path=key, md5=artifact.md5, size=artifact.size)
            for key, artifact in bundle.artifacts.items()
        },
        stage=StageResponse(**msgspec.structs.asdict(bundle.train_stage)),
        evaluate_stage=None
        if evaluate is None
        else StageResponse(**msgspec.structs.asdict(evaluate)),
        params=card.params,
        metrics=bundle.metrics,
        training_library_versions=card.library_versions,
        serving_library_versions=_library_versions(),
        raw_data=None
        if raw is None
        else ArtifactInfo(path=raw.lock_path, md5=raw.md5, size=raw.size),
        registry=None if registry is None else RegistryResponse(**msgspec.structs.asdict(registry)),
    )


def load_model(state: ServiceState) -> None:
    """Verify the locked artifacts, build and warm the session; record why on failure."""
    settings = state.settings
    started = time.perf_counter()
    try:
        check_signature(settings)
        bundle = load_verified_bundle(settings.lock_file, settings.resolved_model_dir)
        registry = read_registry(settings.resolved_model_dir)
        model = OnnxModel(bundle)
        model.warm_up()
        drift = _drift_monitor(settings, state.metrics)
    except LineageError as exc:
        state.failure = exc
        state.metrics.model_ready.set(0)
        log.error(
            "refusing to serve: %s",
            exc,
            extra={"reason": exc.reason, "lock_file": str(settings.lock_file)},
        )
        return
    values = bundle.importance.importances_mean
    state.importance = GlobalImportance(
        method=bundle.importance.method,
        scoring=bundle.importance.scoring,
        values=values,
        grid=[values[row * GRID : (row + 1) * GRID] for row in range(GRID)],
    )
    state.model_body = _ENCODER.encode(_model_response(bundle, registry))
    state.bundle, state.model, state.failure, state.drift = bundle, model, None, drift
    state.metrics.model_info.labels(
        bundle.version,
        bundle.card.model_type,
        registry.version if registry else "",
        registry.stage or "" if registry else "",
    ).set(1)
    state.metrics.model_ready.set(1)
    log.info(
        "model ready",
        extra={
            "model_version": bundle.version,
            "model_type": bundle.card.model_type,
            "load_seconds": round(time.perf_counter() - started, 4),
        },
    )


def _drift_monitor(settings: Settings, metrics: ServiceMetrics) -> DriftMonitor:
    """The drift window over the dvc.lock-verified training reference statistics."""
    _, data = load_verified_file(settings.lock_file, REFERENCE_STATS_JSON)
    reference = parse_reference(data, settings.project_dir / REFERENCE_STATS_JSON)
    monitor = DriftMonitor(
        reference, settings.drift_window, settings.drift_min_rows, settings.drift_psi_threshold
    )

    def publish(summary: DriftSummary) -> None:
        metrics.drift.publish(**msgspec.structs.asdict(summary))

    monitor.attach(publish, DRIFT_PUBLISH_SECONDS)
    return monitor


def _error_body(status: int, reason: str, message: str, location: str | None) -> ErrorResponse:
    return ErrorResponse(
        status=status,
        reason=reason,
        message=message,
        location=location,
        request_id=request_id_var.get(),
    )


def _not_ready(state: ServiceState) -> ClientError:
    failure = state.failure
    message = str(failure) if failure else "model is loading"
    return ClientError(503, "model_not_ready", f"model not ready: {message}")


def _schema_from_dict(spec: dict[str, Any]) -> Schema:
    """Turn a small JSON-schema dict into Litestar's OpenAPI ``Schema`` object."""
    kwargs: dict[str, Any] = {}
    names = {
        "title": "title",
        "description": "description",
        "minItems": "min_items",
        "maxItems": "max_items",
        "minimum": "minimum",
        "maximum": "maximum",
        "required": "required",
    }
    for key, value in spec.items():
        if key in names:
            kwargs[names[key]] = value
        elif key == "type":
            kwargs["type"] = OpenAPIType(value)
        elif key == "items":
            kwargs["items"] = _schema_from_dict(value)
        elif key == "oneOf":
            kwargs["one_of"] = [_schema_from_dict(item) for item in value]
        elif key == "properties":
            kwargs["properties"] = {name: _schema_from_dict(sub) for name, sub in value.items()}
        elif key == "additionalProperties":
            kwargs["additional_properties"] = value
    return Schema(**kwargs)


def _samples_operation(max_rows: int) -> type[Operation]:
    """An Operation class whose request body documents both sample shapes and the limits."""
    body = RequestBody(
        required=True,
        description="Samples to classify: flat 64-pixel lists or 8x8 nested lists, values 0..16.",
        content={
            MediaType.JSON.value: OpenAPIMediaType(
                schema=_schema_from_dict(samples_request_schema(max_rows)),
                examples={
                    "flat": Example(
                        summary="One flat 64-pixel sample", value={"samples": [EXAMPLE_FLAT]}
                    ),
                    "grid": Example(
                        summary="One 8x8 nested sample", value={"samples": [EXAMPLE_DIGIT]}
                    ),
                },
            )
        },
    )

    @dataclass
    class SamplesOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return SamplesOperation


_ERROR_EXAMPLE = Example(
    summary="A pixel out of range",
    value={
        "status": 400,
        "reason": "out_of_range",
        "message": "Expected `float` <= 16.0: every pixel must be a finite number in 0..16",
        "location": "samples[3][12]",
        "request_id": "5f0c6c1e2a7b4c7e9d1f00a1b2c3d4e5",
    },
)


def _error_spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        ErrorResponse, description=description, generate_examples=False, examples=[_ERROR_EXAMPLE]
    )


def _ok_spec(data: type[Any], description: str) -> ResponseSpec:
    return ResponseSpec(data, description=description, generate_examples=False)


_ERROR_RESPONSES = {
    400: _error_spec("Malformed JSON, wrong shape, wrong type or value (location says where)"),
    408: _error_spec("The body did not arrive within DIGITS_BODY_READ_TIMEOUT seconds"),
    413: _error_spec("Body over the byte limit, or more samples than the row limit"),
    415: _error_spec("Content-Type is not application/json"),
    503: _error_spec("The locked model is not verified and warm; message says why"),
}


def _content_type(scope: HTTPScope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""


async def _read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The request body, refusing (413) as soon as it grows past ``limit`` bytes."""
    announced = request.scope["headers"]
    for name, value in announced:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientError(400, "client_disconnected", "client disconnected mid-request")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _body_too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _body_too_large(limit: int) -> ClientError:
    return ClientError(
        413, "body_too_large", f"Request body exceeds the limit of {limit} bytes", "body"
    )


async def _read_samples(request: Request[Any, Any, Any], state: ServiceState) -> Any:
    """Content type, readiness, body size and samples checked in that order."""
    content_type = _content_type(request.scope)
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in _JSON_MEDIA and not media.endswith("+json"):
        raise ClientError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {content_type or 'none'!r}",
            "header:content-type",
        )
    if state.model is None:
        raise _not_ready(state)
    body = await _read_body(request, state.settings.max_body_bytes)
    return decode_samples(body, state.settings.max_rows)


_JSON_CONTENT_TYPE = (b"content-type", MediaType.JSON.value.encode())


class JSONBytesResponse(ASGIResponse):
    """A 200 ``application/json`` response from already-encoded bytes.

    The hot routes return this instead of a Struct so that Litestar skips its generic
    response pipeline (header containers, re-encoding checks); the bytes are msgspec's.
    """

    __slots__ = ()

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status_code = 200
        self.background = None
        self.is_head_response = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON_CONTENT_TYPE, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def create_app(settings: Settings, *, worker_process: bool = False) -> Litestar:
    """Build the service. The lifespan hook verifies and loads the dvc.lock-pinned model.

    ``worker_process``: this app owns its process (a server worker), so on shutdown it
    removes the process's live-gauge files from the Prometheus multiprocess directory.
    """
    state = ServiceState(settings=settings, metrics=ServiceMetrics())
    samples_operation = _samples_operation(settings.max_rows)

    def infer(X: npt.NDArray[np.float32]) -> Prediction:
        model = state.model
        if model is None:  # pragma: no cover - callers check readiness
            raise _not_ready(state)
        return model.predict(X)

    batcher = MicroBatcher(infer, state.observe_batch, state.metrics.observe_rows)

    def predict_batch(X: npt.NDArray[np.float32]) -> asyncio.Future[Prediction]:
        """Labels and probabilities of validated samples, from this iteration's model call."""
        return batcher.submit(X)

    async def predict_payload(X: npt.NDArray[np.float32]) -> bytes:
        """``/predict`` response bytes for validated samples (shared by both dispatch paths)."""
        bundle = state.bundle
        if bundle is None:  # pragma: no cover - callers check readiness
            raise _not_ready(state)
        labels, probabilities = await batcher.submit(X)
        return _ENCODER.encode(
            PredictResponse(
                model_version=bundle.version,
                labels=labels.tolist(),
                probabilities=probabilities.tolist(),
                classes=bundle.card.classes,
            )
        )

    async def explain_payload(X: npt.NDArray[np.float32]) -> bytes:
        """``/explain`` response bytes for validated samples (shared by both dispatch paths)."""
        model, bundle, importance = state.model, state.bundle, state.importance
        if model is None or bundle is None or importance is None:  # pragma: no cover
            raise _not_ready(state)
        state.accept_batch(X)
        labels, _ = model.predict(X)
        state.metrics.observe_predictions(labels)
        contributions, base_values = model.explain(X, labels)
        grids = contributions.reshape(-1, GRID, GRID).tolist()
        linear = model.explanation_method == "linear_exact"
        return _ENCODER.encode(
            ExplainResponse(
                model_version=bundle.version,
                method=model.explanation_method,
                method_description=LINEAR_DESCRIPTION if linear else OCCLUSION_DESCRIPTION,
                global_importance=importance,
                explanations=[
                    SampleExplanation(label=label, base_value=base, contributions=grid)
                    for label, base, grid in zip(
                        labels.tolist(), base_values.tolist(), grids, strict=True
                    )
                ],
            )
        )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if worker_process:
            sweep_dead_workers()  # a respawned worker replaces one that may have been killed
        load_model(state)
        try:
            yield
        finally:
            state.metrics.model_ready.set(0)
            if worker_process:
                mark_process_dead()

    @get("/health", sync_to_thread=False, summary="Liveness")
    def health() -> HealthResponse:
        return HealthResponse(status="ok")

    @get(
        "/ready",
        sync_to_thread=False,
        summary="Readiness: the locked model is verified and warm",
        responses={
            503: ResponseSpec(
                ReadyResponse, description="Not ready, with the reason", generate_examples=False
            )
        },
    )
    def ready() -> Response[ReadyResponse]:
        if state.bundle is not None:
            return Response(ReadyResponse(status="ready", model_version=state.bundle.version))
        failure = state.failure
        return Response(
            ReadyResponse(
                status="not_ready",
                reason=failure.reason if failure else "loading",
                message=str(failure) if failure else "model is loading",
            ),
            status_code=503,
        )

    @get("/metrics", sync_to_thread=False, summary="Prometheus metrics", media_type=MediaType.TEXT)
    def metrics() -> Response[bytes]:
        if worker_process:
            sweep_dead_workers()
        if state.drift is not None:
            state.drift.publish()
        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    @get(
        "/drift",
        sync_to_thread=False,
        summary="Input drift of this worker's recent request window against the training data",
        description=(
            "Per worker (pid): window size and fill, PSI threshold, drift score (mean per-pixel "
            "PSI; 0 until the window holds min_rows rows), PSI max/mean, pixels over the "
            "threshold and the top drifting pixels. See docs/drift.md."
        ),
        responses={503: _ERROR_RESPONSES[503]},
    )
    def drift() -> DriftReport:
        if state.drift is None:
            raise _not_ready(state)
        return state.drift.report()

    @post(
        "/predict",
        status_code=200,
        summary="Predict digit labels and class probabilities",
        operation_class=samples_operation,
        responses={200: _ok_spec(PredictResponse, "Labels and probabilities"), **_ERROR_RESPONSES},
    )
    async def predict(request: Request[Any, Any, Any]) -> JSONBytesResponse:
        return JSONBytesResponse(await predict_payload(await _read_samples(request, state)))

    @post(
        "/explain",
        status_code=200,
        summary="Explain predictions: global importances and per-pixel contributions (8x8)",
        operation_class=samples_operation,
        responses={
            200: _ok_spec(ExplainResponse, "Importances and contributions"),
            **_ERROR_RESPONSES,
        },
    )
    async def explain(request: Request[Any, Any, Any]) -> JSONBytesResponse:
        return JSONBytesResponse(await explain_payload(await _read_samples(request, state)))

    @get(
        "/model",
        sync_to_thread=False,
        summary="Lineage of the served model",
        responses={503: _ERROR_RESPONSES[503]},
    )
    def model_info() -> Response[ModelResponse]:
        if state.bundle is None:
            raise _not_ready(state)
        return Response(state.model_body, media_type=MediaType.JSON)  # type: ignore[arg-type]

    def client_error_handler(request: Request[Any, Any, Any], exc: ClientError) -> Response[Any]:
        if exc.status != 503:
            state.metrics.validation_failures.labels(exc.reason).inc()
        log.info("rejected request: %s", exc.message, extra={"reason": exc.reason})
        if _is_oip(request):
            # Row limit: 400 as in the spec; a body over the byte limit stays 413.
            status = 400 if exc.reason == "too_many_rows" else exc.status
            headers = {"connection": "close"} if status == 408 else None
            return Response(oip.error_body(exc.message), status_code=status, headers=headers)
        body = _error_body(exc.status, exc.reason, exc.message, exc.location)
        # 408: the rest of the body may still arrive; the connection cannot be reused.
        headers = {"connection": "close"} if exc.status == 408 else None
        return Response(body, status_code=exc.status, headers=headers)

    def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        status = exc.status_code
        if status >= 500:
            return server_error_handler(request, exc)
        reason = _STATUS_REASONS.get(status, "client_error")
        if reason == "body_too_large":
            state.metrics.validation_failures.labels(reason).inc()
            message = f"Request body exceeds the limit of {settings.max_body_bytes} bytes"
        else:
            message = str(exc.detail)
        log.info("rejected request: %s", message, extra={"reason": reason})
        headers = getattr(exc, "headers", None)
        if _is_oip(request):
            return Response(oip.error_body(message), status_code=status, headers=headers)
        return Response(
            _error_body(status, reason, message, None), status_code=status, headers=headers
        )

    def server_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        log.error("internal error", exc_info=exc)
        body = _error_body(500, "internal_error", "Internal server error", None)
        return Response(body, status_code=500)

    openapi = OpenAPIConfig(
        title="Digits inference service",
        version="1.0.0",
        description="Serves only the model version that dvc.lock pins (ONNX Runtime).",
        path="/docs",
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
                css_url=f"{STATIC_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{STATIC_PATH}/swagger-ui-standalone-preset.js",
                favicon=f'<link rel="icon" href="{STATIC_PATH}/favicon-32x32.png">',
            )
        ],
    )
    handlers: dict[type[Exception] | int, Callable[..., Response[Any]]] = {
        ClientError: client_error_handler,
        HTTPException: http_error_handler,
        Exception: server_error_handler,
    }
    app = ObservedLitestar(
        route_handlers=[
            health,
            ready,
            metrics,
            predict,
            explain,
            model_info,
            drift,
            *oip.oip_route_handlers(state, predict_batch, _read_body),
            create_static_files_router(
                path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False
            ),
            demo_router(),
        ],
        lifespan=[lifespan],
        openapi_config=openapi,
        exception_handlers=handlers,
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
    )
    app.service_metrics = state.metrics
    app.fast_path = FastPath(
        {"/predict": predict_payload, "/explain": explain_payload},
        is_ready=lambda: state.model is not None,
        max_body_bytes=settings.max_body_bytes,
        max_rows=settings.max_rows,
        raw_routes=oip.fast_infer_routes(state, predict_batch),
    )
    app.body_read_timeout = settings.body_read_timeout_seconds
    app.service_state = state
    app.batcher = batcher
    return app


def _is_oip(request: Request[Any, Any, Any]) -> bool:
    path = request.scope["path"]
    return path == oip.OIP_PREFIX or path.startswith(oip.OIP_PREFIX + "/")


# Generated ids: a random per-process prefix and a counter, unique across workers and
# restarts without a getrandom syscall per request.
_ID_PREFIX = os.urandom(10).hex()
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    """A forked worker must not repeat its parent's ids."""
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(10).hex()


os.register_at_fork(after_in_child=_new_id_prefix)


def _request_id(scope: HTTPScope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
            break
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


class ObservedLitestar(Litestar):
    """Litestar plus request ids, access logs and HTTP metrics around every request."""

    service_metrics: ServiceMetrics
    service_state: ServiceState
    fast_path: FastPath
    batcher: MicroBatcher
    body_read_timeout: float = 30.0

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
            return
        await self._observe(cast("HTTPScope", scope), cast("Receive", receive), cast("Send", send))

    async def _observe(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode("latin-1"))
        method = scope["method"]
        status = 500
        metrics = self.service_metrics
        progress = metrics.in_progress_child(_route_guess(scope["path"]), method)
        progress.inc()
        if method in _BODY_METHODS:
            receive = _body_deadline(receive, self.body_read_timeout)

        elapsed: float | None = None

        def record() -> float:
            # Counted before the last body byte leaves, so a client that has its answer
            # (and then scrapes /metrics, maybe from another worker) always sees it counted.
            seconds = time.perf_counter() - started
            metrics.observe_request(
                scope.get("path_template") or "unmatched", method, status, seconds
            )
            return seconds

        async def observed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            elif not message.get("more_body", False) and elapsed is None:
                elapsed = record()
            await send(message)

        try:
            fallback = await self.fast_path(scope, receive, observed_send)
            if fallback is not None:
                await super().__call__(scope, fallback, observed_send)
        finally:
            progress.dec()
            if elapsed is None:  # no complete response was sent (error or disconnect)
                elapsed = record()
            route = scope.get("path_template") or "unmatched"
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            request_id_var.reset(token)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _body_deadline(receive: Receive, timeout: float) -> Receive:
    """``receive`` that raises a 408 ClientError when the body is not complete in ``timeout``
    seconds from the first read (slow or stalled clients cannot hold a worker's request slot).
    Once the body is complete, later calls (disconnect waits) pass straight through."""
    deadline: float | None = None
    complete = False

    async def receive_with_deadline() -> ReceiveMessage:
        nonlocal deadline, complete
        if complete:
            return await receive()
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise ClientError(
                408,
                "body_timeout",
                f"Request body not received within {timeout:g} seconds",
                "body",
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return receive_with_deadline


_KNOWN_ROUTES = frozenset(
    {
        "/health",
        "/ready",
        "/metrics",
        "/predict",
        "/explain",
        "/model",
        "/drift",
        "/docs",
        "/docs/openapi.json",
        DEMO_PAGE_PATH,
    }
)


_OIP_GUESSES: dict[str, str] = {}
_OIP_GUESSES_MAX = 256


def _route_guess(path: str) -> str:
    """The route label for the in-progress gauge, known before routing (bounded)."""
    if path in _KNOWN_ROUTES:
        return path
    if path.startswith(STATIC_PATH + "/"):
        return STATIC_PATH + "/{file_path}"
    if path.startswith(oip.OIP_PREFIX):
        guess = _OIP_GUESSES.get(path)
        if guess is None:
            guess = oip.route_guess(path)
            if len(_OIP_GUESSES) < _OIP_GUESSES_MAX:  # bounded: paths come from clients
                _OIP_GUESSES[path] = guess
        return guess
    if path.startswith(DEMO_STATIC_PATH + "/"):
        return DEMO_STATIC_PATH + "/{file_path}"
    return "unmatched"


def app_from_env() -> Litestar:
    """Factory used by the server workers: settings from ``DIGITS_*`` variables."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings, worker_process=True)


__all__ = ["ObservedLitestar", "app_from_env", "create_app", "load_model"]

"""The native routes: health, readiness, metrics, drift, model lineage, predict and explain.

Handlers are plain module-level functions; :func:`native_routes` gives them their paths
and documentation (the route table, :mod:`serving.routes`, lists every path once).
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Operation

from serving.access import EXPLAIN, PREDICT, READ, needs, public
from serving.decisions.outcome import DecidedResponse
from serving.http.body import read_body, require_json
from serving.http.dispatch import FAST
from serving.inference.inputs import decode_samples
from serving.monitoring.drift import DriftReport
from serving.monitoring.exposition import metrics_page_of
from serving.openapi import ERROR_RESPONSES, ok_spec, samples_operation
from serving.routes.payloads import explain_body, predict_body
from serving.schemas import (
    ExplainResponse,
    HealthResponse,
    ModelResponse,
    PredictResponse,
    ReadyResponse,
)
from serving.settings import Settings
from serving.state import READY_MESSAGES, ServiceState, service_of

AnyRequest = Request[Any, Any, Any]


def health() -> HealthResponse:
    return HealthResponse(status="ok")


def ready(request: AnyRequest) -> Response[ReadyResponse]:
    service = service_of(request.app)
    reason = service.not_ready_reason()
    if reason is None and service.bundle is not None:
        return Response(ReadyResponse(status="ready", model_version=service.bundle.version))
    message = READY_MESSAGES.get(reason or "") or service.public_reason()
    return Response(
        ReadyResponse(status="not_ready", reason=reason or "loading", message=message),
        status_code=503,
    )


async def metrics(request: AnyRequest) -> Response[bytes]:
    body, content_type = await metrics_page_of(request.app).page()
    return Response(body, media_type=content_type)


def drift(request: AnyRequest) -> DriftReport:
    service = service_of(request.app)
    window = service.predictor.drift
    if window is None:
        raise service.not_ready()
    return window.report()


def model_info(request: AnyRequest) -> Response[bytes]:
    service = service_of(request.app)
    service.ready_bundle()
    return Response(service.model_body, media_type=MediaType.JSON)


async def read_samples(request: AnyRequest, service: ServiceState, max_rows: int) -> Any:
    """Content type, readiness, body size and samples (1 to ``max_rows``) checked in order."""
    require_json(request.scope)
    service.ready_bundle()
    body = await read_body(request.receive)
    return decode_samples(body, max_rows)


async def predict(request: AnyRequest) -> Response[bytes]:
    service = service_of(request.app)
    X = await read_samples(request, service, service.settings.max_rows)
    decided = await service.predictor.predict(X)
    body = predict_body(service.ready_bundle(), decided)
    return DecidedResponse(body, decided, media_type=MediaType.JSON)


async def explain(request: AnyRequest) -> Response[bytes]:
    service = service_of(request.app)
    X = await read_samples(request, service, explain_rows(service.settings))
    explained = await service.predictor.explain(X)
    bundle, importance = service.ready_bundle(), service.importance
    if importance is None:  # pragma: no cover - set with the bundle
        raise service.not_ready()
    body = explain_body(bundle, importance, explained)
    return DecidedResponse(body, explained.decided, media_type=MediaType.JSON)


def explain_rows(settings: Settings) -> int:
    """``/explain``'s row limit: ``DIGITS_EXPLAIN_MAX_ROWS``, at most ``DIGITS_MAX_ROWS``."""
    return min(settings.explain_max_rows, settings.max_rows)


def native_routes(settings: Settings) -> list[HTTPRouteHandler]:
    """The native routes' paths and documentation."""
    samples = samples_operation(settings.max_rows)
    explain_samples = samples_operation(explain_rows(settings))
    not_ready = {503: ERROR_RESPONSES[503]}
    return [
        get("/health", sync_to_thread=False, summary="Liveness", opt=public())(health),
        get(
            "/ready",
            sync_to_thread=False,
            summary="Readiness: the locked model is verified and warm",
            opt=public(),
            responses={
                503: ResponseSpec(
                    ReadyResponse, description="Not ready, with the reason", generate_examples=False
                )
            },
        )(ready),
        get(
            "/metrics",
            summary="Prometheus metrics",
            media_type=MediaType.TEXT,
            opt=needs(READ) if settings.metrics_need_read else public(),
        )(metrics),
        get(
            "/drift",
            sync_to_thread=False,
            summary="Input drift of this worker's recent request window against the training data",
            description=(
                "Per worker (pid): window size and fill, PSI threshold, drift score (mean "
                "per-pixel PSI; 0 until the window holds min_rows rows), PSI max/mean, pixels "
                "over the threshold and the top drifting pixels. See docs/drift.md."
            ),
            responses=not_ready,
            opt=needs(READ),
        )(drift),
        get(
            "/model",
            sync_to_thread=False,
            summary="Lineage of the served model",
            responses={
                200: ok_spec(ModelResponse, "Lineage of the served model"),
                **not_ready,
            },
            opt=needs(READ),
        )(model_info),
        deciding_post(
            "/predict",
            "Predict digit labels and class probabilities",
            samples,
            ok_spec(PredictResponse, "Labels and probabilities"),
            PREDICT,
        )(predict),
        deciding_post(
            "/explain",
            "Explain predictions: global importances and per-pixel contributions (8x8)",
            explain_samples,
            ok_spec(ExplainResponse, "Importances and contributions"),
            EXPLAIN,
        )(explain),
    ]


def deciding_post(
    path: str,
    summary: str,
    operation_class: type[Operation],
    answer: ResponseSpec,
    scope: str,
) -> post:
    """A native deciding route: FAST, its scope, a decision per 2xx answer, the error shapes."""
    return post(
        path,
        status_code=200,
        summary=summary,
        operation_class=operation_class,
        responses={200: answer, **ERROR_RESPONSES},
        opt={FAST: True, **needs(scope, decides=True)},
    )

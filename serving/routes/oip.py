"""The Open Inference Protocol (``/v2``) routes: server and model health, metadata, inference.

Handlers are module-level functions; :func:`oip_routes` gives them their paths and
documentation. Wire format and decoding live in :mod:`serving.protocol`.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from serving.access import PREDICT, READ, needs, public
from serving.decisions.outcome import DecidedResponse
from serving.http.body import header, read_body
from serving.http.dispatch import FAST
from serving.inference.inputs import ClientError
from serving.openapi import (
    INFER_DESCRIPTION,
    OIP_ERRORS,
    OIP_INFER_RESPONSES,
    OIP_READY_CODES,
    OIP_TAGS,
    infer_operation,
)
from serving.protocol.oip import (
    EXTENSIONS,
    HEADER_LENGTH,
    MODEL_INPUTS,
    MODEL_OUTPUTS,
    OIP_PREFIX,
    PLATFORM,
    PROBABILITIES_OUTPUT,
    SERVER_NAME,
    SERVER_VERSION,
    ModelMetadata,
    OipError,
    ServerMetadata,
    TensorMetadata,
)
from serving.protocol.oip_decode import (
    canonical_batch,
    decode_request,
    input_batch,
    requested_outputs,
    split_body,
)
from serving.routes.payloads import canonical_infer_body, infer_body
from serving.state import ServiceState, service_of

AnyRequest = Request[Any, Any, Any]
_HEADER_LENGTH = HEADER_LENGTH.encode()


def _status(code: int) -> Response[bytes]:
    return Response(b"", status_code=code, media_type=MediaType.TEXT)


def check_model(service: ServiceState, name: str, version: str | None) -> None:
    """503 while not ready; 404 for another model's name or version."""
    bundle = service.ready_bundle()
    if name != bundle.card.name:
        raise OipError(404, "unknown_model", f"unknown model '{name}'")
    if version is not None and version != bundle.version:
        raise OipError(
            404,
            "unknown_version",
            f"unknown version '{version}' of model '{name}'; served: {bundle.version}",
        )


def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)


def server_live() -> Response[bytes]:
    return _status(200)


def server_ready(request: AnyRequest) -> Response[bytes]:
    return _status(200 if service_of(request.app).not_ready_reason() is None else 400)


def _metadata(request: AnyRequest, name: str, version: str | None) -> ModelMetadata:
    service = service_of(request.app)
    check_model(service, name, version)
    bundle = service.ready_bundle()
    n_classes = len(bundle.card.classes)
    outputs = [
        TensorMetadata(name=output.name, datatype=output.datatype, shape=[-1, n_classes])
        if output.name == PROBABILITIES_OUTPUT
        else output
        for output in MODEL_OUTPUTS
    ]
    return ModelMetadata(
        name=bundle.card.name,
        versions=[bundle.version],
        platform=PLATFORM,
        inputs=MODEL_INPUTS,
        outputs=outputs,
    )


def model_metadata(request: AnyRequest, name: FromPath[str]) -> ModelMetadata:
    return _metadata(request, name, None)


def model_version_metadata(
    request: AnyRequest, name: FromPath[str], version: FromPath[str]
) -> ModelMetadata:
    return _metadata(request, name, version)


def _ready_status(request: AnyRequest, name: str, version: str | None) -> Response[bytes]:
    try:
        check_model(service_of(request.app), name, version)
    except ClientError as exc:  # not ready (503) is the spec's 400
        return _status(400 if exc.status == 503 else exc.status)
    return _status(200)


def model_ready(request: AnyRequest, name: FromPath[str]) -> Response[bytes]:
    return _ready_status(request, name, None)


def model_version_ready(
    request: AnyRequest, name: FromPath[str], version: FromPath[str]
) -> Response[bytes]:
    return _ready_status(request, name, version)


async def _infer(request: AnyRequest, name: str, version: str | None) -> Response[bytes]:
    service = service_of(request.app)
    check_model(service, name, version)
    body = await read_body(request.receive)
    header_length = header(request.scope, _HEADER_LENGTH)
    if header_length is None:
        canonical = canonical_batch(body, service.settings.max_rows)
        if canonical is not None:  # the common request, decoded in one pass
            request_id, X = canonical
            decided = await service.predictor.predict(X)
            answer = canonical_infer_body(service.ready_bundle(), request_id, decided)
            return DecidedResponse(answer, decided, media_type=MediaType.JSON)
    length = None if header_length is None else header_length.decode("latin-1")
    json_header, binary = split_body(body, length)
    parsed = decode_request(json_header)
    outputs = requested_outputs(parsed)
    X = input_batch(parsed, binary, service.settings.max_rows)
    decided = await service.predictor.predict(X)
    answer, headers, media_type = infer_body(service.ready_bundle(), parsed.id, outputs, decided)
    return DecidedResponse(answer, decided, media_type=media_type, headers=headers)


async def model_infer(request: AnyRequest, name: FromPath[str]) -> Response[bytes]:
    return await _infer(request, name, None)


async def model_version_infer(
    request: AnyRequest, name: FromPath[str], version: FromPath[str]
) -> Response[bytes]:
    return await _infer(request, name, version)


def oip_routes(max_rows: int) -> list[HTTPRouteHandler]:
    """The ``/v2`` routes' paths and documentation (``max_rows``: the row limit in force)."""
    model = f"{OIP_PREFIX}/models/{{name:str}}"
    version = f"{model}/versions/{{version:str}}"
    common: dict[str, Any] = {"sync_to_thread": False, "tags": OIP_TAGS}
    health = {**common, "media_type": MediaType.TEXT, "opt": public()}
    read: dict[str, Any] = {**common, "opt": needs(READ)}
    text = {**read, "media_type": MediaType.TEXT}
    infer: dict[str, Any] = {
        "status_code": 200,
        "description": INFER_DESCRIPTION,
        "tags": OIP_TAGS,
        "responses": OIP_INFER_RESPONSES,
        "operation_class": infer_operation(max_rows),
        "opt": {FAST: True, **needs(PREDICT, decides=True)},
    }
    return [
        get(OIP_PREFIX, summary="OIP server metadata", **read)(server_metadata),
        get(f"{OIP_PREFIX}/health/live", summary="OIP server live (status code only)", **health)(
            server_live
        ),
        get(
            f"{OIP_PREFIX}/health/ready",
            summary="OIP server ready: 200, or 400 while the locked model is not verified",
            responses={400: OIP_READY_CODES[400]},
            **health,
        )(server_ready),
        get(model, summary="OIP model metadata", responses=OIP_ERRORS, **read)(model_metadata),
        get(version, summary="OIP model metadata (a version)", responses=OIP_ERRORS, **read)(
            model_version_metadata
        ),
        get(
            f"{model}/ready",
            summary="OIP model ready (status code only: 200, 400 not ready, 404 unknown)",
            responses=OIP_READY_CODES,
            **text,
        )(model_ready),
        get(
            f"{version}/ready",
            summary="OIP model ready (a version)",
            responses=OIP_READY_CODES,
            **text,
        )(model_version_ready),
        post(f"{model}/infer", summary="OIP inference", **infer)(model_infer),
        post(f"{version}/infer", summary="OIP inference (a version)", **infer)(model_version_infer),
    ]

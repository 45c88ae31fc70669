"""Open Inference Protocol (KServe v2 / Triton / MLServer) REST endpoints for the served model.

Health, metadata and inference as the KServe "predict-api/v2" REST spec describes them,
plus the binary tensor data extension (``Inference-Header-Content-Length``) that
``tritonclient.http`` uses by default. The pixels go through the same validation
as ``/predict`` (:func:`serving.inputs.pixel_batch`). Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt
from litestar import MediaType, Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath
from litestar.response.base import ASGIResponse
from litestar.types import HTTPScope

from serving.batching import Prediction
from serving.fastpath import RawAnswer, RawRoute
from serving.inputs import ClientError, check_row_count, pixel_batch
from serving.schemas import EXAMPLE_FLAT, GRID, N_FEATURES, PIXEL_MAX, PIXEL_MIN

if TYPE_CHECKING:
    from serving.app import ServiceState

OIP_PREFIX = "/v2"
SERVER_NAME = "digits-inference"
SERVER_VERSION = "1.0.0"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "onnxruntime_onnx"
INPUT_NAME = "pixels"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
HEADER_LENGTH = "inference-header-content-length"
_HEADER_LENGTH_BYTES = HEADER_LENGTH.encode()
OCTET_STREAM = "application/octet-stream"
_JSON_BYTES = b"application/json"
# Wire datatype -> little-endian numpy dtype (the binary extension is little-endian).
INPUT_DATATYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "FP32": "<f4",
        "FP64": "<f8",
        "INT8": "i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "UINT8": "u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
    }.items()
}
_INTEGER_DATATYPES = frozenset(name for name in INPUT_DATATYPES if "INT" in name)
_NESTED_TYPES: dict[tuple[bool, int], Any] = {
    (False, 1): list[float],
    (False, 2): list[list[float]],
    (False, 3): list[list[list[float]]],
    (True, 1): list[int],
    (True, 2): list[list[int]],
    (True, 3): list[list[list[int]]],
}
_DATA_DECODERS = {key: msgspec.json.Decoder(kind) for key, kind in _NESTED_TYPES.items()}
_ENCODER = msgspec.json.Encoder()
_OPEN_BRACKET = ord("[")
_WHITESPACE = frozenset(b" \t\r\n")

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class OipError(ClientError):
    """A 4xx answered as ``{"error": message}``; ``reason`` is a bounded metrics label."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(status, reason, message)


class OipErrorBody(msgspec.Struct):
    error: str


class RequestInput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    shape: list[NonNegative]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: absent


class RequestOutput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: list[RequestInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestOutput] | None = None


class FlatRequestInput(msgspec.Struct, forbid_unknown_fields=True):
    """The common case decoded in one pass: flat JSON numbers (no binary data)."""

    name: str
    shape: list[NonNegative]
    datatype: str
    data: list[float]
    parameters: dict[str, Any] | None = None


class FlatInferRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: list[FlatRequestInput]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestOutput] | None = None


AnyInferRequest = InferRequest | FlatInferRequest


class ResponseOutput(msgspec.Struct, omit_defaults=True):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferResponse(msgspec.Struct, omit_defaults=True):
    model_name: str
    model_version: str
    outputs: list[ResponseOutput]
    id: str | None = None


class TensorMetadata(msgspec.Struct):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(msgspec.Struct):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(msgspec.Struct):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


_REQUEST_DECODER = msgspec.json.Decoder(InferRequest)


class CanonicalInput(msgspec.Struct, forbid_unknown_fields=True):
    """The input most clients send: flat JSON pixels, range-checked while decoding."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Annotated[float, msgspec.Meta(ge=PIXEL_MIN, le=PIXEL_MAX)]]


class CanonicalInferRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One input, no parameters, every output as JSON: the request the fast route serves."""

    inputs: list[CanonicalInput]
    id: str | None = None


_FLAT_DECODER = msgspec.json.Decoder(FlatInferRequest)
_CANONICAL_DECODER = msgspec.json.Decoder(CanonicalInferRequest)
_FLOAT_DATATYPES = frozenset({"FP32", "FP64"})
MODEL_INPUTS = [TensorMetadata(name=INPUT_NAME, datatype="FP32", shape=[-1, N_FEATURES])]
MODEL_OUTPUTS = [
    TensorMetadata(name=LABEL_OUTPUT, datatype="INT64", shape=[-1]),
    TensorMetadata(name=PROBABILITIES_OUTPUT, datatype="FP32", shape=[-1, 10]),
]
_OUTPUT_DATATYPES = {output.name: output.datatype for output in MODEL_OUTPUTS}


def error_body(message: str) -> bytes:
    """The spec's error object, ``{"error": message}``."""
    return _ENCODER.encode(OipErrorBody(error=message))


def _bad(reason: str, message: str) -> OipError:
    return OipError(400, reason, message)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tensor section (binary tensor data extension)."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 < length <= len(body):
        raise _bad(
            "invalid_request",
            f"Inference-Header-Content-Length must be an integer in 1..{len(body)} "
            f"(the body size), got {header_length!r}",
        )
    return body[:length], body[length:]


def decode_request(header: bytes) -> AnyInferRequest:
    """The inference request JSON object, or a 400 that says what is wrong.

    Flat floating-point data (what most clients send) is decoded straight into a typed
    list in one pass; anything else (nested or integer data, binary tensors) is
    decoded again with the general schema, which also produces the error messages.
    """
    try:
        flat = _FLAT_DECODER.decode(header)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        pass
    else:
        if all(tensor.datatype in _FLOAT_DATATYPES for tensor in flat.inputs):
            return flat
    try:
        return _REQUEST_DECODER.decode(header)
    except msgspec.ValidationError as exc:
        raise _bad("invalid_request", f"invalid inference request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise _bad("malformed_json", f"inference request is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec's depth guard, e.g. 10,000 nested lists in "data"
        raise _bad("malformed_json", "inference request is nested too deeply") from None
    except UnicodeDecodeError as exc:  # msgspec, on invalid UTF-8 in an unknown key
        raise _bad("malformed_json", f"inference request is not valid UTF-8: {exc}") from None


def _json_values(tensor: RequestInput, integer: bool) -> Any:
    raw = tensor.data
    depth = 0
    for byte in bytes(memoryview(raw)[:64]):
        if byte == _OPEN_BRACKET:
            depth += 1
        elif byte not in _WHITESPACE:
            break
    decoder = _DATA_DECODERS.get((integer, depth))
    if decoder is None:
        raise _bad(
            "invalid_data",
            f"input '{tensor.name}': data must be a flat or nested (up to 3 levels) array "
            f"of {'integers' if integer else 'numbers'}",
        )
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        kind = "integer" if integer else "number"
        raise _bad(
            "invalid_data",
            f"input '{tensor.name}': data for {tensor.datatype} must hold only {kind}s: {exc}",
        ) from None


def input_batch(request: AnyInferRequest, binary: bytes, max_rows: int) -> npt.NDArray[np.float32]:
    """The ``pixels`` input as a validated float32 ``[n, 64]`` batch."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        names = [tensor.name for tensor in request.inputs]
        raise _bad(
            "invalid_input",
            f"expected exactly one input named '{INPUT_NAME}', got {names}",
        )
    tensor = request.inputs[0]
    dtype = INPUT_DATATYPES.get(tensor.datatype)
    if dtype is None:
        raise _bad(
            "unsupported_datatype",
            f"input '{tensor.name}': datatype {tensor.datatype!r} is not supported; "
            f"use one of {', '.join(INPUT_DATATYPES)}",
        )
    shape = tensor.shape
    if len(shape) not in (2, 3) or shape[1:] not in ([N_FEATURES], [GRID, GRID]):
        raise _bad(
            "invalid_shape",
            f"input '{tensor.name}': shape must be [n, {N_FEATURES}] or [n, {GRID}, {GRID}], "
            f"got {shape}",
        )
    n_rows = shape[0]
    check_row_count(n_rows, max_rows, f"inputs[0].shape[0] of '{tensor.name}'")
    expected = math.prod(shape)
    parameters = tensor.parameters or {}
    binary_size = parameters.get("binary_data_size")
    if isinstance(tensor, FlatRequestInput):
        if binary_size is not None or binary:
            raise _bad("invalid_data", f"input '{tensor.name}': both data and binary data")
        with np.errstate(over="ignore"):  # beyond float32 becomes inf: rejected below
            values = np.fromiter(tensor.data, dtype=np.float32, count=len(tensor.data))
    elif binary_size is not None:
        if len(tensor.data):
            raise _bad("invalid_data", f"input '{tensor.name}': both data and binary_data_size")
        if binary_size != len(binary):
            raise _bad(
                "invalid_data",
                f"input '{tensor.name}': binary_data_size {binary_size} does not match the "
                f"{len(binary)} bytes after the JSON header",
            )
        if len(binary) != expected * dtype.itemsize:
            raise _bad(
                "shape_mismatch",
                f"input '{tensor.name}': shape {shape} of {tensor.datatype} needs "
                f"{expected * dtype.itemsize} bytes, got {len(binary)}",
            )
        values = np.frombuffer(binary, dtype=dtype)
    else:
        if binary:
            raise _bad("invalid_data", "binary data after the JSON header but no input uses it")
        if not len(tensor.data):
            raise _bad("invalid_data", f"input '{tensor.name}': data is missing")
        nested = _json_values(tensor, tensor.datatype in _INTEGER_DATATYPES)
        try:
            with np.errstate(over="ignore"):  # beyond float32 becomes inf: rejected below
                values = np.array(nested, dtype=np.float32)
        except (ValueError, TypeError, OverflowError):
            raise _bad(
                "invalid_data", f"input '{tensor.name}': data is ragged (rows of different sizes)"
            ) from None
    if values.size != expected:
        raise _bad(
            "shape_mismatch",
            f"input '{tensor.name}': shape {shape} holds {expected} values, data has {values.size}",
        )
    return pixel_batch(values.reshape(n_rows, N_FEATURES), max_rows, "inputs[0].data")


def requested_outputs(request: AnyInferRequest) -> list[tuple[str, bool]]:
    """``(output name, binary?)`` in the requested order; all outputs when none are named."""
    parameters = request.parameters or {}
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise _bad("invalid_request", "parameters.binary_data_output must be a boolean")
    if request.outputs is None:
        return [(output.name, binary_default) for output in MODEL_OUTPUTS]
    chosen: list[tuple[str, bool]] = []
    for output in request.outputs:
        if output.name not in _OUTPUT_DATATYPES:
            raise _bad(
                "unknown_output",
                f"unknown output '{output.name}'; the model's outputs are "
                f"{', '.join(_OUTPUT_DATATYPES)}",
            )
        if any(name == output.name for name, _ in chosen):
            raise _bad("invalid_request", f"output '{output.name}' requested twice")
        options = output.parameters or {}
        unsupported = sorted(
            key
            for key, value in options.items()
            if key not in ("binary_data",) and value not in (0, False, None)
        )
        if unsupported:
            raise _bad(
                "unsupported_parameter",
                f"output '{output.name}': parameters {unsupported} are not supported "
                "(no classification or shared-memory extension)",
            )
        binary = options.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise _bad("invalid_request", f"output '{output.name}': binary_data must be boolean")
        chosen.append((output.name, binary))
    return chosen


def encode_response(
    response: InferResponse, arrays: list[npt.NDArray[Any]], binary: list[bool]
) -> tuple[bytes, dict[str, str], str]:
    """Body, extra headers and media type; binary outputs follow the JSON header."""
    chunks = []
    for output, array, as_binary in zip(response.outputs, arrays, binary, strict=True):
        if as_binary:
            raw = np.ascontiguousarray(array).tobytes()
            output.parameters = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            output.data = array.ravel().tolist()
    header = _ENCODER.encode(response)
    if not chunks:
        return header, {}, MediaType.JSON.value
    return (
        b"".join([header, *chunks]),
        {"Inference-Header-Content-Length": str(len(header))},
        OCTET_STREAM,
    )


def _status(code: int) -> Response[bytes]:
    return Response(b"", status_code=code, media_type=MediaType.TEXT)


_OIP_ERROR = ResponseSpec(OipErrorBody, description='{"error": "..."}', generate_examples=False)


def _status_only(description: str) -> ResponseSpec:
    """A status-code-only answer (empty text body), as the OIP health endpoints give."""
    return ResponseSpec(
        str, description=description, media_type=MediaType.TEXT, generate_examples=False
    )


_ANY_OBJECT = Schema(type=OpenAPIType.OBJECT)


def _infer_request_schema() -> Schema:
    """The inference request JSON object (what :func:`decode_request` accepts)."""
    tensor = Schema(
        type=OpenAPIType.OBJECT,
        required=["name", "shape", "datatype"],
        additional_properties=False,
        properties={
            "name": Schema(type=OpenAPIType.STRING),
            "shape": Schema(
                type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.INTEGER, minimum=0)
            ),
            "datatype": Schema(type=OpenAPIType.STRING, enum=list(INPUT_DATATYPES)),
            "parameters": _ANY_OBJECT,
            "data": Schema(
                type=OpenAPIType.ARRAY,
                description="Flat or nested (up to 3 levels) numbers, row-major",
            ),
        },
    )
    output = Schema(
        type=OpenAPIType.OBJECT,
        required=["name"],
        additional_properties=False,
        properties={"name": Schema(type=OpenAPIType.STRING), "parameters": _ANY_OBJECT},
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["inputs"],
        additional_properties=False,
        properties={
            "inputs": Schema(type=OpenAPIType.ARRAY, items=tensor),
            "id": Schema(type=OpenAPIType.STRING),
            "parameters": _ANY_OBJECT,
            "outputs": Schema(type=OpenAPIType.ARRAY, items=output),
        },
    )


@dataclass
class InferOperation(Operation):
    """Documents the infer request body and the binary (octet-stream) form of the answer."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="Inference request JSON object (optionally followed by binary tensors)",
            content={
                MediaType.JSON.value: OpenAPIMediaType(
                    schema=_infer_request_schema(),
                    examples={
                        "flat": Example(
                            summary="One flat FP32 sample",
                            value={
                                "inputs": [
                                    {
                                        "name": INPUT_NAME,
                                        "shape": [1, N_FEATURES],
                                        "datatype": "FP32",
                                        "data": EXAMPLE_FLAT,
                                    }
                                ]
                            },
                        )
                    },
                )
            },
        )
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content[OCTET_STREAM] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, format=None),
            )


async def answer_infer(
    state: ServiceState,
    predict: Callable[[npt.NDArray[np.float32]], Awaitable[Prediction]],
    parsed: AnyInferRequest,
    binary: bytes,
) -> tuple[bytes, dict[str, str], str]:
    """Validate, predict (drift window, class counters) and encode one inference request."""
    model, bundle = state.model, state.bundle
    if model is None or bundle is None:  # pragma: no cover - callers check readiness
        raise OipError(503, "model_not_ready", "model not ready")
    outputs = requested_outputs(parsed)
    X = input_batch(parsed, binary, state.settings.max_rows)
    labels, probabilities = await predict(X)
    arrays: dict[str, npt.NDArray[Any]] = {
        LABEL_OUTPUT: labels,
        PROBABILITIES_OUTPUT: probabilities,
    }
    response = InferResponse(
        model_name=bundle.card.name,
        model_version=bundle.version,
        id=parsed.id,
        outputs=[
            ResponseOutput(
                name=output,
                shape=list(arrays[output].shape),
                datatype=_OUTPUT_DATATYPES[output],
            )
            for output, _ in outputs
        ],
    )
    return encode_response(
        response, [arrays[output] for output, _ in outputs], [flag for _, flag in outputs]
    )


def canonical_batch(
    body: bytes, max_rows: int
) -> tuple[CanonicalInferRequest, npt.NDArray[np.float32]] | None:
    """The request and validated batch of a canonical request, else None.

    Canonical: one FP32 ``pixels`` input of shape ``[n, 64]`` or ``[n, 8, 8]`` with
    ``n * 64`` flat values in 0..16 and 1 to ``max_rows`` rows, no parameters, no
    outputs named. Those values are accepted by :func:`input_batch` too and give the
    same array; anything else (including every error) takes the general path.
    """
    try:
        request = _CANONICAL_DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    if len(request.inputs) != 1:
        return None
    tensor = request.inputs[0]
    shape = tensor.shape
    if tensor.name != INPUT_NAME or tensor.datatype != "FP32" or shape[1:] not in _PIXEL_SHAPES:
        return None
    n_rows = shape[0]
    if not 1 <= n_rows <= max_rows or len(tensor.data) != n_rows * N_FEATURES:
        return None
    return request, np.array(tensor.data, dtype=np.float32).reshape(n_rows, N_FEATURES)


_PIXEL_SHAPES = ([N_FEATURES], [GRID, GRID])


async def answer_canonical(
    state: ServiceState,
    predict: Callable[[npt.NDArray[np.float32]], Awaitable[Prediction]],
    request: CanonicalInferRequest,
    X: npt.NDArray[np.float32],
) -> bytes:
    """The JSON answer to a canonical request: the bytes :func:`answer_infer` gives."""
    bundle = state.bundle
    if bundle is None:  # pragma: no cover - callers check readiness
        raise OipError(503, "model_not_ready", "model not ready")
    labels, probabilities = await predict(X)
    return _ENCODER.encode(
        InferResponse(
            model_name=bundle.card.name,
            model_version=bundle.version,
            id=request.id,
            outputs=[
                ResponseOutput(
                    name=LABEL_OUTPUT,
                    shape=list(labels.shape),
                    datatype=_OUTPUT_DATATYPES[LABEL_OUTPUT],
                    data=labels.tolist(),
                ),
                ResponseOutput(
                    name=PROBABILITIES_OUTPUT,
                    shape=list(probabilities.shape),
                    datatype=_OUTPUT_DATATYPES[PROBABILITIES_OUTPUT],
                    data=probabilities.ravel().tolist(),
                ),
            ],
        )
    )


INFER_TEMPLATE = f"{OIP_PREFIX}/models/{{name}}/infer"
VERSION_INFER_TEMPLATE = f"{OIP_PREFIX}/models/{{name}}/versions/{{version}}/infer"


def fast_infer_routes(
    state: ServiceState, predict: Callable[[npt.NDArray[np.float32]], Awaitable[Prediction]]
) -> Callable[[str], tuple[str, RawRoute] | None]:
    """Resolve a path to the fast-dispatch infer route of the served model (or None).

    Only JSON-only requests are answered there; binary tensors, errors and anything
    else fall back to the Litestar route (see :class:`serving.fastpath.FastPath`).
    """
    paths: dict[str, tuple[str, RawRoute]] = {}
    served: list[str] = []

    async def answer(scope: HTTPScope, body: bytes) -> RawAnswer | None:
        for header_name, _ in scope["headers"]:
            if header_name == _HEADER_LENGTH_BYTES:
                return None
        canonical = canonical_batch(body, state.settings.max_rows)
        if canonical is not None:
            return await answer_canonical(state, predict, *canonical), _JSON_BYTES, []
        parsed = decode_request(body)
        payload, headers, media_type = await answer_infer(state, predict, parsed, b"")
        extra = [(key.lower().encode(), value.encode()) for key, value in headers.items()]
        return payload, media_type.encode(), extra

    def resolve(path: str) -> tuple[str, RawRoute] | None:
        bundle = state.bundle
        if bundle is None:
            return None
        if served != [bundle.version]:
            name = bundle.card.name
            paths.clear()
            paths[f"{OIP_PREFIX}/models/{name}/infer"] = (INFER_TEMPLATE, answer)
            version_path = f"{OIP_PREFIX}/models/{name}/versions/{bundle.version}/infer"
            paths[version_path] = (VERSION_INFER_TEMPLATE, answer)
            served[:] = [bundle.version]
        return paths.get(path)

    return resolve


def oip_route_handlers(
    state: ServiceState,
    predict: Callable[[npt.NDArray[np.float32]], Awaitable[Prediction]],
    read_body: Callable[[Request[Any, Any, Any], int], Awaitable[bytes]],
) -> list[HTTPRouteHandler]:
    """The ``/v2`` handlers over the service state.

    ``predict`` runs the model on every validated batch (and records its rows, drift
    window and class counters); ``read_body(request, limit)``
    is the byte-limited body reader ``/predict`` uses.
    """

    def check_model(name: str, version: str | None) -> None:
        bundle = state.bundle
        if bundle is None:
            failure = state.failure
            reason = str(failure) if failure else "model is loading"
            raise OipError(503, "model_not_ready", f"model not ready: {reason}")
        if name != bundle.card.name:
            raise OipError(404, "unknown_model", f"unknown model '{name}'")
        if version is not None and version != bundle.version:
            raise OipError(
                404,
                "unknown_version",
                f"unknown version '{version}' of model '{name}'; served: {bundle.version}",
            )

    def metadata(name: str, version: str | None) -> ModelMetadata:
        check_model(name, version)
        bundle = state.bundle
        if bundle is None:  # pragma: no cover - checked in check_model
            raise OipError(503, "model_not_ready", "model not ready")
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

    def model_ready_status(name: str, version: str | None) -> Response[bytes]:
        try:
            check_model(name, version)
        except OipError as exc:
            return _status(400 if exc.status == 503 else exc.status)
        return _status(200)

    async def infer(
        request: Request[Any, Any, Any], name: str, version: str | None
    ) -> ASGIResponse:
        check_model(name, version)
        body = await read_body(request, state.settings.max_body_bytes)
        header, binary = split_body(body, request.headers.get(HEADER_LENGTH))
        parsed = decode_request(header)
        payload, headers, media_type = await answer_infer(state, predict, parsed, binary)
        return ASGIResponse(body=payload, media_type=media_type, headers=headers)

    tags = ["Open Inference Protocol (v2)"]
    errors = {400: _OIP_ERROR, 404: _OIP_ERROR, 503: _OIP_ERROR}
    infer_errors = {
        200: ResponseSpec(
            InferResponse,
            description="Inference response JSON object; application/octet-stream (JSON header "
            "then binary tensors, Inference-Header-Content-Length) when binary outputs are asked",
            generate_examples=False,
        ),
        **errors,
        408: _OIP_ERROR,
        413: _OIP_ERROR,
    }
    ready_codes = {
        400: _status_only("The locked model is not verified and warm"),
        404: _status_only("Unknown model name or version"),
    }

    @get(OIP_PREFIX, sync_to_thread=False, summary="OIP server metadata", tags=tags)
    def server_metadata() -> ServerMetadata:
        return ServerMetadata(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    @get(
        f"{OIP_PREFIX}/health/live",
        sync_to_thread=False,
        summary="OIP server live (status code only)",
        tags=tags,
        media_type=MediaType.TEXT,
    )
    def server_live() -> Response[bytes]:
        return _status(200)

    @get(
        f"{OIP_PREFIX}/health/ready",
        sync_to_thread=False,
        summary="OIP server ready: 200, or 400 while the locked model is not verified",
        tags=tags,
        media_type=MediaType.TEXT,
        responses={400: ready_codes[400]},
    )
    def server_ready() -> Response[bytes]:
        return _status(200 if state.bundle is not None else 400)

    @get(
        f"{OIP_PREFIX}/models/{{name:str}}",
        sync_to_thread=False,
        summary="OIP model metadata",
        tags=tags,
        responses=errors,
    )
    def model_metadata(name: FromPath[str]) -> ModelMetadata:
        return metadata(name, None)

    @get(
        f"{OIP_PREFIX}/models/{{name:str}}/versions/{{version:str}}",
        sync_to_thread=False,
        summary="OIP model metadata (a version)",
        tags=tags,
        responses=errors,
    )
    def model_version_metadata(name: FromPath[str], version: FromPath[str]) -> ModelMetadata:
        return metadata(name, version)

    @get(
        f"{OIP_PREFIX}/models/{{name:str}}/ready",
        sync_to_thread=False,
        summary="OIP model ready (status code only: 200, 400 not ready, 404 unknown)",
        tags=tags,
        media_type=MediaType.TEXT,
        responses=ready_codes,
    )
    def model_ready(name: FromPath[str]) -> Response[bytes]:
        return model_ready_status(name, None)

    @get(
        f"{OIP_PREFIX}/models/{{name:str}}/versions/{{version:str}}/ready",
        sync_to_thread=False,
        summary="OIP model ready (a version)",
        tags=tags,
        media_type=MediaType.TEXT,
        responses=ready_codes,
    )
    def model_version_ready(name: FromPath[str], version: FromPath[str]) -> Response[bytes]:
        return model_ready_status(name, version)

    infer_description = (
        "Inference request JSON object (KServe v2): one input 'pixels' with shape [n, 64] or "
        "[n, 8, 8], datatype FP32/FP64/INT*/UINT*, data flat or nested (values 0..16), or binary "
        "tensor data after an Inference-Header-Content-Length JSON header."
    )

    @post(
        f"{OIP_PREFIX}/models/{{name:str}}/infer",
        status_code=200,
        summary="OIP inference",
        description=infer_description,
        tags=tags,
        responses=infer_errors,
        operation_class=InferOperation,
    )
    async def model_infer(request: Request[Any, Any, Any], name: FromPath[str]) -> ASGIResponse:
        return await infer(request, name, None)

    @post(
        f"{OIP_PREFIX}/models/{{name:str}}/versions/{{version:str}}/infer",
        status_code=200,
        summary="OIP inference (a version)",
        description=infer_description,
        tags=tags,
        responses=infer_errors,
        operation_class=InferOperation,
    )
    async def model_version_infer(
        request: Request[Any, Any, Any], name: FromPath[str], version: FromPath[str]
    ) -> ASGIResponse:
        return await infer(request, name, version)

    return [
        server_metadata,
        server_live,
        server_ready,
        model_metadata,
        model_version_metadata,
        model_ready,
        model_version_ready,
        model_infer,
        model_version_infer,
    ]


_ROUTE_SUFFIXES = ("/ready", "/infer")


def route_guess(path: str) -> str:
    """Bounded route-template label of a ``/v2`` path before routing (in-progress gauge)."""
    if path in (OIP_PREFIX, f"{OIP_PREFIX}/health/live", f"{OIP_PREFIX}/health/ready"):
        return path
    parts = path.split("/")
    if len(parts) < 4 or parts[2] != "models":
        return "unmatched"
    template = f"{OIP_PREFIX}/models/{{name}}"
    rest = parts[4:]
    if rest[:1] == ["versions"] and len(rest) >= 2:
        template += "/versions/{version}"
        rest = rest[2:]
    if not rest:
        return template
    if len(rest) == 1 and f"/{rest[0]}" in _ROUTE_SUFFIXES:
        return f"{template}/{rest[0]}"
    return "unmatched"

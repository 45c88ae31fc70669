"""Open Inference Protocol (KServe v2 / Triton / MLServer) wire format: structs and encoding.

Health, metadata and inference objects as the KServe "predict-api/v2" REST spec describes
them, plus the binary tensor data extension (``Inference-Header-Content-Length``) that
``tritonclient.http`` uses by default. Errors are ``{"error": "..."}``. No web framework
here: decoding is :mod:`serving.protocol.oip_decode`, the routes :mod:`serving.routes.oip`.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from serving.inference.inputs import ClientError
from serving.schemas import N_FEATURES

OIP_PREFIX = "/v2"
SERVER_NAME = "digits-inference"
SERVER_VERSION = "1.0.0"
EXTENSIONS = ["binary_tensor_data"]
PLATFORM = "onnxruntime_onnx"
INPUT_NAME = "pixels"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
OOD_OUTPUT = "ood"
OOD_SCORE_OUTPUT = "ood_score"
HEADER_LENGTH = "inference-header-content-length"
OCTET_STREAM = "application/octet-stream"
JSON = "application/json"
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
_ENCODER = msgspec.json.Encoder()


# A shape's sizes are integers as JSON Schema means them, so 3.0 is 3 (the OpenAPI document
# says "integer"); they decode as floats and the decoder keeps whole numbers only.
Dimension = Annotated[float, msgspec.Meta(ge=0)]


class OipError(ClientError):
    """A 4xx answered as ``{"error": message}``; ``reason`` is a bounded metrics label."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(status, reason, message)


class OipErrorBody(msgspec.Struct):
    error: str


class RequestInput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    shape: list[Dimension]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: absent


class RequestOutput(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    parameters: dict[str, Any] | None = None


class FlatRequestInput(msgspec.Struct, forbid_unknown_fields=True):
    """The common case decoded in one pass: flat JSON numbers (no binary data)."""

    name: str
    shape: list[Dimension]
    datatype: str
    data: list[float]
    parameters: dict[str, Any] | None = None


Input = TypeVar("Input", RequestInput, FlatRequestInput)


class GenericInferRequest(msgspec.Struct, Generic[Input], forbid_unknown_fields=True):
    """An inference request; its inputs are general (:class:`RequestInput`) or flat
    (:class:`FlatRequestInput`), the only difference between the two decoders' requests."""

    inputs: list[Input]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[RequestOutput] | None = None


InferRequest = GenericInferRequest[RequestInput]
FlatInferRequest = GenericInferRequest[FlatRequestInput]
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


MODEL_INPUTS = [TensorMetadata(name=INPUT_NAME, datatype="FP32", shape=[-1, N_FEATURES])]
MODEL_OUTPUTS = [
    TensorMetadata(name=LABEL_OUTPUT, datatype="INT64", shape=[-1]),
    TensorMetadata(name=PROBABILITIES_OUTPUT, datatype="FP32", shape=[-1, 10]),
    # Per row: flagged by the out-of-distribution detector, and its score (> 1 is flagged).
    TensorMetadata(name=OOD_OUTPUT, datatype="BOOL", shape=[-1]),
    TensorMetadata(name=OOD_SCORE_OUTPUT, datatype="FP32", shape=[-1]),
]
OUTPUT_DATATYPES = {output.name: output.datatype for output in MODEL_OUTPUTS}


def error_body(message: str) -> bytes:
    """The spec's error object, ``{"error": message}``."""
    return _ENCODER.encode(OipErrorBody(error=message))


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
        return header, {}, JSON
    return (
        b"".join([header, *chunks]),
        {"Inference-Header-Content-Length": str(len(header))},
        OCTET_STREAM,
    )

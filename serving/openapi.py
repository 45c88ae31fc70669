"""The OpenAPI document: config, request-body operations and the documented answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import MediaType, Router
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)

from serving.access import public
from serving.protocol.oip import (
    INPUT_DATATYPES,
    INPUT_NAME,
    MODEL_OUTPUTS,
    OCTET_STREAM,
    InferResponse,
    OipErrorBody,
)
from serving.schemas import (
    EXAMPLE_DIGIT,
    EXAMPLE_FLAT,
    N_FEATURES,
    ErrorResponse,
    samples_request_schema,
)

STATIC_PATH = "/static/swagger-ui"


BEARER_SCHEME = "bearer"
BEARER: list[dict[str, list[str]]] = [{BEARER_SCHEME: []}]


def openapi_config(docs: bool = True) -> OpenAPIConfig | None:
    """Swagger UI at ``/docs`` from self-hosted assets; the schema at ``/docs/openapi.json``.

    Public (the "Authorize" button takes an API key or token); None with ``DIGITS_DOCS=off``.
    """
    if not docs:
        return None
    return OpenAPIConfig(
        title="Digits inference service",
        version="1.0.0",
        description="Serves only the model version that dvc.lock pins (ONNX Runtime).",
        openapi_router=Router(
            path="/docs", route_handlers=[], opt=public(), include_in_schema=False
        ),
        components=Components(
            security_schemes={
                BEARER_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key (python -m serving.keys add) or a JWT, by "
                    "DIGITS_AUTH; scopes predict, explain, read",
                )
            }
        ),
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


def samples_operation(max_rows: int) -> type[Operation]:
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


def error_spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        ErrorResponse, description=description, generate_examples=False, examples=[_ERROR_EXAMPLE]
    )


def ok_spec(data: type[Any], description: str) -> ResponseSpec:
    return ResponseSpec(data, description=description, generate_examples=False)


ERROR_RESPONSES = {
    400: error_spec("Malformed JSON, wrong shape, wrong type or value (location says where)"),
    408: error_spec("The body did not arrive within DIGITS_BODY_READ_TIMEOUT seconds"),
    413: error_spec("Body over the byte limit, or more samples than the row limit"),
    415: error_spec("Content-Type is not application/json"),
    422: error_spec(
        "DIGITS_OOD_POLICY=reject and at least one row is out of distribution "
        "(reason out_of_distribution; message names the rows)"
    ),
    503: error_spec("The locked model is not verified and warm; message says why"),
}


OIP_ERROR = ResponseSpec(OipErrorBody, description='{"error": "..."}', generate_examples=False)
AUTH_RESPONSES = {
    401: error_spec(
        "Missing or invalid credential (WWW-Authenticate: Bearer); the same answer for an "
        "unknown, revoked or wrong key"
    ),
    403: error_spec("The credential lacks the scope this route needs"),
    429: error_spec("Rate limit exceeded; Retry-After gives the seconds to wait"),
}
OIP_AUTH_RESPONSES = dict.fromkeys((401, 403, 429), OIP_ERROR)


def status_only(description: str) -> ResponseSpec:
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
            "name": Schema(type=OpenAPIType.STRING, enum=[INPUT_NAME]),
            "shape": Schema(
                type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.INTEGER, minimum=0)
            ),
            "datatype": Schema(type=OpenAPIType.STRING, enum=list(INPUT_DATATYPES)),
            "parameters": _nullable(_ANY_OBJECT),
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
        properties={
            "name": Schema(type=OpenAPIType.STRING, enum=[out.name for out in MODEL_OUTPUTS]),
            "parameters": _nullable(_ANY_OBJECT),
        },
    )
    # What the decoder accepts: exactly one input tensor (named 'pixels'); null for the
    # optional members means the same as leaving them out (every output, no id).
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["inputs"],
        additional_properties=False,
        properties={
            "inputs": Schema(type=OpenAPIType.ARRAY, items=tensor, min_items=1, max_items=1),
            "id": Schema(type=[OpenAPIType.STRING, OpenAPIType.NULL]),
            "parameters": _nullable(_ANY_OBJECT),
            "outputs": Schema(
                type=[OpenAPIType.ARRAY, OpenAPIType.NULL],
                items=output,
                description="null or absent: every output",
            ),
        },
    )


def _nullable(schema: Schema) -> Schema:
    return Schema(one_of=[schema, Schema(type=OpenAPIType.NULL)])


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


OIP_TAGS = ["Open Inference Protocol (v2)"]
OIP_ERRORS = {400: OIP_ERROR, 404: OIP_ERROR, 503: OIP_ERROR}
OIP_READY_CODES = {
    400: status_only("The locked model is not verified and warm"),
    404: status_only("Unknown model name or version"),
}
INFER_DESCRIPTION = (
    "Inference request JSON object (KServe v2): one input 'pixels' with shape [n, 64] or "
    "[n, 8, 8], datatype FP32/FP64/INT*/UINT*, data flat or nested (values 0..16), or binary "
    "tensor data after an Inference-Header-Content-Length JSON header."
)
OIP_INFER_RESPONSES = {
    200: ResponseSpec(
        InferResponse,
        description="Inference response JSON object; application/octet-stream (JSON header "
        "then binary tensors, Inference-Header-Content-Length) when binary outputs are asked",
        generate_examples=False,
    ),
    **OIP_ERRORS,
    408: OIP_ERROR,
    413: OIP_ERROR,
    422: OIP_ERROR,
}

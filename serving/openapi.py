"""The OpenAPI document: config, request-body operations and the documented answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
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
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from serving.access import SCOPES, public
from serving.http.docs_page import docs_security_headers
from serving.protocol.oip import INPUT_NAME, OCTET_STREAM, InferResponse, OipErrorBody
from serving.protocol.oip_schema import infer_request_schema
from serving.schemas import (
    EXAMPLE_DIGIT,
    EXAMPLE_FLAT,
    GRID,
    N_FEATURES,
    ErrorResponse,
    samples_request_schema,
)
from serving.settings import Settings

STATIC_PATH = "/static/swagger-ui"


BEARER_SCHEME = "bearer"
_CREDENTIAL = {
    "api-key": "An API key (python -m serving.access.keys add)",
    "jwt": "A JWT signed by a key of DIGITS_JWT_JWKS, for DIGITS_JWT_ISSUER and "
    "DIGITS_JWT_AUDIENCE",
}


def security_schemes(settings: Settings) -> dict[str, SecurityScheme | Reference] | None:
    """The ``bearer`` scheme of ``DIGITS_AUTH``; None with ``none`` (nothing asks for one).

    Which operations require it follows from the route table (:mod:`serving.openapi_access`).
    """
    mode = settings.auth_mode
    if mode == "none":
        return None
    return {
        BEARER_SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT" if mode == "jwt" else None,
            description=f"{_CREDENTIAL[mode]} (DIGITS_AUTH={mode}), holding the scope the "
            f"operation names: {', '.join(SCOPES)}",
        )
    }


def openapi_config(settings: Settings) -> OpenAPIConfig | None:
    """Swagger UI at ``/docs`` from self-hosted assets; the schema at ``/docs/openapi.json``.

    Public; None when ``DIGITS_DOCS`` is off (its default with ``DIGITS_AUTH`` on). The
    document describes the running access configuration: with ``DIGITS_AUTH`` other than
    ``none`` it has the bearer scheme (the "Authorize" button takes an API key or token),
    else no security at all.
    """
    if not settings.docs_on:
        return None
    return OpenAPIConfig(
        title="Digits inference service",
        version="1.0.0",
        description="Serves only the model version that dvc.lock pins (ONNX Runtime).",
        openapi_router=Router(
            path="/docs",
            route_handlers=[],
            opt=public(),
            include_in_schema=False,
            middleware=[docs_security_headers],
        ),
        components=Components(security_schemes=security_schemes(settings)),
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


# JSON Schema keyword -> Litestar ``Schema`` field, and which keywords hold subschemas.
_SCHEMA_FIELDS = {field.metadata.get("alias", field.name): field.name for field in fields(Schema)}
_SUBSCHEMA = frozenset({"items", "not", "additionalProperties"})
_SUBSCHEMA_LISTS = frozenset({"oneOf", "anyOf", "allOf", "prefixItems"})


def _schema_from_dict(spec: dict[str, Any]) -> Schema:
    """Turn a JSON-schema dict into Litestar's OpenAPI ``Schema`` object (KeyError: unknown)."""
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "type":
            value = (
                [OpenAPIType(v) for v in value] if isinstance(value, list) else OpenAPIType(value)
            )
        elif key in _SUBSCHEMA and isinstance(value, dict):
            value = _schema_from_dict(value)
        elif key in _SUBSCHEMA_LISTS:
            value = [_schema_from_dict(item) for item in value]
        elif key == "properties":
            value = {name: _schema_from_dict(sub) for name, sub in value.items()}
        kwargs[_SCHEMA_FIELDS[key]] = value
    return Schema(**kwargs)


def json_body(
    description: str, schema: dict[str, Any], examples: Mapping[str, Example | Reference]
) -> RequestBody:
    """A required JSON request body with its schema and named examples."""
    return RequestBody(
        required=True,
        description=description,
        content={
            MediaType.JSON.value: OpenAPIMediaType(
                schema=_schema_from_dict(schema), examples=dict(examples)
            )
        },
    )


def samples_operation(max_rows: int) -> type[Operation]:
    """An Operation class whose request body documents both sample shapes and the limits."""
    body = json_body(
        "Samples to classify: flat 64-pixel lists or 8x8 nested lists, values 0..16.",
        samples_request_schema(max_rows),
        {
            "flat": Example(summary="One flat 64-pixel sample", value={"samples": [EXAMPLE_FLAT]}),
            "grid": Example(summary="One 8x8 nested sample", value={"samples": [EXAMPLE_DIGIT]}),
        },
    )

    return body_operation(body)


def body_operation(body: RequestBody) -> type[Operation]:
    """An Operation class that documents ``body`` as its request body."""

    @dataclass
    class BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return BodyOperation


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


def status_only(description: str) -> ResponseSpec:
    """A status-code-only answer (empty text body), as the OIP health endpoints give."""
    return ResponseSpec(
        str, description=description, media_type=MediaType.TEXT, generate_examples=False
    )


def infer_operation(max_rows: int) -> type[Operation]:
    """An Operation class documenting the infer request body and the binary answer."""
    flat = {"name": INPUT_NAME, "shape": [1, N_FEATURES], "datatype": "FP32", "data": EXAMPLE_FLAT}
    grid = {
        "name": INPUT_NAME,
        "shape": [1, GRID, GRID],
        "datatype": "UINT8",
        "data": [EXAMPLE_DIGIT],
    }
    body = json_body(
        "Inference request JSON object (optionally followed by binary tensors)",
        infer_request_schema(max_rows),
        {
            "flat": Example(summary="One flat FP32 sample", value={"inputs": [flat]}),
            "grid": Example(
                summary="One 8x8 UINT8 sample, nested, asking for the label only",
                value={"inputs": [grid], "outputs": [{"name": "label"}]},
            ),
        },
    )

    @dataclass
    class InferOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = body
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse) and ok.content is not None:
                ok.content[OCTET_STREAM] = OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=None),
                )

    return InferOperation


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

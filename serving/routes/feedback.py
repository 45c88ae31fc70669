"""``POST /feedback``: ground truth for a recorded decision (:mod:`serving.feedback.service`).

In the route table only with ``DIGITS_FEEDBACK=on``; it needs the ``feedback`` scope, and
counts against ``DIGITS_RATE_LIMIT`` like every other non-public route.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Example

from serving.access import FEEDBACK, needs
from serving.access.auth import CLIENT, Client
from serving.feedback.service import MAX_LABELS, FeedbackAnswer
from serving.http.body import read_body, require_json
from serving.monitoring.logs import request_id_var
from serving.openapi import body_operation, error_spec, json_body, ok_spec
from serving.state import service_of

AnyRequest = Request[Any, Any, Any]
_ENCODER = msgspec.json.Encoder()
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["request_id", "labels"],
    "properties": {
        "request_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "The X-Request-ID of the decision's answer (its decision record's "
            "request_id)",
        },
        "labels": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_LABELS,
            "items": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "null"}]},
            "contains": {"type": "integer"},
            "description": "One true label (a class of the model: 0..9, the digits) per row of "
            "the decision, in the order of its request; null where the truth is unknown. At "
            "least one label; exactly as many entries as the decision has rows (422 otherwise)",
        },
    },
}


async def feedback(request: AnyRequest) -> Response[bytes]:
    service = service_of(request.app)
    taker = service.feedback
    if taker is None:  # pragma: no cover - the route is only in the table with feedback on
        raise service.not_ready()
    require_json(request.scope)
    classes = service.ready_bundle().card.classes
    body = await read_body(request.receive)
    client: Client | None = request.scope.get(CLIENT)  # type: ignore[assignment]
    answer = await taker.submit(
        body,
        classes,
        request_id_var.get() or "unknown",
        client.id if client is not None else None,
        time.time(),
    )
    return Response(_ENCODER.encode(answer), status_code=202, media_type=MediaType.JSON)


def feedback_routes() -> list[HTTPRouteHandler]:
    body = json_body(
        "True labels for the rows of a recorded decision, by its request id.",
        REQUEST_SCHEMA,
        {
            "two rows": Example(
                summary="The first row was a 7; the second row's truth is unknown",
                value={"request_id": "6854c1012236d5355de2000000000000", "labels": [7, None]},
            )
        },
    )
    return [
        post(
            "/feedback",
            status_code=202,
            summary="Ground truth for a recorded decision: one label per row, by request id",
            operation_class=body_operation(body),
            responses={
                202: ok_spec(FeedbackAnswer, "Accepted: rows matched, recorded, running accuracy"),
                400: error_spec("Malformed JSON, wrong shape or type (location says where)"),
                404: error_spec("No decision with that request id is known (with Redis)"),
                408: error_spec("The body did not arrive within DIGITS_BODY_READ_TIMEOUT seconds"),
                409: error_spec("A row already has a different label (feedback_exists)"),
                413: error_spec("Body over the byte limit"),
                415: error_spec("Content-Type is not application/json"),
                422: error_spec(
                    "A label that is not a class of the model, no label at all, or a label "
                    "count that is not the decision's row count"
                ),
                503: error_spec(
                    "Not ready, the feedback index (Redis) did not answer, or the record could "
                    "not be written: send it again"
                ),
            },
            opt=needs(FEEDBACK),
        )(feedback)
    ]

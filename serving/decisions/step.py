"""The decision-record chain step: one record per answered predict, explain or infer request.

The routes that decide are the ones that need the ``predict`` or ``explain`` scope
(:mod:`serving.access`), so a new deciding route is recorded by declaring its scope. The
record is queued before the last byte of the answer is sent: a client that has its
answer has its record queued, and the graceful shutdown encodes and writes the queue
(:meth:`DecisionWriter.close`). The writer packs records 64 rows at a time; their JSON
lines are made by the worker's encoder process, off the request path.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable
from pathlib import Path

from litestar import Litestar
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from serving.access import EXPLAIN, PREDICT
from serving.auth import CLIENT, Client
from serving.decisions.outcome import Outcome, outcome_var
from serving.decisions.writer import DecisionWriter
from serving.dispatch import ROUTE, Route
from serving.logs import request_id_var
from serving.settings import Settings
from serving.state import service_of

log = logging.getLogger("serving")
DECIDING = frozenset({PREDICT, EXPLAIN})
REGISTRY_FILE = "models/registry.json"


def registry_tag(settings: Settings, version: str) -> str | None:
    """The model registry's tag for ``version`` (``models/registry.json``), if any."""
    path = settings.project_dir / REGISTRY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    entry = (
        data.get("versions", {}).get(version) if isinstance(data.get("versions"), dict) else None
    )
    tag = entry.get("tag") if isinstance(entry, dict) else data.get("tag")
    return tag if isinstance(tag, str) else None


def record_decisions(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: queue a decision record for every 2xx answer of a deciding route."""
    service = service_of(app)
    settings = service.settings
    if settings.decision_log_dir is None:
        return inner
    writer = DecisionWriter(
        Path(settings.decision_log_dir),
        service.metrics.access,
        settings.decision_flush_seconds,
        settings.decision_log_max_bytes,
        settings.decision_log_inputs,
    )
    service.closers.append(writer.close)
    tags: dict[str, str | None] = {}

    def step(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        if route is None or route.access not in DECIDING:
            return inner(scope, receive, send)
        started_wall, started = time.time(), time.perf_counter()
        slot = Outcome()
        outcome_var.set(slot)  # in this request's task context, discarded with it
        status = 0
        recorded = False

        async def recording_send(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
            elif (
                not recorded
                and not message.get("more_body", False)
                and 200 <= status < 300
                and slot.labels is not None
                and service.bundle is not None
            ):
                version = service.bundle.version
                if version not in tags:
                    tags[version] = registry_tag(settings, version)
                client: Client | None = scope.get(CLIENT)  # type: ignore[assignment]
                writer.submit(
                    (
                        request_id_var.get() or "unknown",
                        started_wall,
                        client.id if client is not None else None,
                        route.template,
                        scope["method"],  # type: ignore[typeddict-item]
                        status,
                        version,
                        tags[version],
                        time.perf_counter() - started,
                        slot,
                    )
                )
                recorded = True
            await send(message)

        return inner(scope, receive, recording_send)

    return step

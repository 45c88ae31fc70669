"""The decision-record chain step: one record per 2xx answer of a deciding route.

A route decides when its handler says so, next to its scope (``needs(PREDICT,
decides=True)``, :mod:`serving.access`); the route table is the one place to look. The
handler returns the outcome with its answer (:class:`serving.decisions.outcome.DecidedResponse`)
and the fast dispatch puts it in the request's scope. The step wraps nothing: it sets a
:class:`Decision` as the observe step's answer hook (:data:`serving.http.observe.ANSWERED`), so
the record is queued by the observe step, before the last byte of the answer is sent: a
client that has its answer has its record queued, and the graceful shutdown encodes and
writes the queue (:meth:`DecisionWriter.close`). The writer packs records 64 rows at a
time; their JSON lines are made by the worker's encoder process, off the request path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from pathlib import Path

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from serving.access.auth import CLIENT, Client
from serving.decisions.decided import Decided
from serving.decisions.outcome import OUTCOME
from serving.decisions.packing import Pending
from serving.decisions.record import RecordModel, RecordRegistry
from serving.decisions.writer import DecisionWriter
from serving.feedback.index import Decided as Indexed
from serving.feedback.service import build_feedback
from serving.http.dispatch import ROUTE, Route
from serving.http.observe import ANSWERED
from serving.lineage import VerifiedBundle
from serving.lineage.registry import RegistryInfo
from serving.monitoring.logs import client_request_id_var, request_id_var
from serving.state import ServiceState, service_of


def record_model(bundle: VerifiedBundle, registry: RegistryInfo | None) -> RecordModel:
    """The records' model: its version, and the registry version, stage and commit
    ``/model`` reports (None for an unregistered working copy)."""
    if registry is None:
        return RecordModel(bundle.version, None)
    return RecordModel(
        bundle.version, RecordRegistry(registry.version, registry.stage, registry.commit)
    )


class Recorder:
    """Queues the record of an answered deciding request (the writer; the registry entry of
    the loaded model, made once per model, not per request)."""

    def __init__(self, service: ServiceState, writer: DecisionWriter) -> None:
        self.service = service
        self.writer = writer
        # DIGITS_FEEDBACK=on: every recorded decision is indexed for POST /feedback.
        self.index = service.feedback.index if service.feedback is not None else None
        self.bundle: VerifiedBundle | None = None
        self.model: RecordModel | None = None

    def record(self, decision: Decision, outcome: Decided, status: int, seconds: float) -> None:
        bundle = self.service.bundle
        if bundle is None:
            return
        if bundle is not self.bundle or self.model is None:
            self.bundle, self.model = bundle, record_model(bundle, self.service.registry)
        self.writer.submit(
            Pending(
                request_id=decision.request_id,
                client_request_id=decision.client_request_id,
                started=decision.started,
                client_id=decision.client_id,
                route=decision.route,
                method=decision.method,
                status=status,
                model=self.model,
                seconds=seconds,
                outcome=outcome,
            )
        )
        if self.index is not None:
            self.index.add(
                decision.request_id,
                Indexed(
                    bundle.version, tuple(outcome.labels.tolist()), tuple(outcome.ood.tolist())
                ),
            )


class Decision:
    """One deciding request's answer hook (:class:`serving.http.observe.AnswerHook`): a 2xx
    answer whose handler returned an outcome is recorded as its last body message is sent."""

    __slots__ = (
        "client_id",
        "client_request_id",
        "method",
        "recorder",
        "request_id",
        "route",
        "scope",
        "started",
    )

    def __init__(self, recorder: Recorder, scope: Scope, route: str) -> None:
        self.recorder, self.route, self.started, self.scope = recorder, route, time.time(), scope
        self.method: str = scope["method"]  # type: ignore[typeddict-item]
        self.request_id = request_id_var.get() or "unknown"
        self.client_request_id = client_request_id_var.get()
        client: Client | None = scope.get(CLIENT)  # type: ignore[assignment]
        self.client_id = client.id if client is not None else None

    def answered(self, status: int, seconds: float) -> None:
        outcome: Decided | None = self.scope.get(OUTCOME)  # type: ignore[assignment]
        if 200 <= status < 300 and outcome is not None:
            self.recorder.record(self, outcome, status, seconds)


def record_decisions(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: a decision record for every 2xx answer of a deciding route.

    The record's latency is the request's duration as the observe step measures it (the
    access log's and the latency histogram's), up to its last body message."""
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
        hash_key=settings.decision_hash_key_bytes,
    )
    service.closers.append(writer.close)
    if settings.feedback == "on":
        service.feedback = build_feedback(settings, service.metrics.feedback)
        service.closers.append(service.feedback.close)
    recorder = Recorder(service, writer)

    def step(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        if route is not None and route.decides:
            scope[ANSWERED] = Decision(recorder, scope, route.template)  # type: ignore[literal-required]
        return inner(scope, receive, send)

    return step

"""The one ordered chain of cross-cutting steps every HTTP request passes, whatever answers it.

A step is ``step(inner, app) -> ASGI app``: it wraps the rest of the chain once, when the
app is composed. The chain ends in :func:`serving.http.dispatch.dispatcher` (a FAST handler, or
Litestar for everything else: other routes, 404, 405, the docs, the demo page, static
files). Order, outermost first:

1. ``resolve_route``: the route template (metrics label, later steps) and the handler;
2. ``observe``: request id (log context, ``X-Request-ID``), HTTP metrics, access log, and
   the answer hook a later step sets (``record_decisions``);
3. ``answer_errors``: an exception from any later step or FAST handler becomes its answer;
4. ``authenticate``: the credential, and the scope the route declares (401/403);
5. ``rate_limit``: per client id (or address), stricter for /explain (429);
6. ``record_decisions``: a decision record of every answered prediction or explanation;
7. ``limit_body``: body byte limit (413) and body-read deadline (408);
8. ``serve_head``: HEAD on every GET route, same status and headers, no body.

Authentication, rate limiting and decision records sit after ``answer_errors`` (so their
refusals get the error shape, a request id and metrics) and before ``limit_body`` (so a
refused request is not read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from litestar import Litestar
from litestar.types import ASGIApp

from serving.access.auth import authenticate
from serving.access.ratelimit import rate_limit
from serving.decisions.step import record_decisions
from serving.http.body import limit_body
from serving.http.dispatch import resolve_route, serve_head
from serving.http.errors import answer_errors
from serving.http.observe import observe

Step = Callable[[ASGIApp, Litestar], ASGIApp]
CHAIN: tuple[Step, ...] = (
    resolve_route,
    observe,
    answer_errors,
    authenticate,
    rate_limit,
    record_decisions,
    limit_body,
    serve_head,
)


def compose(app: Litestar, steps: Sequence[Step], end: ASGIApp) -> ASGIApp:
    """``steps[0](steps[1](... end))``: the first step sees the request first."""
    for step in reversed(steps):
        end = step(end, app)
    return end

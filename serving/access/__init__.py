"""Who may call a route: each route handler declares it once, in the route table.

``opt={ACCESS: ...}`` on a handler (or its router) is :data:`PUBLIC` or the scope a
credential must carry. A handler that declares nothing (Litestar's automatic OPTIONS
answers, an unknown path, a method a route does not have) needs a valid credential with
every scope (:data:`AUTHENTICATED`): what is not declared is neither public nor open to
a narrower key.
"""

from __future__ import annotations

from typing import Any, Final

ACCESS: Final = "digits.access"  # opt key
DECIDES: Final = "digits.decides"  # opt key: the route's answers are recorded decisions
PUBLIC: Final = "public"
AUTHENTICATED: Final = "authenticated"  # a valid credential holding every scope
PREDICT: Final = "predict"  # /predict, OIP infer
EXPLAIN: Final = "explain"  # /explain
READ: Final = "read"  # /model, /drift, OIP metadata (and /metrics with DIGITS_METRICS_AUTH)
# /feedback: ground truth for past decisions; a labelling team is not a prediction client.
FEEDBACK: Final = "feedback"
SCOPES: Final = (PREDICT, EXPLAIN, READ, FEEDBACK)


def public() -> dict[str, Any]:
    """Handler ``opt`` of a public route."""
    return {ACCESS: PUBLIC}


def needs(scope: str, *, decides: bool = False) -> dict[str, Any]:
    """Handler ``opt`` of a route that needs ``scope``; ``decides``: its 2xx answers are
    decisions, each recorded (:mod:`serving.decisions.step`) from the outcome its handler
    returns (:class:`serving.decisions.outcome.DecidedResponse`)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    return {ACCESS: scope, DECIDES: True} if decides else {ACCESS: scope}


def route_decides(handler: Any) -> bool:
    """Whether the resolved route handler is declared to decide (``needs(..., decides=True)``)."""
    opt = getattr(handler, "opt", None) or {}
    return opt.get(DECIDES) is True


def required_access(handler: Any) -> str:
    """What the resolved route handler needs (:data:`AUTHENTICATED` when it declares nothing)."""
    if handler is None:
        return AUTHENTICATED
    opt = getattr(handler, "opt", None) or {}
    value = opt.get(ACCESS)
    return value if isinstance(value, str) else AUTHENTICATED

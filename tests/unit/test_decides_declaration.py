"""Which routes decide is declared on the route, next to its scope, and a deciding answer
carries its outcome explicitly: a route cannot be silently left out of the decision record."""

from __future__ import annotations

import numpy as np
import pytest
from litestar import Litestar, Request, Response, post
from litestar.exceptions import ImproperlyConfiguredException

from serving.access import PREDICT, READ, needs, route_decides
from serving.app import create_app
from serving.decisions.decided import Decided
from serving.decisions.outcome import DecidedResponse
from serving.http.dispatch import FAST, Route, check_fast_handlers, decided_outcome
from serving.settings import Settings

pytestmark = pytest.mark.unit


async def handler(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    return Response(b"{}")


def outcome() -> Decided:
    row = np.zeros((1, 64), np.float32)
    return Decided(row, np.array([1]), np.ones((1, 10), np.float32), np.array([False]), row[0, :1])


def test_the_route_table_declares_the_deciding_routes() -> None:
    app = create_app(Settings(lock_file_path="/nonexistent/dvc.lock"))  # no lifespan: no model
    deciding = sorted(
        route.path
        for route in app.routes
        for candidate in getattr(route, "route_handlers", ())
        if route_decides(candidate)
    )
    assert deciding == [
        "/explain",
        "/predict",
        "/v2/models/{name:str}/infer",
        "/v2/models/{name:str}/versions/{version:str}/infer",
    ]
    # The declaration, not the scope, makes a route decide.
    assert route_decides(post("/x", opt=needs(READ, decides=True))(handler))
    assert not route_decides(post("/y", opt=needs(PREDICT))(handler))


def test_a_deciding_route_outside_the_fast_dispatch_stops_start_up() -> None:
    app = Litestar(route_handlers=[post("/d", opt=needs(PREDICT, decides=True))(handler)])
    with pytest.raises(ImproperlyConfiguredException, match="a deciding route must be"):
        check_fast_handlers(app)
    opt = {FAST: True, **needs(PREDICT, decides=True)}
    fast = post("/d", status_code=200, opt=opt)(handler)
    check_fast_handlers(Litestar(route_handlers=[fast], logging_config=None))


def test_a_deciding_answer_must_carry_its_outcome() -> None:
    route = Route("/d", {}, None, None, False, PREDICT, True)
    decided = outcome()
    assert decided_outcome(route, DecidedResponse(b"{}", decided)) is decided
    assert decided_outcome(route, Response(b"{}", status_code=422)) is None  # decided nothing
    with pytest.raises(ImproperlyConfiguredException, match="without a DecidedResponse"):
        decided_outcome(route, Response(b"{}"))

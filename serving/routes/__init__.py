"""The route table: every path the service answers, written once.

Litestar's router is built from this list; the request chain resolves routes with that
same router (:mod:`serving.http.dispatch`), so no other module spells out the URL space.
"""

from __future__ import annotations

from pathlib import Path

from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from serving.access import public
from serving.openapi import STATIC_PATH
from serving.routes.demo import demo_router
from serving.routes.feedback import feedback_routes
from serving.routes.native import native_routes
from serving.routes.oip import oip_routes
from serving.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"


def route_table(settings: Settings) -> list[ControllerRouterHandler]:
    """Native routes, the OIP ``/v2`` routes, Swagger UI assets and the demo page.

    ``DIGITS_FEEDBACK=on`` adds ``POST /feedback``; ``DIGITS_DOCS`` adds Swagger UI (and the
    OpenAPI document, :func:`serving.app`), ``DIGITS_DEMO`` the demo page: both by default
    only when ``DIGITS_AUTH`` is ``none`` (:attr:`serving.settings.Settings.docs_on`).
    """
    table: list[ControllerRouterHandler] = [
        *native_routes(settings),
        *oip_routes(settings.max_rows),
    ]
    if settings.feedback == "on":
        table.extend(feedback_routes())
    if settings.docs_on:
        table.append(
            create_static_files_router(
                path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False, opt=public()
            )
        )
    if settings.demo_on:
        table.append(demo_router())
    return table

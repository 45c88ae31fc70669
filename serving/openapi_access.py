"""The OpenAPI document follows the running access configuration.

Route modules declare who may call a handler once, in its ``opt`` (:mod:`serving.access`),
and nothing else about access: no ``security``, no 401, 403 or 429 answers. When the app
is built, :func:`document_access` derives those for every registered handler from what
the request chain will do with it: the access :func:`serving.access.required_access`
gives for the handler (the function the chain resolves for :mod:`serving.access.auth` and
:mod:`serving.access.ratelimit`), ``DIGITS_AUTH``, and the rate limit
:func:`serving.access.ratelimit.route_limit` gives for that access.

- ``DIGITS_AUTH=none``: no security scheme, no security requirement, no 401 or 403.
- ``api-key`` or ``jwt``: the ``bearer`` scheme; an operation whose handler is not public
  requires it, naming the scope it needs (a role name, as OpenAPI 3.1 allows for an
  ``http`` scheme), and documents 401 and 403.
- 429 where a rate limit applies (a route that is not public, with a limit set).

Answers on ``/v2`` routes are in the OIP error shape, as :mod:`serving.http.errors` renders them.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.exceptions import ImproperlyConfiguredException
from litestar.openapi import ResponseSpec
from litestar.routes import HTTPRoute

from serving.access import AUTHENTICATED, PUBLIC, SCOPES, required_access
from serving.access.ratelimit import route_limit
from serving.http.errors import is_oip
from serving.openapi import BEARER_SCHEME, error_spec
from serving.protocol.oip import OipErrorBody
from serving.settings import Settings

ACCESS_STATUSES = (401, 403, 429)


def required_scopes(needed: str) -> list[str]:
    """The scopes a credential must hold for a route that needs ``needed`` (not public)."""
    return list(SCOPES) if needed == AUTHENTICATED else [needed]


def _answer(description: str, oip: bool) -> ResponseSpec:
    if oip:
        return ResponseSpec(
            OipErrorBody, description=f'{description} ({{"error": "..."}})', generate_examples=False
        )
    return error_spec(description)


def access_answers(needed: str, settings: Settings, oip: bool) -> dict[int, ResponseSpec]:
    """The 401, 403 and 429 answers a route that needs ``needed`` can give, as configured."""
    answers: dict[int, ResponseSpec] = {}
    if settings.auth_mode != "none" and needed != PUBLIC:
        scopes = " and ".join(f"'{scope}'" for scope in required_scopes(needed))
        answers[401] = _answer(
            "Missing or invalid credential (WWW-Authenticate: Bearer); the same answer for "
            "an unknown, revoked or wrong key or token",
            oip,
        )
        answers[403] = _answer(f"The credential lacks the {scopes} scope this route needs", oip)
    limit = route_limit(needed, settings)
    if limit is not None:
        answers[429] = _answer(
            f"Rate limit of {limit} exceeded; Retry-After gives the seconds to wait", oip
        )
    return answers


def document_access(app: Litestar, settings: Settings) -> None:
    """Set every registered handler's security requirement and access answers from its
    declared access and ``settings`` (before the document is first built, on request).

    Raises ``ImproperlyConfiguredException`` for a handler that writes its own.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        oip = is_oip(route.path)
        for handler in route.route_handlers:
            declared = dict(handler.responses or {})
            if handler.security or declared.keys() & set(ACCESS_STATUSES):
                raise ImproperlyConfiguredException(
                    f"{handler.handler_name}: security and {ACCESS_STATUSES} answers are "
                    "derived from opt (serving.openapi_access), not declared"
                )
            needed = required_access(handler)
            if settings.auth_mode != "none" and needed != PUBLIC:
                handler.security = [{BEARER_SCHEME: required_scopes(needed)}]
            handler.responses = {**declared, **access_answers(needed, settings, oip)}

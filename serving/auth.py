"""Authentication and authorization: the chain step every request passes.

``DIGITS_AUTH`` selects how a ``Authorization: Bearer <credential>`` header is verified:
``api-key`` (the keys file, :mod:`serving.keys`), ``jwt`` (:mod:`serving.jwt_auth`) or
``none``. What a route needs is declared once on its handler (:mod:`serving.access`).

Answers: 401 with ``WWW-Authenticate: Bearer`` for a missing or bad credential (the same
answer for an unknown, revoked or wrong key: it never says whether a key exists), 403 for
a credential without the route's scope; both in the documented error shape, and in the
OIP error format on ``/v2`` routes (:mod:`serving.errors`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from serving.access import AUTHENTICATED, PUBLIC, SCOPES
from serving.dispatch import ROUTE, Route
from serving.http_io import header
from serving.inputs import ClientError
from serving.jwt_auth import CredentialRejectedError, JwksError, JwtVerifier
from serving.keys import KeyRing, KeysFileError
from serving.settings import Settings
from serving.state import service_of

log = logging.getLogger("serving")
CLIENT = "digits.client"  # scope key: the authenticated Client
REALM = 'Bearer realm="digits"'
NO_SCOPES: frozenset[str] = frozenset()


class Client(msgspec.Struct, frozen=True):
    """Who is asking: a client id (None without authentication), scopes and address.

    A msgspec struct: one is built per request, and it is cheaper than a frozen dataclass.
    """

    id: str | None
    scopes: frozenset[str]
    address: str

    @property
    def limit_key(self) -> str:
        """Rate-limit identity: the client id, or the address when auth is ``none``."""
        return f"client:{self.id}" if self.id is not None else f"address:{self.address}"


class CredentialsError(ValueError):
    """The keys file or the JWKS cannot be used (start-up stops with this one line)."""


Verifier = Callable[[str], tuple[str, frozenset[str]]]


def build_verifier(settings: Settings) -> Verifier | None:
    """The credential check of ``settings.auth``; None for ``none``.

    Raises :class:`CredentialsError` when the keys file or JWKS is unusable.
    """
    mode = settings.auth_mode
    try:
        if mode == "api-key":
            return ApiKeyVerifier(KeyRing(Path(settings.api_keys_file)))
        if mode == "jwt":
            return JwtVerifier(settings).verify
    except (KeysFileError, JwksError) as exc:
        raise CredentialsError(str(exc)) from None
    return None


class ApiKeyVerifier:
    """The keys-file check: sha256 of the key, hash lookup, constant-time comparison
    (:meth:`KeyRing.verify`).

    A key that verified is remembered, in this worker's memory only and never written
    anywhere, until the keys file changes (a revoke applies as before, at the next
    check): its next requests skip the sha256. Only verified keys are remembered, so
    the set is bounded by the keys file. Finding one is a dict lookup, whose timing
    depends on a per-process random string hash, not on how much of a key matches.
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._verified: dict[str, tuple[str, frozenset[str]]] = {}
        self._generation = ring.generation

    def __call__(self, key: str) -> tuple[str, frozenset[str]]:
        ring = self.ring
        try:
            ring.refresh(time.monotonic())
        except KeysFileError as exc:  # keep the last good keys
            log.error("keys file not reloaded, keeping the last good keys: %s", exc)
        if ring.generation != self._generation:
            self._verified.clear()
            self._generation = ring.generation
        known = self._verified.get(key)
        if known is not None:
            return known
        entry = ring.verify(key)
        if entry is None:
            raise CredentialRejectedError("invalid")
        known = self._verified[key] = (entry.client_id, frozenset(entry.scopes))
        return known


def unauthorized(reason: str) -> ClientError:
    if reason == "missing":
        return ClientError(
            401,
            "missing_credentials",
            "Authentication required: send Authorization: Bearer <API key or token>",
            headers={"www-authenticate": REALM},
        )
    return ClientError(
        401,
        "invalid_credentials",
        "The credential is not valid",
        headers={"www-authenticate": f'{REALM}, error="invalid_token"'},
    )


def forbidden(scope: str) -> ClientError:
    return ClientError(
        403,
        "insufficient_scope",
        f"This credential lacks the '{scope}' scope this route needs",
        headers={"www-authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
    )


def bearer(scope: Scope) -> str | None:
    """The credential of an ``Authorization: Bearer`` header; '' when malformed."""
    value = header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, credential = value.decode("latin-1").strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        return ""
    return credential


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _missing_scope(needed: str, scopes: frozenset[str]) -> str | None:
    """The scope ``needed`` asks for that ``scopes`` lacks (every scope for AUTHENTICATED)."""
    if needed == AUTHENTICATED:
        return next((scope for scope in SCOPES if scope not in scopes), None)
    return None if needed in scopes else needed


def authenticate(inner: ASGIApp, app: Litestar) -> ASGIApp:
    """Chain step: set ``scope[CLIENT]``; refuse with 401/403 what the route does not allow."""
    service = service_of(app)
    verify = build_verifier(service.settings)
    failures = service.metrics.access.auth_failures

    if verify is None:

        def anonymous(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            scope[CLIENT] = Client(None, NO_SCOPES, client_address(scope))  # type: ignore[literal-required]
            return inner(scope, receive, send)

        return anonymous

    def step(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        needed = route.access if route is not None else AUTHENTICATED
        if needed == PUBLIC:  # credentials are not looked at
            scope[CLIENT] = Client(None, NO_SCOPES, client_address(scope))  # type: ignore[literal-required]
            return inner(scope, receive, send)
        credential = bearer(scope)
        if not credential:
            reason = "missing" if credential is None else "malformed"
            failures.labels(reason).inc()
            raise unauthorized(reason)
        try:
            client_id, scopes = verify(credential)
        except CredentialRejectedError as exc:
            failures.labels(exc.reason).inc()
            raise unauthorized(exc.reason) from None
        missing = _missing_scope(needed, scopes)
        if missing is not None:
            failures.labels("insufficient_scope").inc()
            raise forbidden(missing)
        scope[CLIENT] = Client(client_id, scopes, client_address(scope))  # type: ignore[literal-required]
        return inner(scope, receive, send)

    return step

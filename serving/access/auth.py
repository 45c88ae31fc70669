"""Authentication and authorization: the chain step every request passes.

``DIGITS_AUTH`` selects how a ``Authorization: Bearer <credential>`` header is verified:
``api-key`` (the keys file, :mod:`serving.access.keys`), ``jwt`` (:mod:`serving.access.jwt_auth`) or
``none``. What a route needs is declared once on its handler (:mod:`serving.access`).

Answers: 401 with ``WWW-Authenticate: Bearer`` for a missing or bad credential (the same
answer for an unknown, revoked or wrong key: it never says whether a key exists), 403 for
a credential without the route's scope; both in the documented error shape, and in the
OIP error format on ``/v2`` routes (:mod:`serving.http.errors`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol

import msgspec
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from serving.access import AUTHENTICATED, PUBLIC, SCOPES
from serving.access.jwt_auth import CredentialRejectedError, JwksError, JwtVerifier
from serving.access.keys import KeyRing, KeysFileError
from serving.http.body import header
from serving.http.dispatch import ROUTE, Route
from serving.inference.inputs import ClientError
from serving.settings import Settings
from serving.state import service_of

log = logging.getLogger("serving")
CLIENT = "digits.client"  # scope key: the authenticated Client
REALM = 'Bearer realm="digits"'
NO_SCOPES: frozenset[str] = frozenset()
CANONICAL = b"Bearer "  # the header form whose verified keys are remembered


class Client(msgspec.Struct, frozen=True):
    """Who is asking: a client id (None without authentication), its scopes, and the
    identity its rate limits count against (``limit_key``).

    A msgspec struct, frozen: an authenticated client's is built once per verified key
    and shared by its requests (:class:`ApiKeyVerifier`); an anonymous one per request.
    """

    id: str | None
    scopes: frozenset[str]
    limit_key: str  # rate-limit identity: the client id, or the address without auth

    @classmethod
    def authenticated(cls, client_id: str, scopes: frozenset[str]) -> Client:
        return cls(client_id, scopes, f"client:{client_id}")

    @classmethod
    def anonymous(cls, scope: Scope) -> Client:
        return cls(None, NO_SCOPES, f"address:{client_address(scope)}")


class CredentialsError(ValueError):
    """The keys file or the JWKS cannot be used (start-up stops with this one line)."""


class Verifier(Protocol):
    """A credential check: an Authorization header's value -> its client."""

    def __call__(self, value: bytes) -> Client: ...

    def problem(self) -> str | None:
        """Why credentials cannot be trusted right now (a reason code for /ready), or None."""
        ...

    def close(self) -> None:
        """Release what the check holds (the JWKS refresh thread); run at shutdown."""
        ...


def build_verifier(settings: Settings) -> Verifier | None:
    """The credential check of ``settings.auth``; None for ``none``.

    Raises :class:`CredentialsError` when the keys file or JWKS is unusable.
    """
    mode = settings.auth_mode
    try:
        if mode == "api-key":
            ring = KeyRing(Path(settings.api_keys_file))
            return ApiKeyVerifier(ring, settings.api_keys_grace_seconds)
        if mode == "jwt":
            return JwtBearerVerifier(JwtVerifier(settings))
    except (KeysFileError, JwksError) as exc:
        raise CredentialsError(str(exc)) from None
    return None


class JwtBearerVerifier:
    """A token is verified on every request (expiry, signature): nothing is remembered."""

    def __init__(self, tokens: JwtVerifier) -> None:
        self.tokens = tokens

    def __call__(self, value: bytes) -> Client:
        return Client.authenticated(*self.tokens.verify(bearer(value)))

    def problem(self) -> str | None:
        return self.tokens.problem()

    def close(self) -> None:
        self.tokens.close()


class ApiKeyVerifier:
    """The keys-file check: sha256 of the key, hash lookup, constant-time comparison
    (:meth:`KeyRing.verify`).

    A key that verified is remembered with its :class:`Client`, in this worker's memory
    only and never written anywhere, until the keys file changes (a revoke applies as
    before, at the next check): its next requests skip the parsing and the sha256. Only
    verified keys in the canonical ``Bearer <key>`` form are remembered, so the set is
    bounded by the keys file. Finding one is a dict lookup, whose timing depends on a
    per-process random hash, not on how much of a key matches.
    """

    def __init__(self, ring: KeyRing, grace_seconds: float) -> None:
        self.ring = ring
        self.grace_seconds = grace_seconds
        self._verified: dict[bytes, Client] = {}
        self._generation = ring.generation

    def _refresh(self) -> float:
        now = time.monotonic()
        try:
            self.ring.refresh(now)
        except KeysFileError as exc:  # keep the last good keys
            log.error("keys file not reloaded, keeping the last good keys: %s", exc)
        return now

    def problem(self) -> str | None:
        """``keys_file_unreadable`` once the file has failed to re-read for the grace period
        (``DIGITS_API_KEYS_GRACE``): its old keys, revoked ones too, are still accepted."""
        return self.ring.problem(self._refresh(), self.grace_seconds)

    def close(self) -> None:
        """Nothing to release: the keys file is re-read by the requests themselves."""

    def __call__(self, value: bytes) -> Client:
        ring = self.ring
        self._refresh()
        if ring.generation != self._generation:
            self._verified.clear()
            self._generation = ring.generation
        known = self._verified.get(value)
        if known is not None:
            return known
        key = bearer(value)
        entry = ring.verify(key)
        if entry is None:
            raise CredentialRejectedError("invalid")
        client = Client.authenticated(entry.client_id, frozenset(entry.scopes))
        if value == CANONICAL + key.encode("latin-1"):
            self._verified[value] = client
        return client


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


def forbidden(scope: str, needed: str) -> ClientError:
    """403 for a credential without ``scope``; ``needed`` is what the route asks for (a
    scope, or :data:`AUTHENTICATED`: every scope, on a path or method no route declares)."""
    if needed == AUTHENTICATED:
        every = " ".join(SCOPES)
        return ClientError(
            403,
            "insufficient_scope",
            "No route answers this method on this path; only a credential holding every "
            f"scope ({', '.join(SCOPES)}) is told more. This one lacks '{scope}'",
            headers={"www-authenticate": f'{REALM}, error="insufficient_scope", scope="{every}"'},
        )
    return ClientError(
        403,
        "insufficient_scope",
        f"This credential lacks the '{scope}' scope this route needs",
        headers={"www-authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
    )


def bearer(value: bytes) -> str:
    """The credential of an ``Authorization: Bearer`` header's value.

    Raises :class:`CredentialRejectedError` (``malformed``) for another scheme, or an
    empty or spaced credential."""
    scheme, _, credential = value.decode("latin-1").strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise CredentialRejectedError("malformed")
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
    if verify is not None:
        service.credential_problem = verify.problem  # /ready asks
        service.closers.append(verify.close)  # at shutdown (the JWKS refresh thread)

    if verify is None:

        def anonymous(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            scope[CLIENT] = Client.anonymous(scope)  # type: ignore[literal-required]
            return inner(scope, receive, send)

        return anonymous

    def step(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        route: Route | None = scope.get(ROUTE)  # type: ignore[assignment]
        needed = route.access if route is not None else AUTHENTICATED
        if needed == PUBLIC:  # credentials are not looked at
            scope[CLIENT] = Client.anonymous(scope)  # type: ignore[literal-required]
            return inner(scope, receive, send)
        value = header(scope, b"authorization")
        if value is None:
            failures.labels("missing").inc()
            raise unauthorized("missing")
        try:
            client = verify(value)
        except CredentialRejectedError as exc:
            failures.labels(exc.reason).inc()
            raise unauthorized(exc.reason) from None
        missing = _missing_scope(needed, client.scopes)
        if missing is not None:
            failures.labels("insufficient_scope").inc()
            raise forbidden(missing, needed)
        scope[CLIENT] = client  # type: ignore[literal-required]
        return inner(scope, receive, send)

    return step

"""JWT bearer tokens (``DIGITS_AUTH=jwt``), verified with PyJWT against a JWKS.

``DIGITS_JWT_JWKS`` is a file path (read at start-up) or an ``https://`` URL (fetched at
start-up, then refreshed in a background thread every ``DIGITS_JWT_JWKS_REFRESH``
seconds, so no request waits on the identity provider). Only asymmetric algorithms are
accepted: ``none`` and the HMAC family are refused before any key is looked at. ``exp``,
``iss`` and ``aud`` are required; expiry allows ``DIGITS_JWT_LEEWAY`` seconds of clock
skew. The client id is ``sub``; scopes come from the ``scope`` claim (space-separated, or
a list).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWKClient, PyJWKSet

from serving.access import SCOPES
from serving.settings import Settings

log = logging.getLogger("serving")
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class JwksError(ValueError):
    """The JWKS cannot be read or holds no usable key."""


class CredentialRejectedError(Exception):
    """A token that does not authenticate; ``reason`` is a bounded metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _load_file(path: Path) -> PyJWKSet:
    try:
        return PyJWKSet.from_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, jwt.PyJWTError) as exc:
        raise JwksError(f"DIGITS_JWT_JWKS={str(path)!r} cannot be used: {exc}") from None


class JwtVerifier:
    """Verifies bearer tokens against the configured JWKS, issuer and audience."""

    def __init__(self, settings: Settings) -> None:
        source = settings.jwt_jwks or ""
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self._client: PyJWKClient | None = None
        self._stop = threading.Event()
        if source.startswith("https://"):
            self._client = PyJWKClient(source, cache_jwk_set=False, timeout=5)
            try:
                self._keys = self._client.get_jwk_set()
            except jwt.PyJWTError as exc:
                raise JwksError(f"DIGITS_JWT_JWKS={source!r} cannot be fetched: {exc}") from None
            self._refresh_every = settings.jwt_jwks_refresh_seconds
            threading.Thread(target=self._refresh_loop, name="jwks-refresh", daemon=True).start()
        elif "://" in source:
            raise JwksError(f"DIGITS_JWT_JWKS={source!r}: a JWKS URL must use https")
        else:
            self._keys = _load_file(Path(source))

    def close(self) -> None:
        """Stop refreshing the JWKS (shutdown)."""
        self._stop.set()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh_every):
            if self._client is None:  # pragma: no cover - only started with a client
                return
            try:
                self._keys = self._client.get_jwk_set()
            except jwt.PyJWTError as exc:  # keep the last good keys
                log.warning("JWKS refresh failed, keeping the cached keys: %s", exc)

    def _key_for(self, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        keys = self._keys.keys
        if kid is None and len(keys) == 1:
            return keys[0].key
        for candidate in keys:
            if candidate.key_id == kid:
                return candidate.key
        raise CredentialRejectedError("unknown_key")

    def verify(self, token: str) -> tuple[str, frozenset[str]]:
        """``(client id, scopes)`` of a valid token, else :class:`CredentialRejectedError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise CredentialRejectedError("malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise CredentialRejectedError("algorithm")
        try:
            claims = jwt.decode(
                token,
                key=self._key_for(header),
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise CredentialRejectedError("expired") from None
        except jwt.PyJWTError:
            raise CredentialRejectedError("invalid") from None
        raw = claims.get("scope", "")
        granted = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        scopes = frozenset(str(item) for item in granted) & frozenset(SCOPES)
        return str(claims["sub"]), scopes

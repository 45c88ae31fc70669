"""JWT bearer tokens (``DIGITS_AUTH=jwt``), verified with PyJWT against a JWKS.

``DIGITS_JWT_JWKS`` is a file path (read at start-up) or an ``https://`` URL (fetched at
start-up, then refreshed in a background thread every ``DIGITS_JWT_JWKS_REFRESH``
seconds, so no request waits on the identity provider). Only asymmetric algorithms are
accepted: ``none`` and the HMAC family are refused before any key is looked at. ``exp``,
``iss`` and ``aud`` are required; expiry allows ``DIGITS_JWT_LEEWAY`` seconds of clock
skew. The client id is ``sub``; scopes come from the ``scope`` claim (space-separated, or
a list).

A token's ``alg`` must fit the key its ``kid`` names: the JWK's own ``alg`` when it declares
one, else the key type (RSA: RS*/PS*; EC: the curve's ES*; OKP: EdDSA). A ``typ`` header, when
present, must say JWT (``JWT``, ``at+jwt``). A token may live at most
``DIGITS_JWT_MAX_LIFETIME`` seconds (``exp`` minus ``iat``, or minus now without ``iat``).
Any other failure while preparing the key or decoding the token is a refusal (``invalid``),
never a server error.

A JWKS URL's keys are trusted for ``DIGITS_JWT_JWKS_MAX_AGE`` seconds after the last
successful fetch. Past that (the identity provider unreachable for that long: a key it
revoked meanwhile would still verify), every token is refused (``jwks_stale``) and
``/ready`` says so, until a refresh succeeds. The fetch follows no redirect (PyJWT's
``urlopen`` with a plain ``Request``: an ``https`` JWKS that redirects to ``http`` is an
error, and so is any other redirect).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

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


# The algorithms each key type can verify (the token's alg must be one of them).
KEY_TYPE_ALGORITHMS = {
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
    "OKP": frozenset({"EdDSA"}),
}
TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
FETCH_TIMEOUT_SECONDS = 5.0  # one JWKS fetch; shutdown waits at most this for a refresh


class JwksError(ValueError):
    """The JWKS cannot be read or holds no usable key."""


class CredentialRejectedError(Exception):
    """A token that does not authenticate; ``reason`` is a bounded metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeySet:
    """A JWKS's usable keys, and the ``alg`` each declares (``None``: not declared)."""

    def __init__(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("a JWKS is a JSON object with a 'keys' list")
        self.keys = PyJWKSet.from_dict(data).keys
        raw = data.get("keys")
        declared = [k for k in raw if isinstance(k, dict)] if isinstance(raw, list) else []
        self.declared_alg: dict[str | None, Any] = {k.get("kid"): k.get("alg") for k in declared}

    def allows(self, key: PyJWK, alg: str) -> bool:
        """Whether a token signed with ``alg`` may be verified with ``key``."""
        declared = self.declared_alg.get(key.key_id)
        if declared is not None:
            return bool(alg == declared)
        if key.key_type == "EC":  # the curve fixes the algorithm (P-256: ES256, ...)
            return bool(alg == key.algorithm_name)
        return alg in KEY_TYPE_ALGORITHMS.get(key.key_type or "", frozenset())


def _load_file(path: Path) -> KeySet:
    try:
        return KeySet(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, jwt.PyJWTError) as exc:
        raise JwksError(f"DIGITS_JWT_JWKS={str(path)!r} cannot be used: {exc}") from None


class JwtVerifier:
    """Verifies bearer tokens against the configured JWKS, issuer and audience."""

    def __init__(self, settings: Settings) -> None:
        source = settings.jwt_jwks or ""
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.max_lifetime = settings.jwt_max_lifetime_seconds
        self._client: PyJWKClient | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self.max_age = settings.jwt_jwks_max_age_seconds
        self.fetched_at = time.monotonic()  # of the keys in use (a file: read once)
        if source.startswith("https://"):
            self._client = PyJWKClient(source, cache_jwk_set=False, timeout=FETCH_TIMEOUT_SECONDS)
            try:
                self._keys = KeySet(self._client.fetch_data())
            except (jwt.PyJWTError, TypeError, ValueError) as exc:
                raise JwksError(f"DIGITS_JWT_JWKS={source!r} cannot be fetched: {exc}") from None
            self.fetched_at = time.monotonic()
            self._refresh_every = settings.jwt_jwks_refresh_seconds
            self._refresher = threading.Thread(
                target=self._refresh_loop, name="jwks-refresh", daemon=True
            )
            self._refresher.start()
        elif "://" in source:
            raise JwksError(f"DIGITS_JWT_JWKS={source!r}: a JWKS URL must use https")
        else:
            self._keys = _load_file(Path(source))

    def close(self) -> None:
        """Stop refreshing the JWKS and wait for the refresh thread to end (shutdown: the
        service's closers run it)."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(FETCH_TIMEOUT_SECONDS)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh_every):
            if self._client is None:  # pragma: no cover - only started with a client
                return
            self.refresh()

    def refresh(self) -> None:
        """Fetch the JWKS URL again; on failure keep the last good keys (until they are stale)."""
        if self._client is None:
            return
        try:
            self._keys = KeySet(self._client.fetch_data())
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # keep the last good keys
            log.warning(
                "JWKS refresh failed, keeping the keys fetched %.0f s ago (stale after %.0f s): %s",
                time.monotonic() - self.fetched_at,
                self.max_age,
                exc,
            )
            return
        self.fetched_at = time.monotonic()

    def problem(self) -> str | None:
        """``jwks_stale`` when the URL's keys were last fetched over ``max_age`` seconds ago."""
        if self._client is not None and time.monotonic() - self.fetched_at > self.max_age:
            return "jwks_stale"
        return None

    def _key_for(self, header: dict[str, Any]) -> PyJWK:
        kid = header.get("kid")
        keys = self._keys.keys
        if kid is None and len(keys) == 1:
            return keys[0]
        for candidate in keys:
            if candidate.key_id == kid:
                return candidate
        raise CredentialRejectedError("unknown_key")

    def verify(self, token: str) -> tuple[str, frozenset[str]]:
        """``(client id, scopes)`` of a valid token, else :class:`CredentialRejectedError`."""
        stale = self.problem()
        if stale is not None:
            raise CredentialRejectedError(stale)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise CredentialRejectedError("malformed") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise CredentialRejectedError("algorithm")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in TOKEN_TYPES):
            raise CredentialRejectedError("type")
        key = self._key_for(header)
        if not self._keys.allows(key, alg):
            raise CredentialRejectedError("algorithm")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise CredentialRejectedError("expired") from None
        except Exception:  # any failure to prepare the key or decode is a refusal, not a 500
            log.debug("JWT refused", exc_info=True)
            raise CredentialRejectedError("invalid") from None
        self._check_lifetime(claims)
        raw = claims.get("scope", "")
        granted = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        scopes = frozenset(str(item) for item in granted) & frozenset(SCOPES)
        return str(claims["sub"]), scopes

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """Refuse a token that lives longer than ``DIGITS_JWT_MAX_LIFETIME`` seconds."""
        issued = claims.get("iat", time.time())
        if not isinstance(issued, (int, float)) or isinstance(issued, bool):
            raise CredentialRejectedError("invalid")
        if float(claims["exp"]) - float(issued) > self.max_lifetime:
            raise CredentialRejectedError("lifetime")

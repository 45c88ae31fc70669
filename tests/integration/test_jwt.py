"""JWT bearer tokens (``DIGITS_AUTH=jwt``) over Litestar's TestClient: what is accepted,
what is refused, and that every refusal is a 401, never a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from litestar.testing import TestClient

from serving.app import create_app
from serving.schemas import EXAMPLE_FLAT
from serving.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}
BODY = json.dumps({"samples": [EXAMPLE_FLAT]})
ISSUER, AUDIENCE = "https://idp.example", "digits-api"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **JSON}


@pytest.fixture(scope="module")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwks = {
        "keys": [
            {**rsa_jwk, "kid": "r1"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "e1"},
            # The same RSA key declaring its algorithm, and a misconfigured one declaring an
            # EC algorithm for an RSA key (PyJWT then fails with a TypeError, not a JWT error).
            {**rsa_jwk, "kid": "r-rs256", "alg": "RS256"},
            {**rsa_jwk, "kid": "r-es256", "alg": "ES256"},
        ]
    }
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps(jwks))
    return rsa_key, ec_key, path


@pytest.fixture(scope="module")
def jwt_client(signing_keys: tuple[Any, Any, Path]) -> Iterator[TestClient[Any]]:
    settings = Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"),
        auth="jwt",
        jwt_jwks=str(signing_keys[2]),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_leeway_seconds=30,
        metrics_auth=False,  # the failure counters are read without a token
    )
    with TestClient(app=create_app(settings)) as test_client:
        yield test_client


def token(key: Any, alg: str, kid: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "exp": now + 60, "scope": "predict"}
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def test_jwt_accepts_asymmetric_tokens_with_scopes(
    jwt_client: TestClient[Any], signing_keys: tuple[Any, Any, Path]
) -> None:
    rsa_key, ec_key, _ = signing_keys
    for key, alg, kid in ((rsa_key, "RS256", "r1"), (ec_key, "ES256", "e1")):
        answer = jwt_client.post("/predict", content=BODY, headers=bearer(token(key, alg, kid)))
        assert answer.status_code == 200, answer.text
    no_scope = token(rsa_key, "RS256", "r1", scope="read")
    assert jwt_client.post("/predict", content=BODY, headers=bearer(no_scope)).status_code == 403
    listed = token(rsa_key, "RS256", "r1", scope=["read"])
    assert jwt_client.get("/model", headers=bearer(listed)).status_code == 200
    # Expired, but within the 30 s clock skew: accepted; beyond it: refused.
    skewed = token(rsa_key, "RS256", "r1", exp=int(time.time()) - 10)
    assert jwt_client.post("/predict", content=BODY, headers=bearer(skewed)).status_code == 200


@pytest.mark.parametrize(
    "case", ["expired", "issuer", "audience", "hs256", "none", "other-key", "no-exp", "garbage"]
)
def test_jwt_refusals(
    jwt_client: TestClient[Any], signing_keys: tuple[Any, Any, Path], case: str
) -> None:
    rsa_key = signing_keys[0]
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    tokens: dict[str, Callable[[], str]] = {
        "expired": lambda: token(rsa_key, "RS256", "r1", exp=now - 120),
        "issuer": lambda: token(rsa_key, "RS256", "r1", iss="https://evil.example"),
        "audience": lambda: token(rsa_key, "RS256", "r1", aud="someone-else"),
        # The classic confusion attack: HMAC keyed with the public key.
        "hs256": lambda: _hs256_token(public_pem, now),
        "none": lambda: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, "scope": "predict"},
            "",
            algorithm="none",
        ),
        "other-key": lambda: token(
            rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "r1"
        ),
        "no-exp": lambda: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "scope": "predict"},
            rsa_key,
            algorithm="RS256",
            headers={"kid": "r1"},
        ),
        "garbage": lambda: "not.a.jwt",
    }
    bad = tokens[case]()
    answer = jwt_client.post("/predict", content=BODY, headers=bearer(bad))
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith("Bearer")


def _hs256_token(secret: bytes, now: int) -> str:
    """An HS256 token signed with the RSA public key's PEM bytes as the HMAC secret."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "r1"}).encode())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 60, "scope": "predict"}
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def _status(client: TestClient[Any], bearer_token: str) -> int:
    return client.post("/predict", content=BODY, headers=bearer(bearer_token)).status_code


def test_a_token_alg_must_fit_its_key(
    jwt_client: TestClient[Any], signing_keys: tuple[Any, Any, Path]
) -> None:
    """An alg the key cannot verify is a 401: ES256 naming an RSA key gave a 500 (TypeError)."""
    rsa_key, ec_key, _ = signing_keys
    assert _status(jwt_client, token(ec_key, "ES256", "r1")) == 401  # EC alg, RSA key
    assert _status(jwt_client, token(rsa_key, "RS256", "e1")) == 401  # RSA alg, EC key
    assert _status(jwt_client, token(rsa_key, "PS256", "r1")) == 200  # RSA key, no declared alg
    # A JWK that declares its alg admits that alg only (PS256 was accepted for an RS256 key).
    assert _status(jwt_client, token(rsa_key, "RS256", "r-rs256")) == 200
    assert _status(jwt_client, token(rsa_key, "PS256", "r-rs256")) == 401
    # A misconfigured JWKS (EC alg declared on an RSA key) makes PyJWT raise a TypeError:
    # still a 401, never a 500.
    assert _status(jwt_client, token(ec_key, "ES256", "r-es256")) == 401
    failures = jwt_client.get("/metrics").text
    assert 'auth_failures_total{reason="algorithm"}' in failures


def test_a_token_type_when_given_must_be_jwt(
    jwt_client: TestClient[Any], signing_keys: tuple[Any, Any, Path]
) -> None:
    rsa_key = signing_keys[0]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-1", "exp": now + 60, "scope": "predict"}
    for typ, status in (("JWT", 200), ("at+jwt", 200), ("dpop+jwt", 401), ("JWE", 401)):
        signed = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r1", "typ": typ})
        assert _status(jwt_client, signed) == status, typ


def test_a_token_may_live_at_most_the_maximum_lifetime(
    jwt_client: TestClient[Any], signing_keys: tuple[Any, Any, Path]
) -> None:
    """DIGITS_JWT_MAX_LIFETIME (default 24 h): exp - iat, or exp - now without iat."""
    rsa_key = signing_keys[0]
    now = int(time.time())
    day = 24 * 3600
    assert _status(jwt_client, token(rsa_key, "RS256", "r1", iat=now, exp=now + day)) == 200
    assert _status(jwt_client, token(rsa_key, "RS256", "r1", iat=now, exp=now + day + 60)) == 401
    assert _status(jwt_client, token(rsa_key, "RS256", "r1", exp=now + day + 60)) == 401
    # Issued long ago but short-lived is fine; issued "now" and valid for a year is not.
    assert _status(jwt_client, token(rsa_key, "RS256", "r1", iat=now - 3600, exp=now + 60)) == 200
    assert _status(jwt_client, token(rsa_key, "RS256", "r1", iat="yesterday")) == 401
    assert 'auth_failures_total{reason="lifetime"}' in jwt_client.get("/metrics").text


def test_the_maximum_lifetime_is_a_setting() -> None:
    assert load_settings({}).jwt_max_lifetime_seconds == 86400
    assert load_settings({"DIGITS_JWT_MAX_LIFETIME": "3600"}).jwt_max_lifetime_seconds == 3600
    with pytest.raises(SettingsError, match="DIGITS_JWT_MAX_LIFETIME"):
        load_settings({"DIGITS_JWT_MAX_LIFETIME": "0"})

"""DIGITS_JWT_JWKS as an https URL: fetched at start-up, refreshed in the background.

A real HTTPS server on loopback (self-signed certificate, trusted through SSL_CERT_FILE)
serves the JWKS; rotating its keys is picked up by the refresh thread.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from litestar.testing import TestClient

from serving.access.jwt_auth import CredentialRejectedError, JwksError, JwtVerifier
from serving.app import create_app
from serving.settings import Settings, SettingsError, load_settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration
ISSUER, AUDIENCE = "https://idp.example", "digits-api"
SAMPLE = {"samples": [[0.0] * 64]}


def jwks_of(*keys: tuple[str, rsa.RSAPrivateKey]) -> bytes:
    entries = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": kid}
        for kid, key in keys
    ]
    return json.dumps({"keys": entries}).encode()


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Jwks:
    body = b""
    status = 200
    location: str | None = None


@pytest.fixture
def jwks_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(Jwks.status)
            if Jwks.location is not None:
                self.send_header("location", Jwks.location)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(Jwks.body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Jwks.status, Jwks.location = 200, None
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        Jwks.status, Jwks.location = 200, None


@pytest.fixture
def plain_jwks_server() -> Iterator[str]:
    """A plain-http server that serves a valid JWKS: where a downgrade redirect points."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(PlainJwks.body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


class PlainJwks:
    body = b""


def token(key: rsa.RSAPrivateKey, kid: str) -> str:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "exp": int(time.time()) + 60}
    return jwt.encode({**claims, "scope": "predict"}, key, algorithm="RS256", headers={"kid": kid})


def test_jwks_url_is_fetched_and_refreshed(jwks_server: str) -> None:
    old = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    Jwks.body = jwks_of(("old", old))
    settings = Settings(
        auth="jwt",
        jwt_jwks=jwks_server,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_jwks_refresh_seconds=0.2,  # the environment allows >= 10 s; short for the test
    )
    verifier = JwtVerifier(settings)
    try:
        check_rotation(verifier, old, new)
    finally:
        verifier.close()


def check_rotation(verifier: JwtVerifier, old: rsa.RSAPrivateKey, new: rsa.RSAPrivateKey) -> None:
    assert verifier.verify(token(old, "old")) == ("svc", frozenset({"predict"}))
    with pytest.raises(CredentialRejectedError):
        verifier.verify(token(new, "new"))
    Jwks.body = jwks_of(("new", new))  # the identity provider rotates its key
    deadline = time.monotonic() + 5
    while True:
        try:
            assert verifier.verify(token(new, "new"))[0] == "svc"
            break
        except CredentialRejectedError:
            assert time.monotonic() < deadline, "rotated key not picked up"
            time.sleep(0.05)
    with pytest.raises(CredentialRejectedError):
        verifier.verify(token(old, "old"))


def test_plain_http_jwks_url_is_refused() -> None:
    settings = Settings(
        auth="jwt", jwt_jwks="http://idp.example/jwks", jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    )
    with pytest.raises(JwksError, match="must use https"):
        JwtVerifier(settings)


def url_settings(url: str, **overrides: Any) -> Settings:
    return Settings(
        **{
            "lock_file_path": str(REPO_ROOT / "dvc.lock"),
            "auth": "jwt",
            "jwt_jwks": url,
            "jwt_issuer": ISSUER,
            "jwt_audience": AUDIENCE,
            **overrides,
        }
    )


def test_a_jwks_redirect_from_https_to_http_is_refused(
    jwks_server: str, plain_jwks_server: str
) -> None:
    """An https JWKS answering 302 to an http URL (which serves a valid JWKS) is not
    followed: not at start-up, and not by a refresh, which keeps the last good keys."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    PlainJwks.body = jwks_of(("attacker", attacker))
    Jwks.body = jwks_of(("idp", key))
    Jwks.status, Jwks.location = 302, plain_jwks_server
    with pytest.raises(JwksError, match="cannot be fetched"):
        JwtVerifier(url_settings(jwks_server))
    Jwks.status, Jwks.location = 200, None
    verifier = JwtVerifier(url_settings(jwks_server, jwt_jwks_refresh_seconds=3600.0))
    try:
        Jwks.status, Jwks.location = 302, plain_jwks_server
        verifier.refresh()
        with pytest.raises(CredentialRejectedError) as refused:
            verifier.verify(token(attacker, "attacker"))
        assert refused.value.reason == "unknown_key"
        assert verifier.verify(token(key, "idp"))[0] == "svc"
    finally:
        verifier.close()


def test_keys_past_the_jwks_max_age_refuse_every_token_and_fail_ready(jwks_server: str) -> None:
    """The identity provider stops answering: after DIGITS_JWT_JWKS_MAX_AGE without a good
    refresh, tokens are refused (jwks_stale: a key it revoked meanwhile would still verify),
    /ready says so, and the gauge drops; a good refresh restores all three."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    Jwks.body = jwks_of(("idp", key))
    settings = url_settings(
        jwks_server,
        jwt_jwks_refresh_seconds=0.1,  # the environment allows >= 10 s; short for the test
        jwt_jwks_max_age_seconds=0.6,
        metrics_auth=False,
    )
    with TestClient(app=create_app(settings)) as client:
        good = {"authorization": f"Bearer {token(key, 'idp')}"}
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json=SAMPLE, headers=good).status_code == 200
        Jwks.status = 503  # the identity provider is down
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code == 200:
            assert time.monotonic() < deadline, "stale keys were never reported"
            time.sleep(0.05)
        ready = client.get("/ready").json()
        assert ready["reason"] == "jwks_stale", ready
        assert "JWKS" in ready["message"]
        refused = client.post("/predict", json=SAMPLE, headers=good)
        assert refused.status_code == 401, refused.text
        assert client.get("/v2/health/ready").status_code == 400  # the OIP readiness too
        metrics = client.get("/metrics").text
        assert "auth_credentials_healthy 0.0" in metrics
        assert 'auth_failures_total{reason="jwks_stale"} 1.0' in metrics
        Jwks.status = 200  # back: the next refresh trusts the keys again
        deadline = time.monotonic() + 10
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "a good refresh did not restore readiness"
            time.sleep(0.05)
        assert client.post("/predict", json=SAMPLE, headers=good).status_code == 200
        assert "auth_credentials_healthy 1.0" in client.get("/metrics").text


def test_the_jwks_refresh_thread_stops_when_the_app_shuts_down(jwks_server: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    Jwks.body = jwks_of(("idp", key))
    before = set(threading.enumerate())
    app = create_app(url_settings(jwks_server, jwt_jwks_refresh_seconds=3600.0))
    started = [t for t in threading.enumerate() if t not in before and t.name == "jwks-refresh"]
    assert len(started) == 1
    with TestClient(app=app) as client:
        assert client.get("/ready").status_code == 200
        assert started[0].is_alive()
    assert not started[0].is_alive()  # the lifespan's closers stopped and joined it


def test_a_max_age_shorter_than_the_refresh_interval_is_refused() -> None:
    with pytest.raises(SettingsError, match="DIGITS_JWT_JWKS_MAX_AGE"):
        load_settings(
            {
                "DIGITS_AUTH": "jwt",
                "DIGITS_JWT_JWKS": "https://idp.example/jwks",
                "DIGITS_JWT_ISSUER": ISSUER,
                "DIGITS_JWT_AUDIENCE": AUDIENCE,
                "DIGITS_JWT_JWKS_REFRESH": "600",
                "DIGITS_JWT_JWKS_MAX_AGE": "300",
            }
        )

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

from serving.jwt_auth import CredentialRejectedError, JwksError, JwtVerifier
from serving.settings import Settings

pytestmark = pytest.mark.unit
ISSUER, AUDIENCE = "https://idp.example", "digits-api"


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


@pytest.fixture
def jwks_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
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
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


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

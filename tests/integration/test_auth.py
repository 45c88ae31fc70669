"""Authentication and scopes over Litestar's TestClient: API keys, JWT, the error shapes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from serving.access.auth import ApiKeyVerifier, Client, CredentialsError, build_verifier
from serving.access.jwt_auth import CredentialRejectedError
from serving.access.keys import KeyEntry, KeyRing, add_key, key_digest, main, read_entries, revoke
from serving.app import create_app
from serving.schemas import EXAMPLE_FLAT
from serving.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}
BODY = json.dumps({"samples": [EXAMPLE_FLAT]})
OIP_BODY = json.dumps(
    {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": EXAMPLE_FLAT}]}
)
ISSUER, AUDIENCE = "https://idp.example", "digits-api"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **JSON}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("keys") / "api-keys.jsonl"
    made = {
        "predictor": add_key(path, "predictor", ["predict"]),
        "reader": add_key(path, "reader", ["read"]),
        "all": add_key(path, "all", ["predict", "explain", "read"]),
        "gone": add_key(path, "gone", ["predict", "explain", "read"]),
    }
    assert revoke(path, "gone") == 1
    return path, made


@pytest.fixture(scope="module")
def client(keys: tuple[Path, dict[str, str]]) -> Iterator[TestClient[Any]]:
    settings = Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"),
        auth="api-key",
        api_keys_file=str(keys[0]),
    )
    with TestClient(app=create_app(settings)) as test_client:
        yield test_client


def test_keys_file_holds_hashes_only(keys: tuple[Path, dict[str, str]]) -> None:
    path, made = keys
    text = path.read_text()
    for key in made.values():
        assert key not in text
    entries = {entry.client_id: entry for entry in read_entries(path)}
    assert set(entries) == {"predictor", "reader", "all"}
    assert entries["predictor"].key_sha256 == key_digest(made["predictor"])
    assert path.stat().st_mode & 0o077 == 0


def test_keys_cli_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.jsonl"
    assert main(["--file", str(path), "add", "alice", "--scopes", "predict,explain"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("dgk_")
    assert len(key) > 40
    assert key not in path.read_text()
    assert main(["--file", str(path), "list"]) == 0
    listed = capsys.readouterr().out
    client_id, key_id, scopes, _created, age = listed.strip().split("\t")
    assert (client_id, key_id, scopes, age) == (
        "alice",
        key_digest(key)[:12],
        "predict,explain",
        "0d00h",
    )
    assert key not in listed
    assert main(["--file", str(path), "add", "bob", "--scopes", "admin"]) == 2
    assert main(["--file", str(path), "revoke", "alice"]) == 0
    assert main(["--file", str(path), "revoke", "alice"]) == 1
    assert read_entries(path) == []


def test_public_routes_need_no_credential(client: TestClient[Any]) -> None:
    for path in ("/health", "/ready", "/v2/health/live", "/v2/health/ready"):
        assert client.get(path).status_code == 200, path
    # Swagger UI, the document and the demo page are off by default with auth on: not public
    # (tests/integration/test_docs_demo_access.py has them switched on).
    for path in ("/docs", "/docs/openapi.json", "/"):
        assert client.get(path).status_code == 401, path


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/predict", "POST", BODY),
        ("/explain", "POST", BODY),
        ("/model", "GET", None),
        ("/drift", "GET", None),
        ("/metrics", "GET", None),
        ("/v2", "GET", None),
        ("/v2/models/digits-classifier", "GET", None),
        ("/v2/models/digits-classifier/infer", "POST", OIP_BODY),
        ("/no-such-route", "GET", None),
    ],
)
def test_missing_and_bad_credentials_get_401(
    client: TestClient[Any], keys: tuple[Path, dict[str, str]], path: str, method: str, body: Any
) -> None:
    answers = {}
    for name, headers in {
        "missing": JSON,
        "wrong": bearer("dgk_not-a-key"),
        "revoked": bearer(keys[1]["gone"]),
        "basic": {"authorization": "Basic dXNlcjpwYXNz", **JSON},
    }.items():
        answer = client.request(method, path, content=body, headers=headers)
        assert answer.status_code == 401, (name, answer.text)
        assert answer.headers["www-authenticate"].startswith('Bearer realm="digits"')
        answers[name] = answer.json()
    if path.startswith("/v2"):
        assert set(answers["missing"]) == {"error"}
    else:
        assert answers["missing"]["reason"] == "missing_credentials"
        # An unknown key and a revoked key get the same answer: no key is revealed.
        assert answers["wrong"]["message"] == answers["revoked"]["message"]
        assert answers["wrong"]["reason"] == answers["revoked"]["reason"] == "invalid_credentials"


def test_scopes(client: TestClient[Any], keys: tuple[Path, dict[str, str]]) -> None:
    made = keys[1]
    assert (
        client.post("/predict", content=BODY, headers=bearer(made["predictor"])).status_code == 200
    )
    infer = "/v2/models/digits-classifier/infer"
    assert (
        client.post(infer, content=OIP_BODY, headers=bearer(made["predictor"])).status_code == 200
    )
    refused = client.post("/explain", content=BODY, headers=bearer(made["predictor"]))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "insufficient_scope"
    assert 'scope="explain"' in refused.headers["www-authenticate"]
    assert client.get("/model", headers=bearer(made["predictor"])).status_code == 403
    oip = client.get("/v2", headers=bearer(made["predictor"]))
    assert (oip.status_code, set(oip.json())) == (403, {"error"})
    assert client.get("/model", headers=bearer(made["reader"])).status_code == 200
    assert client.get("/metrics", headers=bearer(made["reader"])).status_code == 200
    assert client.post("/predict", content=BODY, headers=bearer(made["reader"])).status_code == 403
    assert client.post("/explain", content=BODY, headers=bearer(made["all"])).status_code == 200
    metrics = client.get("/metrics", headers=bearer(made["reader"])).text
    assert 'auth_failures_total{reason="insufficient_scope"}' in metrics


def test_an_undeclared_path_says_it_needs_every_scope(
    client: TestClient[Any], keys: tuple[Path, dict[str, str]]
) -> None:
    """A path (or method) no route declares is answered, 404 or 405, only to a credential with
    every scope; any other is told that, not that it lacks the first scope it misses."""
    refused = client.get("/no-such-route", headers=bearer(keys[1]["predictor"]))
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("No route answers this method on this path")
    assert 'scope="predict explain read feedback"' in refused.headers["www-authenticate"]


def test_revoke_applies_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    key = add_key(path, "temp", ["read"])
    settings = Settings(
        lock_file_path=str(REPO_ROOT / "dvc.lock"), auth="api-key", api_keys_file=str(path)
    )
    with TestClient(app=create_app(settings)) as test_client:
        assert test_client.get("/model", headers=bearer(key)).status_code == 200
        revoke(path, "temp")
        deadline = time.monotonic() + 5
        while test_client.get("/model", headers=bearer(key)).status_code == 200:
            assert time.monotonic() < deadline, "revoked key still accepted"
            time.sleep(0.2)
        assert test_client.get("/model", headers=bearer(key)).status_code == 401


def test_a_verified_key_is_remembered_until_the_keys_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated requests with one key hash it once; a change to the file forgets it, so a
    revoke or a scope change applies; an unknown key is never remembered."""
    path = tmp_path / "keys.jsonl"
    key = add_key(path, "temp", ["read"])
    ring = KeyRing(path, check_seconds=0.0)
    verify = ApiKeyVerifier(ring, grace_seconds=60.0)
    hashed: list[str] = []
    original = KeyRing.verify

    def counting(self: KeyRing, presented: str) -> KeyEntry | None:
        hashed.append(presented)
        return original(self, presented)

    monkeypatch.setattr(KeyRing, "verify", counting)
    temp = Client("temp", frozenset({"read"}), "client:temp")
    assert [verify(f"Bearer {key}".encode()) for _ in range(3)] == [temp] * 3
    assert hashed == [key]
    for _ in range(2):
        with pytest.raises(CredentialRejectedError):
            verify(f"Bearer {key}x".encode())
    assert hashed == [key, key + "x", key + "x"]
    for _ in range(2):  # another spelling verifies, and is not remembered (bounded set)
        assert verify(f"bearer  {key} ".encode()) == temp
    assert hashed == [key, key + "x", key + "x", key, key]
    other = add_key(path, "other", ["predict"])  # the file changed: forget what was verified
    assert verify(f"Bearer {key}".encode()) == temp
    assert verify(f"Bearer {other}".encode()) == Client(
        "other", frozenset({"predict"}), "client:other"
    )
    assert hashed[-2:] == [key, other]
    revoke(path, "temp")
    with pytest.raises(CredentialRejectedError):
        verify(f"Bearer {key}".encode())


def test_unusable_keys_file_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"client_id": "x", "key_sha256": "zz", "scopes": []}\n')
    for path, expected in ((bad, "line 1 is malformed"), (tmp_path / "missing", "cannot be read")):
        settings = Settings(auth="api-key", api_keys_file=str(path))
        with pytest.raises(CredentialsError, match=expected) as caught:
            build_verifier(settings)
        assert "DIGITS_API_KEYS_FILE" in str(caught.value)
        assert "\n" not in str(caught.value)


def test_secure_default_depends_on_the_bind_address() -> None:
    assert load_settings({}).auth_mode == "none"
    assert load_settings({"DIGITS_HOST": "::1"}).auth_mode == "none"
    with pytest.raises(SettingsError, match=r"^DIGITS_AUTH is not set") as caught:
        load_settings({"DIGITS_HOST": "0.0.0.0"})  # noqa: S104 - the case under test
    assert "\n" not in str(caught.value)
    assert load_settings({"DIGITS_HOST": "0.0.0.0", "DIGITS_AUTH": "none"}).auth == "none"  # noqa: S104
    with pytest.raises(SettingsError, match="DIGITS_JWT_JWKS is required"):
        load_settings({"DIGITS_AUTH": "jwt"})
    with pytest.raises(SettingsError, match="DIGITS_AUTH='basic'"):
        load_settings({"DIGITS_AUTH": "basic"})
    with pytest.raises(SettingsError, match="DIGITS_RATE_LIMIT="):
        load_settings({"DIGITS_RATE_LIMIT": "lots"})


def test_docs_and_demo_can_be_switched_off() -> None:
    settings = Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), docs="off", demo="off")
    with TestClient(app=create_app(settings)) as test_client:
        for path in ("/docs", "/docs/openapi.json", "/static/swagger-ui/swagger-ui.css", "/"):
            assert test_client.get(path).status_code == 404, path
        assert test_client.get("/static/demo/app.js").status_code == 404
        assert test_client.post("/predict", content=BODY, headers=JSON).status_code == 200
    assert load_settings({"DIGITS_DOCS": "OFF", "DIGITS_DEMO": "off"}).docs == "off"

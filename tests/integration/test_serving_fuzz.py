"""No request body, however malformed, gets a 5xx; every rejection has the error shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from serving.app import create_app
from serving.settings import Settings

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=70) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=200,
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json_values.map(lambda value: json.dumps({"samples": value}).encode()),
    _json_values.map(lambda value: json.dumps(value).encode()),
)


@pytest.fixture(scope="module")
def client() -> Any:
    app = create_app(Settings(lock_file_path=str(REPO_ROOT / "dvc.lock"), max_rows=50))
    with TestClient(app=app) as test_client:
        yield test_client


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies, path=st.sampled_from(["/predict", "/explain"]))
def test_arbitrary_bodies_never_5xx(client: Any, body: bytes, path: str) -> None:
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code < 500, answer.text
    if answer.status_code != 200:
        error = answer.json()
        assert error["status"] == answer.status_code
        assert error["message"]

"""What an unauthenticated caller learns from an error: the status and a fixed reason, not
an echo of the request (issue 23, finding 9)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from tests.integration.asgi import service_client

pytestmark = pytest.mark.integration
PROBES = (
    "/static/demo/nothing-<script>alert(1)</script>.js",  # the static router named the path
    "/static/swagger-ui/probe-<b>.css",
    "/nothing/<b>here",
)


def test_not_found_answers_do_not_echo_the_path() -> None:
    with service_client() as client:
        for path in PROBES:
            answer = client.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["reason"] == "not_found"
            assert answer.json()["message"] == "Not Found"
            assert "<" not in answer.text
            assert "probe" not in answer.text
            assert "nothing" not in answer.text


def test_method_not_allowed_answers_the_phrase() -> None:
    with service_client() as client:
        answer = client.delete("/health")
        assert answer.status_code == 405
        assert answer.json()["message"] == "Method Not Allowed"


def test_the_swagger_page_admits_only_its_own_inline_blocks() -> None:
    """CSP with frame-ancestors 'none' and the sha256 of each inline block, no unsafe-inline."""
    with service_client() as client:
        answer = client.get("/docs")
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    scripts = re.findall(rb"<script[^>]*>(.*?)</script>", answer.content, re.DOTALL)
    inline = [body for body in scripts if body.strip()]
    assert inline
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"

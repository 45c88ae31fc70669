"""No tracked file names a package-registry host or a mirror URL (project rule, issue 22).

Package tools keep their own default indexes and mirrors; where the project offers an
override it is an environment variable with no default, e.g. ``DEBIAN_MIRROR`` in
deploy/podman/build-base-image.sh (passed to debootstrap only when set).

The hosts below are assembled from their labels, so this file names none of them and is
scanned like every other tracked file.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def _host(*labels: str) -> str:
    return ".".join(labels)


REGISTRY_HOSTS = (
    _host("deb", "debian", "org"),
    _host("security", "debian", "org"),
    _host("ftp", "debian", "org"),
    _host("archive", "ubuntu", "com"),
    _host("security", "ubuntu", "com"),
    _host("ports", "ubuntu", "com"),
    _host("pypi", "org"),
    _host("pypi", "python", "org"),
    _host("files", "pythonhosted", "org"),
    _host("registry", "npmjs", "org"),
    _host("registry", "yarnpkg", "com"),
    _host("conda", "anaconda", "org"),
    _host("repo", "anaconda", "com"),
    _host("rubygems", "org"),
    _host("crates", "io"),
    _host("proxy", "golang", "org"),
    _host("dl-cdn", "alpinelinux", "org"),
    _host("download", "pytorch", "org"),
)
_SCHEME = r"[a-z][a-z0-9+.-]*://"
_URL_HOST = r"[^\s/\"'<>`()]*"
FINDINGS = {
    # A listed host, or a subdomain of one (test.<pypi>, ftp.de.<debian>...).
    "registry host": re.compile(
        r"(?<![\w-])(?:[\w-]+\.)*(?:" + "|".join(map(re.escape, REGISTRY_HOSTS)) + r")(?![\w-])",
        re.IGNORECASE,
    ),
    # Any URL whose host says it is a mirror, or that points at a distribution archive.
    "mirror URL": re.compile(
        _SCHEME + _URL_HOST + "mir" + "ror" + r"|" + _SCHEME + _URL_HOST + r"/(?:debian|ubuntu)\b",
        re.IGNORECASE,
    ),
    # An override of a mirror or package index that brings its own default.
    "mirror/index override with a default": re.compile(
        r"\$\{\w*(?:MIRROR|INDEX)\w*:?[-=]\s*[\"']?(?:" + _SCHEME + r"|[\w-]+\.[\w-]+)",
        re.IGNORECASE,
    ),
}


def findings(lines: Iterable[str]) -> list[tuple[int, str, str]]:
    """(line number, kind, matched text) for every registry host or mirror URL named."""
    found: list[tuple[int, str, str]] = []
    for number, line in enumerate(lines, start=1):
        for kind, pattern in FINDINGS.items():
            found.extend((number, kind, match.group(0)) for match in pattern.finditer(line))
    return found


def tracked_text_files() -> list[str]:
    result = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"git ls-files failed: {result.stderr.decode()}"
    return [name for name in result.stdout.decode().split("\0") if name]


def test_the_patterns_catch_what_they_are_for() -> None:
    # The scan below can only pass meaningfully if these are found.
    debian_default = "http://" + _host("deb", "debian", "org") + "/debian"
    samples = [
        f'MIRROR="${{DEBIAN_MIRROR:-{debian_default}}}"',
        "pip install --index-url https://" + _host("test", "pypi", "org") + "/simple x",
        "deb http://" + _host("ftp", "de", "debian", "org") + "/debian bookworm main",
        "export UV_INDEX_URL=https://" + _host("mirrors", "example", "net") + "/pypi",
        'image: "${PIP_INDEX_URL' + '-https://example.net}"',
    ]
    kinds = [{kind for _, kind, _ in findings([sample])} for sample in samples]
    assert kinds == [
        {"registry host", "mirror URL", "mirror/index override with a default"},
        {"registry host"},
        {"mirror URL"},
        {"mirror URL"},
        {"mirror/index override with a default"},
    ]
    harmless = [
        'debootstrap bookworm $ROOTFS ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"}',
        'echo "mirror: ${DEBIAN_MIRROR:-the debootstrap default}"',
        "network access to a Debian mirror (debootstrap's own default)",
        "https://github.com/example/digits-mlops http://127.0.0.1:8000/ready",
        "a copy mirrored at small strength; python:3.11-slim-bookworm",
    ]
    assert findings(harmless) == []


def test_no_tracked_file_names_a_registry_host_or_mirror() -> None:
    offenders: list[str] = []
    names = tracked_text_files()
    assert "deploy/podman/build-base-image.sh" in names
    for name in names:
        path = REPO_ROOT / name
        if not path.is_file():  # deleted in the working tree, or a submodule
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary, as git decides
            continue
        lines = data.decode("utf-8", errors="replace").splitlines()
        offenders.extend(
            f"{name}:{number}: {kind} {text!r}" for number, kind, text in findings(lines)
        )
    assert offenders == [], "\n".join(offenders)

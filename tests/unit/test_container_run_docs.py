"""The Dockerfile's header shows the same first-run commands as docs/deployment.md, the block
tests/integration/test_doc_examples_container.py runs in a real container."""

from __future__ import annotations

from tests.doc_examples import REPO_ROOT, examples_for

FIRST_RUN = (
    "tests/integration/test_doc_examples_container.py::test_documented_first_run_serves_with_a_key"
)


def _commands(text: str) -> list[str]:
    """Logical command lines: continuations joined, comments and blank lines dropped."""
    joined = text.replace("\\\n", " ")
    return [" ".join(line.split("#", 1)[0].split()) for line in joined.splitlines() if line.strip()]


def test_dockerfile_header_runs_the_tested_first_run_commands() -> None:
    (block,) = examples_for(FIRST_RUN)
    documented = [c.removesuffix(" &") for c in _commands(block.text) if "curl" not in c]
    header = []
    for line in (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.removeprefix("#").removeprefix(" ").removeprefix("  "))
    shown = [c for c in _commands("\n".join(header)) if c]
    assert len(documented) == 3  # the key, chmod, docker run
    assert [c for c in documented if c not in shown] == [], shown
    assert "docker run --read-only --tmpfs /tmp -p 8000:8000 digits-api" not in shown

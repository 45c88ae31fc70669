"""Run documented shell blocks (tests/doc_examples.py) for real, in bash, as a reader would.

The only change made to a block's text is :func:`on_port`: the documents address the service
at ``127.0.0.1:8000`` (``make run``'s default); a test's service listens on a free loopback
port, so exactly that host and port is rewritten, nothing else. The service the blocks start
themselves gets the port through ``DIGITS_PORT`` in the environment, not through their text.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.conftest import VENV_BIN
from tests.doc_examples import Example

DOCUMENTED_ADDRESS = re.compile(r"(?<![\d.])127\.0\.0\.1:8000(?!\d)")
# Prepended to every script: stop on the first failing command, and stop what the blocks
# started in the background (a service) however the script ends.
PREAMBLE = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"


def on_port(text: str, port: int) -> str:
    """``text`` with the documented address ``127.0.0.1:8000`` moved to ``port``."""
    return DOCUMENTED_ADDRESS.sub(f"127.0.0.1:{port}", text)


def shell_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment as a user's shell with the venv active: the venv first on PATH, no
    ``DIGITS_*`` or ``PYTHONPATH`` of ours, no Prometheus directory of the test process."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DIGITS_") and key not in {"PYTHONPATH", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    return {**env, **(extra or {})}


def run_blocks(
    blocks: Sequence[Example],
    *,
    cwd: Path,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``blocks`` in order as one bash script (variables carry from block to block) in
    ``cwd``; every process it started is killed when it ends or times out."""
    assert blocks, "no documented block names this test: check the runs-in markers"
    script = "\n".join(block.text for block in blocks)
    if port is not None:
        script = on_port(script, port)
    process = subprocess.Popen(
        ["bash", "-c", PREAMBLE + script],
        cwd=cwd,
        env=shell_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        stdout, stderr = process.communicate()
        raise AssertionError(f"documented commands timed out:\n{stdout}\n{stderr}") from None
    finally:
        _kill_group(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)

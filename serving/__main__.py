"""``python -m serving``: validate settings, reset the metrics dir, serve with granian workers
(draining on SIGTERM first, :mod:`serving.drain`)."""

from __future__ import annotations

import os
import subprocess  # nosec B404 - runs our own verify module, no shell
import sys

from serving.lineage.signature import RESULT_ENV, SignatureResult, encode_result
from serving.settings import Settings, SettingsError, load_settings

WORKER_KILL_TIMEOUT_SECONDS = 30
VERIFY_TIMEOUT_SECONDS = 60


def verify_before_workers(settings: Settings) -> None:
    """With a public key: verify the signature once, in a child process (model_signing's
    import cost stays out of the server and its workers), and hand the workers the result.

    A failed check does not stop the server: the workers start not ready, with the reason.
    """
    os.environ.pop(RESULT_ENV, None)
    if not settings.model_public_key_path:
        return
    completed = subprocess.run(  # nosec B603 - our own module, fixed arguments, no shell
        [sys.executable, "-m", "serving.lineage.verify_signature"],
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT_SECONDS,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        os.environ[RESULT_ENV] = lines[-1]
    else:
        detail = " ".join(completed.stderr.split())[-500:] or f"exit {completed.returncode}"
        failed = SignatureResult("failed", "signature_invalid", f"verification failed: {detail}")
        os.environ[RESULT_ENV] = encode_result(failed)


def main() -> int:
    """Start the server; returns an exit code (2 for invalid settings)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"serving: invalid configuration: {exc}", file=sys.stderr)
        return 2
    from serving.access.auth import CredentialsError, build_verifier

    try:
        checked = build_verifier(settings)  # the keys file or JWKS, before any worker starts
    except CredentialsError as exc:
        print(f"serving: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if checked is not None:
        checked.close()  # a check only (no JWKS refresh here): each worker builds its own
    # Before prometheus_client is imported anywhere: workers inherit the variable.
    from serving.monitoring.metrics import ensure_multiproc_dir

    ensure_multiproc_dir(wipe=True)
    verify_before_workers(settings)
    from serving.lineage.registry_lookup import lookup_before_workers

    lookup_before_workers(settings)  # the registry version, once for every worker

    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    from serving.drain_server import DrainingGranian
    from serving.monitoring.logs import configure_logging, logging_config

    configure_logging(settings.log_level)
    server = DrainingGranian(
        "serving.app:app_from_env",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,  # a declared serving dependency; faster than asyncio's loop
        workers=settings.workers,
        log_level=settings.log_level,  # type: ignore[arg-type]
        log_dictconfig=logging_config(settings.log_level),
        log_access=False,
        respawn_failed_workers=True,
        # HTTP/1.1 only: with "auto" (HTTP/1 or h2c) granian waits for a first byte to pick
        # the protocol, with no timeout, so a connection that never sends one stayed open
        # for ever. Here the header read timeout runs from the moment of accept.
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.header_read_timeout_seconds * 1000))
        ),
        workers_kill_timeout=WORKER_KILL_TIMEOUT_SECONDS,
    )
    server.prepare_drain(settings.shutdown_drain_seconds)  # SIGTERM: /ready 503, then stop
    server.serve_and_clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())

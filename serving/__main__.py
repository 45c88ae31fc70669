"""``python -m serving``: validate settings, reset the metrics dir, serve with granian workers."""

from __future__ import annotations

import sys

from serving.settings import SettingsError, load_settings

WORKER_KILL_TIMEOUT_SECONDS = 30


def main() -> int:
    """Start the server; returns an exit code (2 for invalid settings)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"serving: invalid configuration: {exc}", file=sys.stderr)
        return 2
    from serving.auth import CredentialsError, build_verifier

    try:
        build_verifier(settings)  # the keys file or JWKS, checked before any worker starts
    except CredentialsError as exc:
        print(f"serving: invalid configuration: {exc}", file=sys.stderr)
        return 2
    # Before prometheus_client is imported anywhere: workers inherit the variable.
    from serving.metrics import ensure_multiproc_dir

    ensure_multiproc_dir(wipe=True)

    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings

    from serving.logs import configure_logging, logging_config

    configure_logging(settings.log_level)
    server = Granian(
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
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.header_read_timeout_seconds * 1000))
        ),
        workers_kill_timeout=WORKER_KILL_TIMEOUT_SECONDS,
    )
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

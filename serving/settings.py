"""Typed service settings read from ``DIGITS_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from serving.msgspec_text import split_location

ENV_PREFIX = "DIGITS_"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
OodPolicy = Literal["flag", "reject"]


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the service needs to know at start-up."""

    lock_file_path: str = "dvc.lock"
    model_dir_path: str | None = None
    max_rows: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1 << 30)] = 4 * 1024 * 1024
    host: Annotated[str, msgspec.Meta(min_length=1)] = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    workers: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    log_level: LogLevel = "info"
    drift_window: Annotated[int, msgspec.Meta(ge=10, le=1_000_000)] = 2000
    drift_min_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 200
    drift_psi_threshold: Annotated[float, msgspec.Meta(gt=0.0, le=100.0)] = 0.2
    # flag: every row carries ood/ood_score; reject: a request with a flagged row gets 422.
    ood_policy: OodPolicy = "flag"
    # Slow clients (slowloris): granian closes a connection whose request headers take
    # longer than this; the app answers 408 when a body is not complete in time.
    header_read_timeout_seconds: Annotated[float, msgspec.Meta(ge=0.001, le=60.0)] = 10.0
    body_read_timeout_seconds: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 30.0
    # Signed models: a PEM ECDSA public key; when set, serve only a verified signature.
    model_public_key_path: str | None = None
    model_signature_path: str | None = None

    @property
    def drift_required_rows(self) -> int:
        """Rows the drift window must hold before a score is reported (at most the window)."""
        return min(self.drift_min_rows, self.drift_window)

    @property
    def lock_file(self) -> Path:
        """``DIGITS_LOCK_FILE``: the dvc.lock that pins the served artifacts."""
        return Path(self.lock_file_path)

    @property
    def project_dir(self) -> Path:
        """The directory of the lock file: artifact paths in it are relative to it."""
        return self.lock_file.parent

    @property
    def resolved_model_dir(self) -> Path:
        """``DIGITS_MODEL_DIR``, defaulting to ``models`` next to the lock file."""
        if self.model_dir_path is not None:
            return Path(self.model_dir_path)
        return self.project_dir / "models"


_FIELDS = {
    "lock_file_path": "DIGITS_LOCK_FILE",
    "model_dir_path": "DIGITS_MODEL_DIR",
    "max_rows": "DIGITS_MAX_ROWS",
    "max_body_bytes": "DIGITS_MAX_BODY_BYTES",
    "host": "DIGITS_HOST",
    "port": "DIGITS_PORT",
    "workers": "DIGITS_WORKERS",
    "log_level": "DIGITS_LOG_LEVEL",
    "drift_window": "DIGITS_DRIFT_WINDOW",
    "drift_min_rows": "DIGITS_DRIFT_MIN_ROWS",
    "drift_psi_threshold": "DIGITS_DRIFT_PSI_THRESHOLD",
    "ood_policy": "DIGITS_OOD_POLICY",
    "header_read_timeout_seconds": "DIGITS_HEADER_READ_TIMEOUT",
    "body_read_timeout_seconds": "DIGITS_BODY_READ_TIMEOUT",
    "model_public_key_path": "DIGITS_MODEL_PUBLIC_KEY",
    "model_signature_path": "DIGITS_MODEL_SIGNATURE",
}


_LOWERCASE = {"log_level", "ood_policy"}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``).

    Raises :class:`SettingsError` with a one-line message naming the variable.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for field, var in _FIELDS.items():
        value = env.get(var)
        if value is None or value.strip() == "":
            continue
        raw[field] = value.strip().lower() if field in _LOWERCASE else value.strip()
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        detail, where = split_location(str(exc))
        field = where or ""
        var = _FIELDS.get(field, "DIGITS_*")
        shown = raw.get(field, "")
        raise SettingsError(f"{var}={shown!r}: {detail}") from None

"""Typed service settings read from ``DIGITS_*`` environment variables."""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from serving.http.msgspec_text import split_location
from serving.settings_variables import VARIABLES

ENV_PREFIX = "DIGITS_"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
OodPolicy = Literal["flag", "reject"]
AuthMode = Literal["none", "api-key", "jwt"]
Switch = Literal["on", "off"]
RATE_LIMIT_PATTERN = r"^\s*\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?\s*$"
RateLimit = Annotated[str, msgspec.Meta(pattern=RATE_LIMIT_PATTERN)]
# A duration: whole seconds, or a number with s, m, h or d (``7d``, ``12h``).
DURATION_PATTERN = r"^[1-9][0-9]{0,8}[smhd]?$"
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """Seconds of a duration matching :data:`DURATION_PATTERN`."""
    unit = text[-1] if text[-1] in _DURATION_UNITS else "s"
    return int(text.rstrip("smhd")) * _DURATION_UNITS[unit]


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the service needs to know at start-up."""

    lock_file_path: str = "dvc.lock"
    model_dir_path: str | None = None
    max_rows: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    # /explain runs the model 65 times per row (occlusion): its own, smaller limit.
    explain_max_rows: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100
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
    # SIGTERM: /ready 503 at once, serving goes on this long, then the graceful stop.
    shutdown_drain_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=300.0)] = 0.0
    # Signed models: a PEM ECDSA public key; when set, serve only a verified signature.
    model_public_key_path: str | None = None
    model_signature_path: str | None = None
    # The model version (/model "version": md5 prefix of model.onnx) to serve; any other: refused.
    expected_model_version: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{12}$")] | None = None
    # Access control (serving/access/auth.py). None: not set, which only a loopback bind allows.
    auth: AuthMode | None = None
    api_keys_file: str = "/run/secrets/digits-api-keys"
    # A keys file that cannot be re-read keeps the last good keys; /ready fails after this.
    api_keys_grace_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=86400.0)] = 60.0
    jwt_jwks: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=300.0)] = 30.0
    jwt_jwks_refresh_seconds: Annotated[float, msgspec.Meta(ge=10.0, le=86400.0)] = 300.0
    jwt_max_lifetime_seconds: Annotated[float, msgspec.Meta(gt=0.0, le=2592000.0)] = 86400.0
    # JWKS URL keys older than this (no successful refresh): tokens refused, /ready fails.
    jwt_jwks_max_age_seconds: Annotated[float, msgspec.Meta(ge=10.0, le=604800.0)] = 3600.0
    # /metrics needs the read scope: None (unset) means yes whenever DIGITS_AUTH is not none.
    metrics_auth: bool | None = None
    # A rendered /metrics page is reused for this long (0: only by concurrent scrapes).
    metrics_cache_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=60.0)] = 0.0
    # Swagger UI + OpenAPI document, and the demo page. None (unset): on without auth, off
    # with DIGITS_AUTH=api-key|jwt (a browser cannot send a bearer to open them; set "on"
    # to publish them anyway: they are public then, the API behind them still needs keys).
    docs: Switch | None = None
    demo: Switch | None = None
    # Rate limits (serving/access/ratelimit.py), e.g. "600/minute"; None: no limit.
    rate_limit: RateLimit | None = None
    explain_rate_limit: RateLimit | None = None
    rate_limit_redis_url: str | None = None
    # Decision records (serving/decisions); None: not written.
    decision_log_dir: str | None = None
    decision_log_inputs: bool = False
    decision_flush_seconds: Annotated[float, msgspec.Meta(ge=0.01, le=60.0)] = 0.5
    decision_log_max_bytes: Annotated[int, msgspec.Meta(ge=4096, le=1 << 34)] = 64 * 1024 * 1024
    # Key of the records' input fingerprint (HMAC-SHA256); None: a plain sha256. Never logged.
    decision_hash_key: Annotated[str, msgspec.Meta(min_length=16)] | None = None
    # POST /feedback (serving/feedback): needs decision records. The decisions it resolves
    # are indexed for this long (Redis: DIGITS_RATE_LIMIT_REDIS_URL's server, shared by
    # every worker and replica; else each worker's memory, at most feedback_index_size).
    feedback: Switch = "off"
    feedback_window: Annotated[str, msgspec.Meta(pattern=DURATION_PATTERN)] = "7d"
    feedback_index_size: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000

    @property
    def auth_mode(self) -> AuthMode:
        """``DIGITS_AUTH``; unset means ``none`` (allowed on a loopback bind only)."""
        return self.auth or "none"

    @property
    def docs_on(self) -> bool:
        """Swagger UI and the OpenAPI document are served: ``DIGITS_DOCS``, by default on
        only when ``DIGITS_AUTH`` is ``none``."""
        return self.auth_mode == "none" if self.docs is None else self.docs == "on"

    @property
    def demo_on(self) -> bool:
        """The demo page is served: ``DIGITS_DEMO``, by default on only when ``DIGITS_AUTH``
        is ``none``."""
        return self.auth_mode == "none" if self.demo is None else self.demo == "on"

    @property
    def metrics_need_read(self) -> bool:
        """Whether ``/metrics`` needs the ``read`` scope: ``DIGITS_METRICS_AUTH``, by default
        on whenever ``DIGITS_AUTH`` is not ``none``."""
        if self.metrics_auth is None:
            return self.auth_mode != "none"
        return self.metrics_auth

    @property
    def decision_hash_key_bytes(self) -> bytes | None:
        """``DIGITS_DECISION_HASH_KEY`` as the HMAC key (UTF-8), or None."""
        return None if self.decision_hash_key is None else self.decision_hash_key.encode()

    def __repr__(self) -> str:
        """Every setting, secrets masked: settings may end up in a log, a key never."""
        shown = (
            f"{name}={'<hidden>' if name in SECRET_FIELDS and value is not None else repr(value)}"
            for name, value in msgspec.structs.asdict(self).items()
        )
        return f"Settings({', '.join(shown)})"

    @property
    def feedback_window_seconds(self) -> int:
        """``DIGITS_FEEDBACK_WINDOW`` in seconds: how long a decision can get feedback."""
        return duration_seconds(self.feedback_window)

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


_FIELDS = {field: variable.name for field, variable in VARIABLES.items()}
# DIGITS_* names read elsewhere in the project, never by the service's settings: not typos.
NOT_SETTINGS = {
    "DIGITS_SIGNATURE_RESULT": "the launcher's signature verdict for its workers",
    "DIGITS_REGISTRY_RESULT": "the launcher's registry lookup for its workers",
    "DIGITS_DRAIN_FILE": "the launcher's drain marker for its workers (serving/drain.py)",
    "DIGITS_IMAGE": "compose.yaml: the image to run",
    "DIGITS_BIND": "compose.yaml: the host address of the published port",
    "DIGITS_HOST_PORT": "compose.yaml: the host port",
    "DIGITS_API_KEYS_HOST_FILE": "compose.yaml: the keys file on the host",
    "DIGITS_METRICS_TOKEN_HOST_FILE": "compose.yaml: Prometheus's token file on the host",  # nosec B105 - a name
    "DIGITS_REDIS_PASSWORD": "compose.yaml: the password of its Redis",  # nosec B105 - a name
    "DIGITS_PROJECT_DIR": "bench/baseline_fastapi.py: the project the baseline serves",
    "DIGITS_TEST_IMAGE": "tests/integration/test_container.py: the image under test",
}
# Values never shown, not even in an error about them.
SECRET_FIELDS = frozenset({"decision_hash_key"})


_LOWERCASE = {
    "log_level",
    "ood_policy",
    "auth",
    "docs",
    "demo",
    "metrics_auth",
    "decision_log_inputs",
    "expected_model_version",
    "feedback",
    "feedback_window",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_access(settings: Settings) -> Settings:
    """Secure by default: no DIGITS_AUTH is ``none`` on loopback only; each mode's inputs."""
    if settings.auth is None and not is_loopback(settings.host):
        raise SettingsError(
            f"DIGITS_AUTH is not set and DIGITS_HOST={settings.host!r} is not a loopback "
            "address: set DIGITS_AUTH=api-key, jwt, or none (only behind an "
            "authenticating gateway)"
        )
    needed = {
        "api-key": (),
        "jwt": ("jwt_jwks", "jwt_issuer", "jwt_audience"),
        "none": (),
    }[settings.auth_mode]
    for field in needed:
        if getattr(settings, field) is None:
            raise SettingsError(f"{_FIELDS[field]} is required with DIGITS_AUTH={settings.auth}")
    if settings.jwt_jwks_max_age_seconds < settings.jwt_jwks_refresh_seconds:
        raise SettingsError(
            f"DIGITS_JWT_JWKS_MAX_AGE={settings.jwt_jwks_max_age_seconds:g} is shorter than "
            f"DIGITS_JWT_JWKS_REFRESH={settings.jwt_jwks_refresh_seconds:g}: the keys would "
            "go stale between two refreshes"
        )
    if settings.metrics_auth and settings.auth_mode == "none":
        raise SettingsError("DIGITS_METRICS_AUTH=true needs DIGITS_AUTH=api-key or jwt")
    if settings.feedback == "on" and settings.decision_log_dir is None:
        raise SettingsError(
            "DIGITS_FEEDBACK=on needs DIGITS_DECISION_LOG_DIR: feedback labels recorded "
            "decisions, and its records are written beside them"
        )
    return settings


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """A ``DIGITS_*`` variable the service does not know is a typo until shown otherwise:
    ``DIGITS_RATE_LIMTI=2/minute`` ignored would leave the service unlimited."""
    known = set(_FIELDS.values())
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in known and name not in NOT_SETTINGS:
            # Compared without the prefix every name shares.
            suffixes = sorted(known_name[len(ENV_PREFIX) :] for known_name in known)
            close = difflib.get_close_matches(name[len(ENV_PREFIX) :], suffixes, n=1, cutoff=0.7)
            hint = (
                f"did you mean {ENV_PREFIX}{close[0]}?"
                if close
                else "the settings are listed in docs/configuration.md"
            )
            raise SettingsError(f"{name} is not a setting of the service: {hint}")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``).

    Raises :class:`SettingsError` with a one-line message naming the variable, also for a
    ``DIGITS_*`` variable that is no setting (with the closest known name).
    """
    env = os.environ if environ is None else environ
    _refuse_unknown(env)
    raw: dict[str, str] = {}
    for field, var in _FIELDS.items():
        value = env.get(var)
        if value is None or value.strip() == "":
            continue
        raw[field] = value.strip().lower() if field in _LOWERCASE else value.strip()
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        detail, where = split_location(str(exc))
        field = where or ""
        var = _FIELDS.get(field, "DIGITS_*")
        shown = "<hidden>" if field in SECRET_FIELDS else repr(raw.get(field, ""))
        raise SettingsError(f"{var}={shown}: {detail}") from None
    return _check_access(settings)

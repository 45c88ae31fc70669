"""Metrics of access control, rate limits and decision records (bounded labels only).

Client ids are never label values: reasons, route templates and errno names are fixed
sets.
"""

from __future__ import annotations

import errno
from typing import Any

from serving.monitoring.family import unregistered

AUTH_FAILURE_REASONS = (
    "missing",
    "malformed",
    "invalid",
    "expired",
    "algorithm",
    "type",
    "lifetime",
    "unknown_key",
    "insufficient_scope",
    "jwks_stale",
)
WRITE_ERROR_REASONS = ("ENOSPC", "EROFS", "EACCES", "EDQUOT", "EIO", "EFBIG", "ELOOP")


def write_error_reason(exc: OSError) -> str:
    """A bounded label for a failed write: the errno name if it is a known one, else other."""
    name = errno.errorcode.get(exc.errno or 0, "")
    return name if name in WRITE_ERROR_REASONS else "other"


class AccessMetrics:
    def __init__(self, counter_kind: Any, gauge_kind: Any) -> None:
        counter, gauge = unregistered(counter_kind), unregistered(gauge_kind)
        self.auth_failures = counter(
            "auth_failures_total",
            "Requests refused by authentication (401) or authorization (403), by reason.",
            ["reason"],
        )
        self.rate_limited = counter(
            "rate_limited_requests_total",
            "Requests refused with 429 by the rate limit, by route template.",
            ["route"],
        )
        self.rate_limit_backend_errors = counter(
            "rate_limit_backend_errors_total",
            "Rate-limit checks the shared store (Redis) could not answer; the worker's own "
            "memory limits were applied instead (fail-open to per-worker limits).",
        )
        self.decisions_written = counter(
            "decision_records_written_total", "Decision records written to disk."
        )
        self.decision_write_errors = counter(
            "decision_log_write_errors_total",
            "Failed decision-log writes, by errno name (records are kept and retried).",
            ["reason"],
        )
        self.decisions_dropped = counter(
            "decision_records_dropped_total",
            "Decision records dropped: the pending buffer was full while writes failed, or a "
            "record could not be encoded.",
        )
        self.decision_log_healthy = gauge(
            "decision_log_healthy",
            "0 while this worker's last decision-log write failed (alert on min == 0).",
            multiprocess_mode="livemin",
        )
        self.decision_log_healthy.set(1)
        self.credentials_healthy = gauge(
            "auth_credentials_healthy",
            "0 while this worker cannot trust its credentials: the keys file has failed to "
            "re-read for DIGITS_API_KEYS_GRACE, or the JWKS is older than "
            "DIGITS_JWT_JWKS_MAX_AGE (alert on min == 0; /ready says which).",
            multiprocess_mode="livemin",
        )
        self.credentials_healthy.set(1)

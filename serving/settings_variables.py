"""The service's environment variables: each setting's name and meaning, written once.

:mod:`serving.settings` reads them (with the defaults of its ``Settings`` struct), refuses a
``DIGITS_*`` name that is not here, and ``python -m tools.configuration_doc`` writes
docs/configuration.md from this table: the README links there instead of copying it.
"""

from __future__ import annotations

from typing import NamedTuple


class Variable(NamedTuple):
    """A setting's environment variable, its default as the documents show it, and what it
    does."""

    name: str
    default: str
    meaning: str


VARIABLES = {
    "lock_file_path": Variable(
        "DIGITS_LOCK_FILE",
        "`dvc.lock`",
        "the lock that pins the served artifacts; their paths resolve from its directory",
    ),
    "model_dir_path": Variable(
        "DIGITS_MODEL_DIR",
        "`models` next to the lock",
        "where `model.onnx` and `model.json` are read",
    ),
    "max_rows": Variable(
        "DIGITS_MAX_ROWS",
        "1000",
        "samples per request (more: 413)",
    ),
    "explain_max_rows": Variable(
        "DIGITS_EXPLAIN_MAX_ROWS",
        "100",
        "samples per `/explain` request (occlusion runs the model 65 times a row; more: 413; "
        "never above `DIGITS_MAX_ROWS`); the explanation runs in a worker thread, off the "
        "event loop",
    ),
    "max_body_bytes": Variable(
        "DIGITS_MAX_BODY_BYTES",
        "4194304",
        "request body limit (more: 413)",
    ),
    "host": Variable(
        "DIGITS_HOST",
        "`127.0.0.1`",
        "address to bind (a non-loopback address needs `DIGITS_AUTH`)",
    ),
    "port": Variable(
        "DIGITS_PORT",
        "8000",
        "port to bind",
    ),
    "workers": Variable(
        "DIGITS_WORKERS",
        "1",
        "worker processes",
    ),
    "log_level": Variable(
        "DIGITS_LOG_LEVEL",
        "`info`",
        "log level of the JSON logs",
    ),
    "drift_window": Variable(
        "DIGITS_DRIFT_WINDOW",
        "2000",
        "rows in each worker's drift window",
    ),
    "drift_min_rows": Variable(
        "DIGITS_DRIFT_MIN_ROWS",
        "200",
        "rows needed before a drift score is reported",
    ),
    "drift_psi_threshold": Variable(
        "DIGITS_DRIFT_PSI_THRESHOLD",
        "0.2",
        "per-pixel PSI above which a pixel counts as drifted",
    ),
    "ood_policy": Variable(
        "DIGITS_OOD_POLICY",
        "`flag`",
        "`flag`: every answered row carries `ood` and `ood_score`; `reject`: a request with "
        "any flagged row gets 422 `out_of_distribution` (naming the rows)",
    ),
    "header_read_timeout_seconds": Variable(
        "DIGITS_HEADER_READ_TIMEOUT",
        "10",
        "seconds a client may take, from the moment its connection is accepted, to send the "
        "request headers; then granian closes the connection (slowloris), including one that "
        "never sends a byte. The server speaks HTTP/1.1 only (no h2c), which is what makes "
        "the timeout run from the accept",
    ),
    "shutdown_drain_seconds": Variable(
        "DIGITS_SHUTDOWN_DRAIN_SECONDS",
        "0",
        "seconds between SIGTERM and the graceful stop: `/ready` answers 503 `draining` at "
        "once while every other route keeps serving, so a load balancer that checks `/ready` "
        "takes the instance out first; then the workers stop accepting and finish their "
        "in-flight requests. Set it to the balancer's time to notice (check interval x "
        "failures); SIGINT stops at once. See docs/operations.md (rolling restart)",
    ),
    "body_read_timeout_seconds": Variable(
        "DIGITS_BODY_READ_TIMEOUT",
        "30",
        "seconds a request body may take to arrive, from the first read; then 408 and the "
        "connection is closed",
    ),
    "model_public_key_path": Variable(
        "DIGITS_MODEL_PUBLIC_KEY",
        "unset",
        "PEM ECDSA public key: when set, the service is ready only if the signature bundle "
        "verifies over exactly the served files (503 `signature_missing` / "
        "`signature_invalid` otherwise)",
    ),
    "model_signature_path": Variable(
        "DIGITS_MODEL_SIGNATURE",
        "`model.sig` in the model dir",
        "the signature bundle (`make sign KEY=private.pem` writes it)",
    ),
    "expected_model_version": Variable(
        "DIGITS_EXPECTED_MODEL_VERSION",
        "unset",
        "the model version to serve (`/model` `version`: the first 12 hex digits of "
        "`model.onnx`'s md5); any other, signed or not, is refused (503 `version_mismatch`), "
        "so an older signed release cannot be replayed",
    ),
    "auth": Variable(
        "DIGITS_AUTH",
        "`none` on a loopback bind; **required** otherwise",
        "`api-key`, `jwt` or `none` (only behind a gateway that authenticates); see [Access "
        "control](deployment.md#access-control)",
    ),
    "api_keys_file": Variable(
        "DIGITS_API_KEYS_FILE",
        "`/run/secrets/digits-api-keys`",
        "keys file of `python -m serving.access.keys` (hashes only); re-read within a second "
        "when it changes",
    ),
    "api_keys_grace_seconds": Variable(
        "DIGITS_API_KEYS_GRACE",
        "60",
        "seconds a deleted or unreadable keys file is tolerated (last good keys kept) before "
        "`/ready` answers 503 `keys_file_unreadable`",
    ),
    "jwt_jwks": Variable(
        "DIGITS_JWT_JWKS",
        "—",
        "`DIGITS_AUTH=jwt`: the JWKS, a file path or an `https://` URL",
    ),
    "jwt_issuer": Variable(
        "DIGITS_JWT_ISSUER",
        "—",
        "`DIGITS_AUTH=jwt`: the `iss` every token must carry",
    ),
    "jwt_audience": Variable(
        "DIGITS_JWT_AUDIENCE",
        "—",
        "`DIGITS_AUTH=jwt`: the `aud` every token must carry",
    ),
    "jwt_leeway_seconds": Variable(
        "DIGITS_JWT_LEEWAY",
        "30",
        "seconds of clock skew allowed on `exp`",
    ),
    "jwt_jwks_refresh_seconds": Variable(
        "DIGITS_JWT_JWKS_REFRESH",
        "300",
        "seconds between refreshes of a JWKS URL",
    ),
    "jwt_max_lifetime_seconds": Variable(
        "DIGITS_JWT_MAX_LIFETIME",
        "86400",
        "longest token lifetime accepted (`exp` - `iat`), seconds",
    ),
    "jwt_jwks_max_age_seconds": Variable(
        "DIGITS_JWT_JWKS_MAX_AGE",
        "3600",
        "seconds a JWKS URL's keys are trusted after the last good fetch; then tokens get 401"
        " and `/ready` 503 `jwks_stale`",
    ),
    "metrics_auth": Variable(
        "DIGITS_METRICS_AUTH",
        "on when `DIGITS_AUTH` is not `none`",
        "`/metrics` needs the `read` scope (Prometheus sends a bearer token); `false` makes "
        "it public",
    ),
    "metrics_cache_seconds": Variable(
        "DIGITS_METRICS_CACHE_SECONDS",
        "0",
        "reuse a rendered `/metrics` page for this long (renders run off the event loop; "
        "concurrent scrapes always share one)",
    ),
    "docs": Variable(
        "DIGITS_DOCS",
        "`on` when `DIGITS_AUTH` is `none`, else `off`",
        "`off` removes Swagger UI (`/docs`) and the OpenAPI document (404 with a key, 401 "
        "without: an undeclared path); `on` serves them, public (a browser cannot send a "
        "bearer to open them; the operations in them still need keys)",
    ),
    "demo": Variable(
        "DIGITS_DEMO",
        "`on` when `DIGITS_AUTH` is `none`, else `off`",
        "`off` removes the demo page (`/` and its assets); `on` serves it, public: with auth "
        "on it asks for an API key and sends it with each request",
    ),
    "rate_limit": Variable(
        "DIGITS_RATE_LIMIT",
        "none",
        "e.g. `600/minute` per client id (per address without auth), on every non-public route",
    ),
    "explain_rate_limit": Variable(
        "DIGITS_EXPLAIN_RATE_LIMIT",
        "`DIGITS_RATE_LIMIT`",
        "`/explain`'s own, stricter limit (repeated explanations reveal the model)",
    ),
    "rate_limit_redis_url": Variable(
        "DIGITS_RATE_LIMIT_REDIS_URL",
        "—",
        "`redis://host:6379/0`: limits (and, with `DIGITS_FEEDBACK=on`, the feedback index) "
        "shared by every worker and replica; unset: per worker",
    ),
    "decision_log_dir": Variable(
        "DIGITS_DECISION_LOG_DIR",
        "—",
        "directory of the decision records (one JSON-lines file per worker); unset: none written",
    ),
    "decision_log_inputs": Variable(
        "DIGITS_DECISION_LOG_INPUTS",
        "`false`",
        "`true`: records include the raw pixels (personal data: see docs/deployment.md)",
    ),
    "decision_hash_key": Variable(
        "DIGITS_DECISION_HASH_KEY",
        "unset",
        "secret (16+ characters, the value itself, never logged): records fingerprint their "
        "inputs with HMAC-SHA256 under it (`input_hash: hmac-sha256`); unset: a plain sha256,"
        " which links equal inputs across records and can be guessed for small inputs",
    ),
    "decision_flush_seconds": Variable(
        "DIGITS_DECISION_FLUSH_SECONDS",
        "0.5",
        "batch write interval of the decision records (bounds the loss on SIGKILL), seconds",
    ),
    "decision_log_max_bytes": Variable(
        "DIGITS_DECISION_LOG_MAX_BYTES",
        "67108864",
        "size at which a decision-record file is rotated, bytes",
    ),
    "feedback": Variable(
        "DIGITS_FEEDBACK",
        "`off`",
        "`on`: `POST /feedback` takes the true labels of recorded decisions (needs "
        "`DIGITS_DECISION_LOG_DIR`; scope `feedback`); see "
        "[deployment.md](deployment.md#ground-truth-feedback)",
    ),
    "feedback_window": Variable(
        "DIGITS_FEEDBACK_WINDOW",
        "`7d`",
        "how long a decision takes feedback (`600`, `30m`, `12h`, `7d`)",
    ),
    "feedback_index_size": Variable(
        "DIGITS_FEEDBACK_INDEX_SIZE",
        "100000",
        "decisions each worker keeps in memory for feedback when Redis is not configured",
    ),
}

"""Structured JSON-lines logging with the current request id (and the client's own)."""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import msgspec

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The client's own X-Request-ID (serving.http.observe), logged beside the service's id.
client_request_id_var: ContextVar[str | None] = ContextVar("client_request_id", default=None)
_ENCODER = msgspec.json.Encoder()
_RESERVED = frozenset(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id (and the
    client's own request id, if it sent one) and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            payload["request_id"] = request_id
        client_request_id = client_request_id_var.get()
        if client_request_id is not None:
            payload["client_request_id"] = client_request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(payload).decode("utf-8", "replace")


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict that sends everything as JSON to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": sys.stderr}
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "_granian": {"level": level.upper(), "propagate": True},
            "granian.access": {"level": level.upper(), "propagate": True},
        },
    }


def configure_logging(level: str) -> None:
    """Install the JSON handler on the root logger (idempotent)."""
    import logging.config

    logging.config.dictConfig(logging_config(level))

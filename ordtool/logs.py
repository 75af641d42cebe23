"""Logging for the services and the CLI: one line per record, text or JSON, never a secret.

Development gets readable text lines, production JSON lines (``settings.log_format``). Every
line carries a UTC timestamp with ``Z``, the level, the logger, the message and the request id
of the HTTP request being served (a context variable the web middleware sets). A filter on
the handler rewrites anything that looks like a bearer token, a WebSocket ticket or a password
inside a URL before it is written, whoever logged it.

uvicorn's own access log is switched off: it prints the raw path with its query string. The
web middleware writes the access line instead (method, path without query, status, duration).
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from contextvars import ContextVar
from typing import Any

from ordtool.config import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("ordtool_request_id", default=None)

# Fields the access log passes as ``extra``; the JSON formatter writes them as keys.
ACCESS_FIELDS = ("method", "path", "status", "duration_ms")

# Libraries whose chatter drowns the service's own lines. httpx logs every request's full URL
# at INFO, query string included, so it only speaks up for warnings.
QUIET_LOGGERS = {"httpx": "WARNING", "httpcore": "WARNING", "asyncio": "WARNING", "pika": "INFO"}

# (a cheap clue that must be in the line, the pattern, its replacement): the regular
# expressions run only on lines holding their clue, so ordinary lines cost a few substring
# tests rather than three scans (this runs for every access line).
_SECRETS = (
    ("bearer", re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), r"\1[redacted]"),
    ("ticket=", re.compile(r"(?i)\b(ticket=)[^&\s\"',;]+"), r"\1[redacted]"),
    # scheme://user:password@host -> scheme://user:[redacted]@host
    ("://", re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@"), r"\1[redacted]@"),
)


def redact(text: str) -> str:
    folded = text.lower()
    for clue, pattern, replacement in _SECRETS:
        if clue in folded:
            text = pattern.sub(replacement, text)
    return text


def current_request_id() -> str | None:
    return REQUEST_ID.get()


class RequestIdFilter(logging.Filter):
    """Stamp each record with the request id of the request being served ('-' outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = REQUEST_ID.get() or "-"
        return True


class RedactSecrets(logging.Filter):
    """Redact the rendered message and any traceback text before a formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def utc_timestamp(created: float) -> str:
    """``2026-12-03T17:30:18.866Z``: UTC whatever the process's TZ."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_timestamp(record.created)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id_or_none(record),
        }
        line.update({f: getattr(record, f) for f in ACCESS_FIELDS if hasattr(record, f)})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def _request_id_or_none(record: logging.LogRecord) -> str | None:
    request_id = getattr(record, "request_id", None)
    return None if request_id in (None, "-") else str(request_id)


def uvicorn_log_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``: uvicorn's loggers
    go through ordtool's handler, its access log is off (run it with ``access_log=False``
    too; the middleware logs requests without query strings)."""
    formatter = JsonFormatter if settings.log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "redact": {"()": RedactSecrets},
        },
        "formatters": {"line": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["request_id", "redact"],
            }
        },
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": "INFO"},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": "INFO"},
            # No handler and no propagation: uvicorn sees hasHandlers() False and skips it.
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
            **{name: {"level": level} for name, level in QUIET_LOGGERS.items()},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Send every logger through one redacting handler in the configured format. Safe to call
    again (the ASGI factories call it after uvicorn configured its own loggers)."""
    logging.config.dictConfig(uvicorn_log_config(settings))

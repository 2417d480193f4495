"""Log set-up: JSON lines for log collectors, text on a terminal; RQ's routine chatter below INFO.

A decision is logged as a short constant message plus fields (`event(log, "webhook answered",
source=..., key=...)`): JSON puts each field in its own member, text appends `name=value` with
untrusted values quoted, so no value can forge a line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import ConfigError

FORMATS = ("auto", "json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+-]{1,200}$")  # shown as is; anything else is quoted


def configure_from_env(environ: Mapping[str, str]) -> None:
    """LOG_FORMAT (auto, json, text) and LOG_LEVEL; an invalid value is a ConfigError."""
    log_format = (environ.get("LOG_FORMAT") or "auto").lower()
    level = (environ.get("LOG_LEVEL") or "INFO").upper()
    if log_format not in FORMATS:
        raise ConfigError(f"LOG_FORMAT must be auto, json or text, got {log_format!r}")
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    configure(log_format, level)


def configure(log_format: str = "auto", level: str = "INFO") -> None:
    """Send every log line to stderr in one format (called once per process)."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter(TEXT_FORMAT))
    if logging.getLevelName(level) > logging.DEBUG:
        handler.addFilter(_quiet_rq)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


def _quiet_rq(record: logging.LogRecord) -> bool:
    """RQ logs every job start and end and every registry cleaning (each 10 s) at INFO: below
    WARNING its lines show only at LOG_LEVEL=DEBUG (whatever levels RQ gives its loggers)."""
    return record.levelno >= logging.WARNING or not record.name.startswith("rq.")


def event(logger: logging.Logger, message: str, /, **fields: Any) -> None:
    """Log one decision at INFO: a constant message and its fields (any names)."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(message, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the decision's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with the decision's fields appended as name=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", {})
        shown = " ".join(f"{name}={_shown(value)}" for name, value in fields.items())
        return f"{line} {shown}" if shown else line


def _shown(value: Any) -> str:
    if isinstance(value, str) and _PLAIN.match(value):
        return value
    return json.dumps(value, default=str)  # ASCII: no U+2028 or the like reaches a terminal

"""Log lines of every l0sweep process: human-readable by default, or one JSON object per line.

``L0SWEEP_LOG_FORMAT=json`` (``Settings.log_format``) makes the API, the runner and the
trainables write one JSON object per line::

    {"ts": "2026-11-28T10:00:00.123Z", "level": "INFO", "logger": "workers.tune.runner",
     "message": "claimed sweep 3", "sweep_id": 3, "trial_id": null, "pack": null}

Every line carries ``sweep_id``, ``trial_id`` and ``pack`` (null where they do not apply),
taken from :func:`log_context` (a context variable, so per thread and per task) unless the
call passes them in ``extra``; other ``extra`` fields and the traceback are added as keys.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal

__all__ = [
    "CONTEXT_FIELDS",
    "LOG_FORMATS",
    "ContextFilter",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "active_log_format",
    "configure_logging",
    "log_context",
    "resolve_log_format",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
#: The ids every runner and trial line carries.
CONTEXT_FIELDS = ("sweep_id", "trial_id", "pack")
_ENV = "L0SWEEP_LOG_FORMAT"

_context: ContextVar[dict[str, Any] | None] = ContextVar("l0sweep_log_context", default=None)
_active: LogFormat | None = None  # what configure_logging last installed in this process
# Attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``sweep_id=3``) to every line logged inside the block."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Puts the :func:`log_context` fields on each record (``extra`` fields win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get() or {}
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        for name, value in context.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, the ids, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            line[name] = getattr(record, name, None)
        for name, value in vars(record).items():
            # Private attributes are other libraries' (Ray stamps every record with one).
            if name not in _RECORD_ATTRS and name not in line and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # One line whatever the message holds: json.dumps escapes newlines.
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The human-readable default, with the ids appended when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [
            f"{name.removesuffix('_id')}={value}"
            for name in CONTEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        ]
        if not ids:
            return text
        head, sep, tail = text.partition("\n")  # after the message, before a traceback
        return f"{head} [{' '.join(ids)}]{sep}{tail}"


def active_log_format() -> LogFormat | None:
    """The format :func:`configure_logging` installed in this process (None: not called)."""
    return _active


def resolve_log_format(fmt: str | None = None) -> LogFormat:
    """``fmt``, else ``$L0SWEEP_LOG_FORMAT``, else ``text``; anything else is an error."""
    value = (fmt or os.environ.get(_ENV) or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"{_ENV} must be one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return value


def configure_logging(
    fmt: str | None = None, *, level: int = logging.WARNING, stream: IO[str] | None = None
) -> LogFormat:
    """Send every log record of this process to ``stream`` (stderr) in ``fmt``.

    Replaces the handler a previous call installed (idempotent). With ``json``, uvicorn's
    own loggers are routed through it too, so the API's access and error lines are JSON.

    Args:
        fmt: ``text`` or ``json``; None reads ``L0SWEEP_LOG_FORMAT`` (default ``text``).
        level: The root logger's level.
        stream: Where lines go (default ``sys.stderr``).

    Returns:
        The format in use.
    """
    chosen = resolve_log_format(fmt)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_l0sweep", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._l0sweep = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    global _active
    _active = chosen
    if chosen == "json":
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    return chosen

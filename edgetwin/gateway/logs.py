"""Structured logs: human text by default, one JSON object per line with ``[log] format = "json"``.

Every log call that matters carries an ``event`` name and its fields through ``extra``::

    log.info("reading stored", extra={"event": "reading_stored", "device": "sim-cgm", "mg_dl": 123})

The JSON form has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and those fields,
so a log shipper or ``jq`` can filter on them. A log file is reopened when logrotate moves it
(``WatchedFileHandler``); under systemd the default (standard error) goes to the journal.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in _fields(record).items():
            doc[k] = _jsonable(v)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, allow_nan=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        t = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        extra = " ".join(f"{k}={_jsonable(v)}" for k, v in _fields(record).items())
        line = f"{t}Z {record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        if extra:
            line += f"  [{extra}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str = "text", level: str = "info", file: Path | None = None) -> logging.Handler:
    """Send the ``edgetwin``, ``devices``, ``sync`` (and ``bumble``, errors only) loggers to one
    handler; returns it."""
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("edgetwin", "devices", "sync", "bumble"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if getattr(h, "_edgetwin", False):
                lg.removeHandler(h)
                h.close()
        setattr(handler, "_edgetwin", True)  # noqa: B010 (marks our handler for reconfiguration)
        lg.addHandler(handler)
        # bumble (the simulated radio's stack) is chatty at warning level about simulated links
        lg.setLevel("ERROR" if name == "bumble" else level.upper())
        lg.propagate = False
    return handler

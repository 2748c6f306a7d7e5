"""The server's log lines: plain text, or one JSON object a line (``--log-json``).

Connection lines (``cmcstream.connections``: one when a connection opens, is
refused or closes) carry their fields in ``extra={"fields": {...}}``; the text
format has them in the message already, the JSON format puts them at the top
level of the object, next to ``ts``, ``level``, ``logger`` and ``msg``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final

import msgspec

__all__ = ["CONNECTIONS", "JsonFormatter", "setup_logging"]

CONNECTIONS: Final = "cmcstream.connections"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(document).decode()


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`setup_logging` installs."""


def _iso_utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def setup_logging(level: str, *, json: bool = False, connections: bool = True) -> None:
    """Log to stderr at ``level``; connection lines at info whatever the level, unless
    ``connections`` is off.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        json: one JSON object a line instead of text.
        connections: log one line per connection opened, refused and closed.
    """
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    # Replaces its own handler of an earlier call, and only that.
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handler)] + [handler]
    root.setLevel(level.upper())
    logging.getLogger(CONNECTIONS).setLevel(logging.INFO if connections else logging.WARNING)

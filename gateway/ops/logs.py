"""Logs as one JSON object per line (ops.log_format = "json"), for a log shipper.

Fields: time, level, logger, message, and any `extra` the caller gives (e.g. idempotency_key,
cycle). Messages carry ids and codes, never secrets: configuration values that are secrets are
hidden from repr, and nothing logs a DSN or a password.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(log_format: str, level: str = "INFO", kafka_client_level: str = "CRITICAL") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(kafka_client_level)
    # Python's warnings (a library's deprecation, an unclosed resource) through the same
    # handler: with JSON chosen, every line on stderr is JSON.
    logging.captureWarnings(True)

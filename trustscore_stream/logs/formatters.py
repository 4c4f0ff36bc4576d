"""Log line formats: one JSON object per line (the default for workers), or readable text.

Every line has `timestamp` (RFC 3339, UTC, milliseconds), `level`, `component`
(logs/components.py), `worker`, `logger` and `message`; fields passed with `extra=` (the
correlation ids `event_id` / `event_ids`, `stage`, `entity`, …) follow, then `exc_info` for
an exception. The finished line goes through the redactor (logs/redaction.py).

The JSON formatter is python-json-logger's orjson formatter, which merges extra fields,
formats exceptions and stack traces and serialises what orjson alone cannot (bytes,
exceptions, enums: a Faust or aiokafka log argument can be anything). Measured by
`bench/log_format.py`: a few µs per line, which only matters for lines that are written;
the hot stages write per-event lines only at DEBUG and check that once per batch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.orjson import OrjsonFormatter

from trustscore_stream.logs.components import component_of
from trustscore_stream.logs.redaction import Redactor

# LogRecord attributes that are not extra fields (plus what formatting adds to a record).
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {"message", "asctime"}


def rfc3339_utc(created: float) -> str:
    """`2026-11-22T10:15:03.120Z` for a record's `created` time (time.time() seconds)."""
    seconds, millis = divmod(round(created * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class _Components:
    """component_of, cached per logger name (a handful of names, looked up per line)."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = component_of(name)
        return found


class JsonFormatter(OrjsonFormatter):
    def __init__(self, worker: str, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.worker = worker
        self.redact = redactor or Redactor()
        self.component = _Components()

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = rfc3339_utc(record.created)
        log_data["level"] = record.levelname
        log_data["component"] = self.component(record.name)
        log_data["worker"] = self.worker
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data.update(message_dict)  # a dict logged as the message; exc_info, stack_info
        merge_record_extra(record, log_data, reserved=_NOT_EXTRA)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class TextFormatter(logging.Formatter):
    """`2026-11-22T10:15:03.120Z INFO scoring [host:6066] message key=value …`."""

    def __init__(self, worker: str, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.worker = worker
        self.redact = redactor or Redactor()
        self.component = _Components()

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        line = (
            f"{rfc3339_utc(record.created)} {record.levelname} {self.component(record.name)} "
            f"[{self.worker}] {record.message}"
        )
        extra = {k: v for k, v in record.__dict__.items() if k not in _NOT_EXTRA}
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return self.redact(line)

"""Dead-letter records in the format of CONTRACT §2 ("Bad input")."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter(
    *,
    reason: str,
    detail: str,
    raw: bytes,
    topic: str,
    partition: int | None,
    offset: int | None,
    at: datetime,
    index: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A DLQ record: the reason, a human detail, and the original bytes, never lost."""
    record: dict[str, Any] = {"reason": reason, "detail": detail}
    try:
        record["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        record["raw"] = base64.b64encode(raw).decode("ascii")
        record["raw_encoding"] = "base64"
    record.update(topic=topic, partition=partition, offset=offset, at=rfc3339(at))
    if index is not None:
        record["index"] = index
    record.update(extra)
    return record

"""Dead-letter records in the format of CONTRACT §2 ("Bad input")."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The raw bytes a dead letter may carry as JSON text: the letter must fit in one record, and
# producers refuse records over 1 MiB (Kafka's default limit); the rest of a letter is small.
MAX_RAW_JSON_BYTES = 1_000_000


def raw_fields(raw: bytes, limit: int = MAX_RAW_JSON_BYTES) -> dict[str, Any]:
    """`raw` as UTF-8 text, or as base64 when it is not UTF-8 or when JSON escaping would make
    the text bigger than base64 (control characters take 6 bytes each: a 700 KB record of
    them was a 4 MB letter, which the producer refused, and the worker crashed on it again
    after every restart). A record near the broker's limit can still be too big as base64
    (4/3 of its size): then the letter keeps as much as fits, says so with `raw_truncated`
    and `raw_size`, and the whole record stays in its topic at `partition`/`offset`."""
    encoded = base64.b64encode(raw).decode("ascii")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if len(orjson.dumps(text)) <= len(encoded) + 2:
            return {"raw": text}
    if len(encoded) + 2 <= limit:
        return {"raw": encoded, "raw_encoding": "base64"}
    kept = base64.b64encode(raw[: (limit - 2) // 4 * 3]).decode("ascii")
    return {"raw": kept, "raw_encoding": "base64", "raw_truncated": True, "raw_size": len(raw)}


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
    record.update(raw_fields(raw))
    record.update(topic=topic, partition=partition, offset=offset, at=rfc3339(at))
    if index is not None:
        record["index"] = index
    record.update(extra)
    return record

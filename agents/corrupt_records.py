"""Dead-lettering a record of one of our own internal topics that does not decode.

Such a record can only come from a bug or a foreign producer; it is kept, with the reason
and where it was read, instead of stopping the stage (route, lanes, retry, history).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from faust.types import EventT

from trustscore_stream.events.deadletter import dead_letter
from trustscore_stream.metrics import Metrics
from trustscore_stream.topics import Topics

CORRUPT_INTERNAL_RECORD = "corrupt_internal_record"

T = TypeVar("T")


async def decode_take(
    topics: Topics,
    metrics: Metrics,
    events: list[EventT[bytes]],
    decode: Callable[[bytes], T],
    what: str,
) -> list[tuple[EventT[bytes], T]]:
    """Each event of a take with its decoded value; a `what` record that does not decode is
    dead-lettered and left out (the caller still acknowledges it with the rest)."""
    decoded: list[tuple[EventT[bytes], T]] = []
    for event in events:
        try:
            decoded.append((event, decode(event.value)))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await dead_letter_corrupt(topics, metrics, event, f"corrupt {what} record: {exc}")
    return decoded


async def dead_letter_corrupt(
    topics: Topics, metrics: Metrics, event: EventT[bytes], detail: str
) -> None:
    message = event.message
    metrics.dead_lettered.labels(CORRUPT_INTERNAL_RECORD).inc()
    await topics.dlq.send(
        value=dead_letter(
            reason=CORRUPT_INTERNAL_RECORD,
            detail=detail,
            raw=event.value if isinstance(event.value, bytes) else b"",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            at=datetime.now(UTC),
        )
    )

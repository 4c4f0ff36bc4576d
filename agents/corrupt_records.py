"""Dead-lettering a record of one of our own internal topics that does not decode.

Such a record can only come from a bug or a foreign producer; it is kept, with the reason
and where it was read, instead of stopping the stage (route, lanes, retry, history).
"""

from __future__ import annotations

from datetime import UTC, datetime

from faust.types import EventT

from trustscore_stream.events.deadletter import dead_letter
from trustscore_stream.metrics import Metrics
from trustscore_stream.topics import Topics

CORRUPT_INTERNAL_RECORD = "corrupt_internal_record"


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

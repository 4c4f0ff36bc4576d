"""Stage 1, `trustscore-events` → `trustscore-ingest`: decode, validate, classify, re-key.

Input records are single envelopes or batch records from any partition. Valid envelopes are
grouped by the partition of their collection and sent on as ONE batch record per partition
per take; bad ones are dead-lettered with their reason. The stage keeps no state, so its
takes are acknowledged as soon as their output is handed to the producer.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT, StreamT

from trustscore_stream.agents.batches import ack_all, event_batches, fail_fast
from trustscore_stream.events.classification import classify
from trustscore_stream.events.deadletter import dead_letter
from trustscore_stream.events.decoding import DecodedRecord, Rejection, decode_record
from trustscore_stream.events.routed import Routed, encode_batches, routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.partitioning import partition_for
from trustscore_stream.settings import Settings
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)
INTERNAL_ERROR = "internal_error"


class IngestStage:
    def __init__(self, settings: Settings, topics: Topics, metrics: Metrics) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics

    def register(self, app: faust.App) -> None:
        self.app = app
        app.agent(self.topics.events, name="ingest", concurrency=1)(self.run)

    async def run(self, stream: StreamT[Any]) -> None:
        take_max, within = self.settings.take_max, self.settings.take_within_s
        async for events in event_batches(stream, take_max, within):
            await fail_fast(self.app, self.process(events))
            await ack_all(stream, events)

    def _decode(self, event: EventT[bytes]) -> DecodedRecord:
        raw = event.value if isinstance(event.value, bytes) else b""
        try:
            return decode_record(raw)
        except Exception as exc:  # decode_record does not raise; a bug must not lose input
            log.exception("decoding failed unexpectedly")
            return DecodedRecord([], [Rejection(INTERNAL_ERROR, repr(exc), raw)], False)

    async def process(self, events: list[EventT[bytes]]) -> None:
        now = time.time()
        now_dt = datetime.fromtimestamp(now, UTC)
        partitions = self.settings.partitions
        batches: dict[int, list[Routed]] = defaultdict(list)
        # Counted per take, not per event: a labelled counter costs a few µs per call.
        received: Counter[tuple[str, str]] = Counter()
        shapes: Counter[str] = Counter()
        for event in events:
            decoded = self._decode(event)
            shapes["batch" if decoded.is_batch else "single"] += 1
            for envelope in decoded.envelopes:
                received[envelope.type, envelope.source] += 1
                key = envelope.partition_key
                batches[partition_for(key, partitions)].append(
                    routed(envelope, classify(envelope, now_dt), now)
                )
            for rejection in decoded.rejections:
                await self._dead_letter(event, rejection, now_dt)
        for shape, count in shapes.items():
            self.metrics.records_received.labels(shape).inc(count)
        for (kind, source), count in received.items():
            self.metrics.events_received.labels(kind, source).inc(count)
        for partition, items in batches.items():
            record_key = items[0].partition_key.encode()
            for record in encode_batches(items):
                await self.topics.ingest.send(key=record_key, value=record, partition=partition)

    async def _dead_letter(self, event: EventT[bytes], rejection: Rejection, at: datetime) -> None:
        message = event.message
        self.metrics.dead_lettered.labels(rejection.reason).inc()
        await self.topics.dlq.send(
            key=message.key if isinstance(message.key, bytes) else None,
            value=dead_letter(
                reason=rejection.reason,
                detail=rejection.detail,
                raw=rejection.raw,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                at=at,
                index=rejection.index,
            ),
        )

"""Stage 2, `trustscore-ingest` → lane topics: drop duplicates, route by priority.

Input is partitioned by collection, so a repeated `event_id` meets its original on this
partition's dedup memory (tables/dedup.py). Per take, for each partition: one batch record
per lane is sent and its delivery awaited, THEN the partition's newly seen ids are written
as one table entry, THEN the input is acknowledged. Lane records go through a producer of
their own (output.py), not Faust's: behind Faust's, which also carries the scoring state's
changelog one record per request on the embedded broker, they waited for whole checkpoints
(seconds; docs/benchmarks.md "Live stream"). A crash before the table write can
only repeat lane records (at-least-once, the consumer is idempotent); it can never mark an
event seen that did not reach its lane.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

import faust
import msgspec
from faust.types import EventT, StreamT

from trustscore_stream.agents.batches import ack_all, event_batches, fail_fast
from trustscore_stream.agents.corrupt_records import dead_letter_corrupt
from trustscore_stream.events.classification import Lane
from trustscore_stream.events.routed import RoutedRaw, decode_batch_raw, encode_batches
from trustscore_stream.metrics import Metrics
from trustscore_stream.output import FaustOutput, Output
from trustscore_stream.settings import Settings
from trustscore_stream.tables.dedup import DedupStore
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)


class RouteStage:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        dedup: DedupStore,
        metrics: Metrics,
        output: Output | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.dedup = dedup
        self.metrics = metrics
        self.output: Output = output or FaustOutput()

    def register(self, app: faust.App) -> None:
        self.app = app
        app.agent(self.topics.ingest, name="route", concurrency=1)(self.run)

    async def run(self, stream: StreamT[Any]) -> None:
        # Few, large records arrive here (one per partition per ingest take).
        async for events in event_batches(stream, 64, self.settings.take_within_s):
            await fail_fast(self.app, self.process(events))
            await ack_all(stream, events)

    async def process(self, events: list[EventT[bytes]]) -> None:
        started = time.perf_counter()
        now = time.time()
        by_partition: dict[int, list[EventT[bytes]]] = defaultdict(list)
        lanes: dict[tuple[Lane, int], list[RoutedRaw]] = defaultdict(list)
        trace = log.isEnabledFor(logging.DEBUG)  # once per batch: ~0 cost when off
        for event in events:
            partition = event.message.partition
            by_partition[partition].append(event)
            memory = self.dedup.memory(partition)
            try:
                items = decode_batch_raw(event.value)
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
                await self._dead_letter(event, str(exc))
                continue
            for item in items:
                if memory.remember(item.event_id, now):
                    lanes[(item.lane, partition)].append(item)  # type: ignore[index]
                else:
                    self.metrics.duplicates.inc()
                    if trace:
                        log.debug(
                            "duplicate dropped", extra={"stage": "route", "event_id": item.event_id}
                        )
        try:
            for (lane, partition), items in lanes.items():
                key = items[0].partition_key.encode()
                for record in encode_batches(items):
                    await self.output.send(
                        self.topics.lanes[lane], key=key, value=record, partition=partition
                    )
                    self.metrics.lane_records.labels(lane).inc()
                self.metrics.routed.labels(lane).inc(len(items))
            await self.output.flush()  # delivered before the ids are marked seen
        except BaseException:
            for partition in by_partition:
                self.dedup.memory(partition).discard_pending()
            raise
        if trace:
            for (lane, _), items in lanes.items():
                for item in items:
                    log.debug(
                        "event routed to lane %s",
                        lane,
                        extra={"stage": "route", "event_id": item.event_id},
                    )
        writes = 0
        for partition, partition_events in by_partition.items():
            writes += self.dedup.checkpoint(partition, partition_events[-1])
        self.metrics.table_writes.labels("dedup").inc(writes)
        self.metrics.checkpoint_seconds.labels("route").observe(time.perf_counter() - started)

    async def _dead_letter(self, event: EventT[bytes], detail: str) -> None:
        message = event.message
        log.error("corrupt record on %s[%s]@%s", message.topic, message.partition, message.offset)
        await dead_letter_corrupt(self.topics, self.metrics, event, detail)

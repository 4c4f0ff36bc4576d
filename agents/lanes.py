"""Stage 3 entry, lane topics → the processing handler, in priority order.

One agent per lane reads its topic in batches and queues them; a single processor takes
queued batches by priority with aging (events/scheduling.py) and hands their events to the
handler (the scoring stage). A lane agent acknowledges its batch only after the handler
is done with it. A transient handler failure sends the batch to the retry topic; the
retry agent feeds it back after a backoff, and past the last attempt it is dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import faust
import msgspec
from faust.types import EventT, StreamT

from trustscore_stream.agents.batches import ack_all, event_batches, fail_fast
from trustscore_stream.events.classification import LANES, Lane
from trustscore_stream.events.deadletter import dead_letter, rfc3339
from trustscore_stream.events.retry import RetryEnvelope, backoff_delay
from trustscore_stream.events.routed import Routed, decode_batch
from trustscore_stream.events.scheduling import LaneScheduler
from trustscore_stream.metrics import Metrics
from trustscore_stream.partitioning import partition_for
from trustscore_stream.settings import Settings
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)

# The handler processes one lane batch: the events, and one source event per partition
# (for table writes, see tables/partition_scope.py).
Handler = Callable[[list[Routed], dict[int, EventT[bytes]]], Awaitable[None]]


class TransientError(Exception):
    """A failure worth retrying (a database or peer that is briefly unavailable)."""


async def count_only(items: list[Routed], anchors: dict[int, EventT[bytes]]) -> None:
    """Default handler until scoring is plugged in: the events are consumed and counted."""


@dataclass
class _Work:
    lane: Lane
    items: list[Routed]
    anchors: dict[int, EventT[bytes]]
    attempt: int = 0
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class LaneStage:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        metrics: Metrics,
        handler: Handler = count_only,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.handler = handler
        self.scheduler: LaneScheduler[_Work] = LaneScheduler(settings.lane_max_wait_s)
        self._wakeup = asyncio.Event()

    def register(self, app: faust.App) -> None:
        self.app = app
        for lane in LANES:
            app.agent(self.topics.lanes[lane], name=f"lane-{lane}", concurrency=1)(
                self._lane_agent(lane)
            )
        app.agent(self.topics.retry, name="retry", concurrency=1)(self.run_retry)
        app.task(self.run_processor)

    def _lane_agent(self, lane: Lane) -> Callable[[StreamT[Any]], Awaitable[None]]:
        async def run(stream: StreamT[Any]) -> None:
            async for events in event_batches(stream, 16, self.settings.take_within_s):
                await fail_fast(self.app, self.submit(lane, events))
                await ack_all(stream, events)

        run.__name__ = f"lane_{lane}"
        return run

    async def submit(self, lane: Lane, events: list[EventT[bytes]], attempt: int = 0) -> None:
        """Queue a lane batch and wait until it has been handled (or retried/dead-lettered)."""
        items: list[Routed] = []
        anchors: dict[int, EventT[bytes]] = {}
        for event in events:
            anchors[event.message.partition] = event
            try:
                items.extend(decode_batch(event.value))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await self._dead_letter_raw(event, f"corrupt lane record: {exc}")
        if not items:
            return
        work = _Work(lane, items, anchors, attempt)
        self.scheduler.push(lane, work, time.monotonic())
        self._wakeup.set()
        await work.done

    async def run_processor(self) -> None:
        while True:
            popped = self.scheduler.pop(time.monotonic())
            if popped is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            lane, work, _waited = popped
            try:
                await self._handle(lane, work)
            except BaseException as exc:
                if not work.done.done():
                    work.done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                if not work.done.done():
                    work.done.set_result(None)

    async def _handle(self, lane: Lane, work: _Work) -> None:
        now = time.time()
        for item in work.items:
            self.metrics.lane_wait.labels(lane).observe(max(0.0, now - item.ingested_at))
        try:
            await self.handler(work.items, work.anchors)
        except TransientError as exc:
            await self._retry_or_dead_letter(lane, work, str(exc))
            return
        self.metrics.processed.labels(lane).inc(len(work.items))

    async def _retry_or_dead_letter(self, lane: Lane, work: _Work, reason: str) -> None:
        attempt = work.attempt + 1
        if attempt >= self.settings.retry_max_attempts:
            for item in work.items:
                self.metrics.dead_lettered.labels("retries_exhausted").inc()
                await self.topics.dlq.send(
                    value={
                        "reason": "retries_exhausted",
                        "detail": f"{attempt} attempts failed; last error: {reason}",
                        "raw": msgspec.json.encode(item.envelope).decode(),
                        "topic": self.topics.lanes[lane].get_topic_name(),
                        "partition": None,
                        "offset": None,
                        "at": _now_rfc3339(),
                        "event_id": item.event_id,
                    }
                )
            return
        delay = backoff_delay(
            attempt, self.settings.retry_base_delay_s, self.settings.retry_max_delay_s
        )
        self.metrics.retries.labels("lanes").inc()
        not_before = time.time() + delay
        # One retry record per source partition, on that partition, so the retried events
        # meet their state (and table writes their changelog partition) again.
        by_partition: dict[int, list[Routed]] = {}
        for item in work.items:
            partition = partition_for(item.partition_key, self.settings.partitions)
            by_partition.setdefault(partition, []).append(item)
        for partition, items in by_partition.items():
            retry = RetryEnvelope(
                lane=lane, attempt=attempt, not_before=not_before, reason=reason, items=items
            )
            fut = await self.topics.retry.send(
                value=msgspec.json.encode(retry), partition=partition
            )
            await fut

    async def run_retry(self, stream: StreamT[Any]) -> None:
        decoder = msgspec.json.Decoder(RetryEnvelope)
        async for events in event_batches(stream, 16, self.settings.take_within_s):
            for event in events:
                try:
                    retry = decoder.decode(event.value)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    await self._dead_letter_raw(event, f"corrupt retry record: {exc}")
                    continue
                wait = retry.not_before - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                lane = cast(Lane, retry.lane)
                work = _Work(lane, retry.items, {event.message.partition: event}, retry.attempt)
                self.scheduler.push(work.lane, work, time.monotonic())
                self._wakeup.set()
                await fail_fast(self.app, work.done)
            await ack_all(stream, events)

    async def _dead_letter_raw(self, event: EventT[bytes], detail: str) -> None:
        message = event.message
        self.metrics.dead_lettered.labels("corrupt_internal_record").inc()
        await self.topics.dlq.send(
            value=dead_letter(
                reason="corrupt_internal_record",
                detail=detail,
                raw=event.value if isinstance(event.value, bytes) else b"",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                at=datetime.now(UTC),
            )
        )


def _now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))

"""Stage 3 entry, lane topics → the scoring engine, in priority order, with checkpoints.

One agent per lane reads its topic in batches and queues them without waiting; a single
processor takes queued batches by priority with aging (events/scheduling.py), folds them
into the engine's in-memory state, lets the engine publish once per conflation window, and
checkpoints. The window is adaptive: while the broker already holds more lane records than
were folded (a backlog), publishing waits, up to `conflation_max_s`, so that a catch-up
scores each changed entity once per stretched window instead of every 250 ms (Kafka Streams'
record cache does the same, flushing on commit); once caught up, the window is the short one
again. Checkpoints: every `checkpoint_interval_s` (from the first batch since the last
checkpoint) or `checkpoint_max_events`, the engine writes its state and only then are the
covered lane records acknowledged. A lane agent keeps at most `MAX_INFLIGHT` batches
waiting for a checkpoint (backpressure). A transient fold failure sends the batch to the
retry topic; the retry agent feeds it back after a backoff, and past the last attempt it is
dead-lettered. A rebalance drops what was folded but not checkpointed, together with its
input's acknowledgements: that input is read again from the committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import faust
import msgspec
from faust.types import TP, EventT, StreamT

from trustscore_stream.agents.batches import ack_all, event_batches, fail_fast
from trustscore_stream.agents.corrupt_records import dead_letter_corrupt, decode_take
from trustscore_stream.agents.scoring import LaneRecord, LinkRecord
from trustscore_stream.events.classification import LANES, Lane
from trustscore_stream.events.control import RescoreRequest, decode_lane_record
from trustscore_stream.events.deadletter import rfc3339
from trustscore_stream.events.retry import RetryEnvelope, backoff_delay
from trustscore_stream.events.routed import Routed
from trustscore_stream.events.scheduling import LaneScheduler
from trustscore_stream.metrics import Metrics
from trustscore_stream.partitioning import partition_for
from trustscore_stream.settings import Settings
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)

# Lane batches a lane agent may have read but not yet seen checkpointed.
MAX_INFLIGHT = 64


class TransientError(Exception):
    """A failure worth retrying (a database or peer that is briefly unavailable)."""


class Engine(Protocol):
    """What the lanes drive (agents/scoring.py: ScoringEngine)."""

    pending_events: int

    async def fold(self, records: Sequence[LaneRecord]) -> None: ...

    async def fold_links(self, records: Sequence[LinkRecord]) -> None: ...

    async def publish(self) -> None: ...

    async def checkpoint(self) -> None: ...


class CountOnly:
    """An engine that only consumes (stage tests, and lanes without scoring)."""

    pending_events = 0

    async def fold(self, records: Sequence[LaneRecord]) -> None:
        return None

    async def fold_links(self, records: Sequence[LinkRecord]) -> None:
        return None

    async def publish(self) -> None:
        return None

    async def checkpoint(self) -> None:
        return None


@dataclass
class _Work:
    lane: Lane
    records: list[LaneRecord]
    attempt: int = 0
    stream: StreamT[Any] | None = None  # acknowledges `events` after the checkpoint
    events: list[EventT[bytes]] = field(default_factory=list)
    generation: int = 0
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    links: list[LinkRecord] = field(default_factory=list)  # link work (agents/links.py)

    @property
    def size(self) -> int:
        return sum(len(r.items) for r in self.records)


class InFlight:
    """The batches an agent has queued but not yet seen checkpointed: at most MAX_INFLIGHT
    (backpressure on the agent's reading)."""

    def __init__(self) -> None:
        self._waiting: deque[_Work] = deque()

    async def add(self, work: _Work) -> None:
        self._waiting.append(work)
        while self._waiting and (self._waiting[0].done.done() or len(self._waiting) > MAX_INFLIGHT):
            await self._waiting.popleft().done


class LaneStage:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        metrics: Metrics,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.engine: Engine = engine if engine is not None else CountOnly()
        self.scheduler: LaneScheduler[_Work] = LaneScheduler(settings.lane_max_wait_s)
        self._wakeup = asyncio.Event()
        self._generation: Callable[[], int] = lambda: 0
        # Records the broker holds behind a consumed one (0 where unknown: no backlog).
        self._waiting_behind: Callable[[EventT[bytes]], int] = lambda event: 0
        # Per lane partition, as of its last folded record: input already waiting behind it.
        self._backlog: dict[TP, int] = {}
        self._backlog_generation = 0

    def register(self, app: faust.App) -> None:
        self.app = app
        self._generation = lambda: int(app.consumer_generation_id)
        self._waiting_behind = self._waiting_in_broker
        for lane in LANES:
            app.agent(self.topics.lanes[lane], name=f"lane-{lane}", concurrency=1)(
                self._lane_agent(lane)
            )
        app.agent(self.topics.retry, name="retry", concurrency=1)(self.run_retry)
        app.task(self._run_processor_or_crash)
        for lane in LANES:
            self.metrics.lane_queue_depth.labels(lane).set_function(
                functools.partial(self.queued_events, lane)
            )

    def queued_events(self, lane: Lane) -> int:
        """Events of `lane` queued for the processor and not yet folded (read at scrape,
        on the event loop like the processor, so the queue is not changing meanwhile)."""
        return sum(work.size for work in self.scheduler.queued(lane))

    def _lane_agent(self, lane: Lane) -> Callable[[StreamT[Any]], Awaitable[None]]:
        async def run(stream: StreamT[Any]) -> None:
            inflight = InFlight()
            async for events in event_batches(stream, 16, self.settings.take_within_s):
                await inflight.add(await self.submit(lane, events, stream))

        run.__name__ = f"lane_{lane}"
        return run

    async def submit(
        self, lane: Lane, events: list[EventT[bytes]], stream: StreamT[Any] | None = None
    ) -> _Work:
        """Queue a lane batch; its `done` resolves once a checkpoint covers it."""
        decoded = await decode_take(self.topics, self.metrics, events, decode_lane_record, "lane")
        records = [
            LaneRecord(event, [], content)
            if isinstance(content, RescoreRequest)
            else LaneRecord(event, content)
            for event, content in decoded
        ]
        work = _Work(lane, records, stream=stream, events=events, generation=self._generation())
        self.scheduler.push(lane, work, time.monotonic())
        self._wakeup.set()
        return work

    def submit_links(
        self, lane: Lane, links: list[LinkRecord], events: list[EventT[bytes]], stream: StreamT[Any]
    ) -> _Work:
        """Queue decoded link records like a lane batch: folded in priority order and
        acknowledged after the checkpoint that covers them (agents/links.py)."""
        work = _Work(
            lane, [], stream=stream, events=events, generation=self._generation(), links=links
        )
        self.scheduler.push(lane, work, time.monotonic())
        self._wakeup.set()
        return work

    def _waiting_in_broker(self, event: EventT[bytes]) -> int:
        """Records after `event` in its partition, from the consumer's last fetch (a hint:
        read without a request, from the consumer thread's cache)."""
        message = event.message
        try:
            highwater = self.app.consumer.highwater(message.tp)
        except Exception:  # not assigned any more, or the consumer is restarting
            return 0
        return max(0, int(highwater or 0) - int(message.offset) - 1)

    async def _run_processor_or_crash(self) -> None:
        await fail_fast(self.app, self.run_processor())

    async def run_processor(self) -> None:
        interval = self.settings.checkpoint_interval_s
        window = self.settings.conflation_window_s
        stretched = max(window, self.settings.conflation_max_s)
        covered: list[_Work] = []
        first_at = window_at = 0.0
        while True:
            now = time.monotonic()
            popped = self.scheduler.pop(now)
            if popped is not None:
                lane, work, _waited = popped
                if not covered:
                    first_at = now
                if work.generation == self._generation():
                    window_at = window_at or now
                    await self._handle(lane, work)
                covered.append(work)
            busy = popped is not None
            if covered and (
                now - first_at >= interval
                or self.engine.pending_events >= self.settings.checkpoint_max_events
            ):
                if window_at:
                    self.metrics.publishes.labels("checkpoint").inc()
                await self._checkpoint(covered)
                covered = []
                window_at = 0.0
                busy = True
            elif window_at and now - window_at >= window:
                behind = self._behind()
                if not behind or now - window_at >= stretched:
                    stretch = behind and stretched > window
                    self.metrics.publishes.labels("backlog_max" if stretch else "window").inc()
                    await self.engine.publish()
                    window_at = 0.0
                    busy = True
            if busy:
                continue
            # Idle: nothing was awaited since the empty pop, so no wakeup can be missed.
            deadlines = [first_at + interval] if covered else []
            if window_at:
                deadlines.append(window_at + (stretched if self._behind() else window))
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def _checkpoint(self, covered: list[_Work]) -> None:
        started = time.perf_counter()
        await self.engine.checkpoint()
        generation = self._generation()
        for work in covered:
            # Input folded before a rebalance is not acknowledged: its state was dropped.
            if work.generation == generation and work.stream is not None:
                await ack_all(work.stream, work.events)
            if not work.done.done():
                work.done.set_result(None)
        self.metrics.checkpoints.inc()
        self.metrics.checkpoint_seconds.labels("scoring").observe(time.perf_counter() - started)

    async def _handle(self, lane: Lane, work: _Work) -> None:
        if work.links:
            # Links have no peer to wait for: any failure is unexpected and not retried.
            await self.engine.fold_links(work.links)
        now = time.time()
        waited = self.metrics.lane_wait.tally()
        for record in work.records:
            for item in record.items:
                waited.add(now - item.ingested_at)
        self.metrics.lane_wait.record(waited, lane)
        try:
            await self.engine.fold(work.records)
        except TransientError as exc:
            await self._retry_or_dead_letter(lane, work, str(exc))
            return
        self.metrics.processed.labels(lane).inc(work.size)
        if work.generation != self._backlog_generation:
            self._backlog = {}  # partitions may have moved: forget what they had waiting
            self._backlog_generation = work.generation
        for event in work.events:
            self._backlog[event.message.tp] = self._waiting_behind(event)

    def _behind(self) -> bool:
        """Whether the broker already holds lane input that was not folded yet."""
        return any(self._backlog.values())

    async def _retry_or_dead_letter(self, lane: Lane, work: _Work, reason: str) -> None:
        attempt = work.attempt + 1
        if attempt >= self.settings.retry_max_attempts:
            for item in (i for record in work.records for i in record.items):
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
        for item in (i for record in work.records for i in record.items):
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
            queued: list[_Work] = []
            for event in events:
                try:
                    retry = decoder.decode(event.value)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    await dead_letter_corrupt(
                        self.topics, self.metrics, event, f"corrupt retry record: {exc}"
                    )
                    await ack_all(stream, [event])
                    continue
                wait = retry.not_before - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                work = _Work(
                    cast(Lane, retry.lane),
                    [LaneRecord(event, retry.items)],
                    retry.attempt,
                    stream=stream,
                    events=[event],
                    generation=self._generation(),
                )
                self.scheduler.push(work.lane, work, time.monotonic())
                self._wakeup.set()
                queued.append(work)
            for work in queued:
                await work.done  # acknowledged by the checkpoint that covers it


def _now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))

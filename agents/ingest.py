"""Stage 1, `trustscore-events` → `trustscore-ingest`: decode, validate, classify, re-key.

Input records are single envelopes or batch records from any partition. Valid envelopes are
grouped by the partition of their collection and sent on as ONE batch record per partition
per take; bad ones are dead-lettered with their reason. The stage keeps no state.

Why not a Faust agent: Faust's stream machinery costs ~70 µs per consumed record on this
stack (its no-op agent tops out near 14,000 records/s), which is the whole budget when
producers write one envelope per record. The input topic is therefore read with aiokafka's
batch consumer (`getmany`), in its own consumer group (`<app id>-ingest`) so the partitions
spread over the workers like Faust's, inside the worker as a Faust service. Its offsets are
committed only after every record a take produced (ingest records, dead letters) is
delivered: at-least-once, and a repeat is dropped by the dedup stages downstream. Output goes
through its own batching producer: the ingest and DLQ topics are never restored from, so the
embedded broker's one-record-per-batch workaround does not apply to them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import faust
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from trustscore_stream.embedded import bootstrap_from_url
from trustscore_stream.events.classification import classify
from trustscore_stream.events.deadletter import dead_letter
from trustscore_stream.events.decoding import DecodedRecord, Rejection, decode_record
from trustscore_stream.events.routed import Routed, encode_batches, routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.output import BatchingOutput
from trustscore_stream.partitioning import partition_for
from trustscore_stream.settings import Settings
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)
INTERNAL_ERROR = "internal_error"


class InputRecord(Protocol):
    """What the stage reads of a consumed record (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class IngestStage:
    def __init__(
        self, settings: Settings, topics: Topics, metrics: Metrics, output: BatchingOutput
    ):
        """`output`: a producer of the stage's own, started with the stage, so flushing it
        waits for this stage's records only (scoring's checkpoint flushes its own)."""
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.output = output
        self.consumer: IngestConsumer | None = None

    def register(self, app: faust.App) -> None:
        app.service(self.output)  # type: ignore[arg-type]  # Faust takes instances too
        self.consumer = IngestConsumer(self, crash=app.crash)
        app.service(self.consumer)  # type: ignore[arg-type]

    def _decode(self, record: InputRecord) -> DecodedRecord:
        raw = record.value if isinstance(record.value, bytes) else b""
        try:
            return decode_record(raw)
        except Exception as exc:  # decode_record does not raise; a bug must not lose input
            log.exception("decoding failed unexpectedly")
            return DecodedRecord([], [Rejection(INTERNAL_ERROR, repr(exc), raw)], False)

    async def process(self, records: Sequence[InputRecord]) -> None:
        """Send the take's valid envelopes on and its rejections to the DLQ (queued; the
        caller flushes the output before it commits the take)."""
        now = time.time()
        now_dt = datetime.fromtimestamp(now, UTC)
        partitions = self.settings.partitions
        batches: dict[int, list[Routed]] = defaultdict(list)
        # Counted per take, not per event: a labelled counter costs a few µs per call.
        received: Counter[tuple[str, str]] = Counter()
        shapes: Counter[str] = Counter()
        # Per-event correlation lines only at DEBUG, decided once per take (~0 cost when off).
        trace = log.isEnabledFor(logging.DEBUG)
        for record in records:
            decoded = self._decode(record)
            shapes["batch" if decoded.is_batch else "single"] += 1
            for envelope in decoded.envelopes:
                received[envelope.type, envelope.source] += 1
                key = envelope.partition_key
                item = routed(envelope, classify(envelope, now_dt), now)
                batches[partition_for(key, partitions)].append(item)
                if trace:
                    log.debug(
                        "event accepted",
                        extra={"stage": "ingest", "event_id": item.event_id, "lane": item.lane},
                    )
            for rejection in decoded.rejections:
                if trace:
                    log.debug(
                        "event dead-lettered: %s",
                        rejection.reason,
                        extra={
                            "stage": "ingest",
                            "offset": record.offset,
                            "index": rejection.index,
                        },
                    )
                await self._dead_letter(record, rejection, now_dt)
        if trace:
            log.debug(
                "take: %d records, %d events, %d partitions",
                len(records),
                sum(received.values()),
                len(batches),
                extra={"stage": "ingest"},
            )
        for shape, count in shapes.items():
            self.metrics.records_received.labels(shape).inc(count)
        for (kind, source), count in received.items():
            self.metrics.events_received.labels(kind, source).inc(count)
        for partition, items in batches.items():
            record_key = items[0].partition_key.encode()
            for value in encode_batches(items):
                await self.output.send(
                    self.topics.ingest, key=record_key, value=value, partition=partition
                )

    async def _dead_letter(self, record: InputRecord, rejection: Rejection, at: datetime) -> None:
        self.metrics.dead_lettered.labels(rejection.reason).inc()
        letter = dead_letter(
            reason=rejection.reason,
            detail=rejection.detail,
            raw=rejection.raw,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            at=at,
            index=rejection.index,
        )
        await self.output.send(self.topics.dlq, key=record.key, value=orjson.dumps(letter))


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Counts rebalances, so a take read before one is not committed after it."""

    def __init__(self) -> None:
        self.generation = 0

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.generation += 1

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


class IngestConsumer(Service):
    """The input topic's batch consumer: take → process → deliver → commit, until stopped."""

    def __init__(
        self,
        stage: IngestStage,
        crash: Callable[[BaseException], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self._fail = crash
        self._consumer: AIOKafkaConsumer | None = None
        self._revocations = _Revocations()

    async def on_start(self) -> None:
        settings = self.stage.settings
        # Subscribing to a topic that does not exist yet would let the embedded broker
        # auto-create it with 4 partitions: declare it first (idempotent).
        await self.stage.topics.events.maybe_declare()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_from_url(settings.broker_url),
            group_id=f"{settings.app_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
            rebalance_timeout_ms=int(settings.rebalance_timeout_s * 1000),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=settings.fetch_wait_ms,  # trustscore_stream/fetch_wait.py
        )
        self._consumer.subscribe(
            [self.stage.topics.events.get_topic_name()], listener=self._revocations
        )
        await self._consumer.start()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def kafka_consumer(self) -> AIOKafkaConsumer | None:
        """The input topic's consumer once started (the lag gauges read it)."""
        return self._consumer

    @Service.task
    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        settings = self.stage.settings
        timeout_ms = int(settings.take_within_s * 1000)
        try:
            while not self.should_stop:
                generation = self._revocations.generation
                takes = await consumer.getmany(timeout_ms=timeout_ms, max_records=settings.take_max)
                # Each partition's records in offset order; the order across partitions does
                # not matter, since the stage regroups events by their own partition.
                records = [r for part in takes.values() for r in part]
                if not records:
                    continue
                await self.stage.process(records)
                await self.stage.output.flush()
                await self._commit(consumer, takes, generation)
        except Exception as exc:
            log.exception("ingest failed; stopping the worker so it restarts from its commits")
            await self._fail(exc)
            raise

    async def _commit(
        self, consumer: AIOKafkaConsumer, takes: dict[TopicPartition, list[Any]], generation: int
    ) -> None:
        if generation != self._revocations.generation:
            # A rebalance came between the take and now: its partitions may have moved. The
            # new owner reads them again from the last commit (repeats are dropped later).
            return
        offsets = {tp: records[-1].offset + 1 for tp, records in takes.items() if records}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            log.warning("ingest offsets not committed (%s); they are read again", exc)

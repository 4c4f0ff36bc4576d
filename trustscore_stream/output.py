"""Records the app produces to topics that no table restores from (deltas, score history).

Faust's own producer serves table changelogs, and on the embedded broker it must send one
record per batch (the broker's end-offset bug breaks table recovery otherwise), which caps
it near a few thousand records/s. Output topics are only ever read by consumers from their
committed offsets, never restored with end-offset lookups, so they get a second producer
with normal batching. Faust flushes only its own producer before committing offsets, so a
stage that acknowledges input covered by these records calls `flush()` first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

import faust
from aiokafka import AIOKafkaProducer
from mode import Service

from trustscore_stream.embedded import bootstrap_from_url


class Delivered(Protocol):
    """Where the broker put a record (aiokafka's and Faust's RecordMetadata both fit)."""

    @property
    def offset(self) -> int: ...


class Output(Protocol):
    async def send(
        self,
        topic: faust.TopicT,
        *,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> Awaitable[Delivered] | None:
        """Queue a record; returns its delivery (the broker's offset), where known."""
        ...

    async def flush(self) -> None: ...


class FaustOutput:
    """Through Faust's producer (no second connection; tests and small deployments)."""

    async def send(
        self,
        topic: faust.TopicT,
        *,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> Awaitable[Delivered]:
        return await topic.send(key=key, value=value, partition=partition)

    async def flush(self) -> None:
        return None  # Faust flushes its producer before it commits


class BatchingOutput(Service):
    """A batching aiokafka producer, started and stopped with the app."""

    def __init__(self, broker_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bootstrap = bootstrap_from_url(broker_url)
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future[Any]] = []
        self._lock = asyncio.Lock()

    async def on_start(self) -> None:
        await self._ensure_producer()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        # Faust starts extra services after its agents and tasks: the first send may come
        # first, so whoever comes first starts the producer.
        async with self._lock:
            if self._producer is None:
                self._producer = await self._new_producer()
        return self._producer

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            linger_ms=5,
            max_batch_size=512 * 1024,
            max_request_size=1024 * 1024,
            acks="all",
        )
        await producer.start()
        return producer

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()  # sends what is buffered first

    async def send(
        self,
        topic: faust.TopicT,
        *,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> Awaitable[Delivered]:
        producer = self._producer or await self._ensure_producer()
        delivery = await producer.send(topic.get_topic_name(), value, key=key, partition=partition)
        self._pending.append(delivery)
        return delivery  # type: ignore[no-any-return]

    async def flush(self) -> None:
        """Wait until everything sent so far is acknowledged by the broker; raise if any
        record failed (the caller must then not acknowledge its input)."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

"""Reading whole topics and exact end offsets for the operations commands.

End offsets come from a fetch's high watermark, not ListOffsets: the embedded broker answers
ListOffsets short after a multi-record batch (docs/operations.md, "The embedded broker"), and
our batching producers write such batches to the DLQ, ingest, lane and output topics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from trustscore_stream.topics_admin import UnknownTopic, describe_partitions

Record: TypeAlias = ConsumerRecord[bytes, bytes]


def _consumer(bootstrap: str, timeout: float) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=max(1000, int(timeout * 1000)),
        fetch_max_wait_ms=100,
    )


async def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record of `topic`, from the start of each partition to its end as of the first
    fetch. Raises UnknownTopic (never creates the topic) and TimeoutError."""
    counts = await describe_partitions(bootstrap, [topic])
    if topic not in counts:
        raise UnknownTopic(topic)
    tps = [TopicPartition(topic, p) for p in range(counts[topic])]
    consumer = _consumer(bootstrap, timeout)
    await consumer.start()
    records: list[Record] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + timeout
        while len(ends) < len(tps) or await _behind(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not finish within {timeout:g}s")
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
            for tp in tps:
                highwater = consumer.highwater(tp)
                if tp not in ends and highwater is not None:
                    ends[tp] = highwater  # fixed at the first fetch: later records are left
        return [r for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]]
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if int(await consumer.position(tp)) < end:
            return True
    return False


async def high_watermarks(
    bootstrap: str, topics: Iterable[str], timeout: float = 30.0
) -> dict[tuple[str, int], int]:
    """The end offset of every partition of the named topics that exist."""
    wanted = list(topics)
    counts = await describe_partitions(bootstrap, wanted)
    tps = [TopicPartition(t, p) for t in wanted if t in counts for p in range(counts[t])]
    if not tps:
        return {}
    consumer = _consumer(bootstrap, timeout)
    await consumer.start()
    try:
        consumer.assign(tps)
        listed = await consumer.end_offsets(tps)
        for tp in tps:
            # ListOffsets may be a little short here; the fetch from there reports the truth.
            consumer.seek(tp, listed[tp])
        found: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"high watermarks not known within {timeout:g}s")
            await consumer.getmany(timeout_ms=100)
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    found[(tp.topic, tp.partition)] = int(highwater)
            await asyncio.sleep(0)
        return found
    finally:
        await consumer.stop()

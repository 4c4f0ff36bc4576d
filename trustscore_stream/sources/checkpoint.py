"""The chain source's durable checkpoint: one record per source on a compacted topic.

The value holds the last fully processed block and the remembered recent block hashes, so a
restarted source resumes at the next block and still detects a reorg below its checkpoint.
It is written only after every envelope of the covered blocks was acknowledged by the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from trustscore_stream.topics_admin import TopicSpec

CHECKPOINTS = "trustscore-source-checkpoints"


def checkpoint_topic_spec(name: str) -> TopicSpec:
    # One partition: a handful of keys, read whole at start.
    return TopicSpec.compacted(name, partitions=1)


@dataclass(frozen=True, slots=True)
class ChainCheckpoint:
    block: int  # last fully processed block
    hashes: list[tuple[int, str]]  # remembered recent (height, hash), oldest first

    def encode(self) -> bytes:
        value: dict[str, Any] = {
            "block": self.block,
            "hashes": [[n, h] for n, h in self.hashes],
            "at": datetime.now(UTC).isoformat(),
        }
        return orjson.dumps(value)

    @classmethod
    def decode(cls, raw: bytes) -> ChainCheckpoint:
        value = orjson.loads(raw)
        return cls(int(value["block"]), [(int(n), str(h)) for n, h in value["hashes"]])


class CheckpointStore:
    def __init__(self, bootstrap: str, topic: str, key: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.key = key.encode()
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def load(self) -> ChainCheckpoint | None:
        """The latest checkpoint of this source (reads the topic to its end)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partition = TopicPartition(self.topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            latest: bytes | None = None
            while await consumer.position(partition) < end:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                for record in batch.get(partition, []):
                    if record.key == self.key and record.value is not None:
                        latest = record.value
            return None if latest is None else ChainCheckpoint.decode(latest)
        finally:
            await consumer.stop()

    async def save(self, checkpoint: ChainCheckpoint) -> None:
        await self.producer.send_and_wait(self.topic, checkpoint.encode(), key=self.key)

"""Writes validated envelopes (as CONTRACT §2 batch records) and dead letters to the broker.

Every envelope a source builds is decoded with the same strict decoder the pipeline uses
before it is sent: what fails goes to the dead-letter topic with the reason, never lost and
never published as if it were good.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from trustscore_stream.events.deadletter import dead_letter
from trustscore_stream.events.decoding import Rejection, decode_one
from trustscore_stream.events.envelope import MAX_BATCH_ENVELOPES, Envelope, encode_envelopes


@dataclass(frozen=True, slots=True)
class Checked:
    envelopes: list[Envelope]
    rejections: list[Rejection]


def check(candidates: Sequence[dict[str, Any]]) -> Checked:
    """Validate envelope dicts one by one with the pipeline's decoder."""
    envelopes: list[Envelope] = []
    rejections: list[Rejection] = []
    for index, candidate in enumerate(candidates):
        result = decode_one(orjson.dumps(candidate), index)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            envelopes.append(result)
    return Checked(envelopes, rejections)


def batch_records(envelopes: Sequence[Envelope]) -> list[tuple[bytes, bytes]]:
    """(key, batch record) pairs: envelopes grouped by partition key (their collection, or
    wallet), in their original order, at most MAX_BATCH_ENVELOPES per record. Keying by it
    keeps one collection's events in one partition, so ingest sees them in chain order."""
    groups: dict[str, list[Envelope]] = {}
    for envelope in envelopes:
        groups.setdefault(envelope.partition_key, []).append(envelope)
    return [
        (key.encode(), encode_envelopes(group[i : i + MAX_BATCH_ENVELOPES]))
        for key, group in groups.items()
        for i in range(0, len(group), MAX_BATCH_ENVELOPES)
    ]


class Publisher:
    """One producer for a source's envelopes and dead letters. Each send waits for the
    broker's acknowledgement, so a checkpoint written afterwards never runs ahead of the
    events it covers (and each record is its own produce batch, as the embedded broker's
    end-offset bug asks)."""

    def __init__(self, bootstrap: str, events_topic: str, dlq_topic: str) -> None:
        self.events_topic = events_topic
        self.dlq_topic = dlq_topic
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send_envelopes(self, envelopes: Sequence[Envelope]) -> None:
        for key, record in batch_records(envelopes):
            await self.producer.send_and_wait(self.events_topic, record, key=key)

    async def send_dead_letters(self, letters: Iterable[dict[str, Any]]) -> None:
        for letter in letters:
            await self.producer.send_and_wait(self.dlq_topic, orjson.dumps(letter))

    def letter(
        self, *, reason: str, detail: str, raw: bytes, origin: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        """A CONTRACT §2 dead letter for input that came from outside Kafka: `topic` is the
        topic it was meant for, partition and offset are null, `origin` says where from."""
        return dead_letter(
            reason=reason,
            detail=detail,
            raw=raw,
            topic=self.events_topic,
            partition=None,
            offset=None,
            at=datetime.now(UTC),
            origin=origin,
            **extra,
        )

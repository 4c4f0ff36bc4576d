"""The record shapes of the internal topics: `trustscore-ingest` and the lane topics.

Both carry batches (a JSON array) of routed events, each a JSON array
`[event_id, lane, priority, category, partition_key, ingested_at, envelope]`: a validated,
normalised envelope plus what classification found. Positional arrays keep these records
small and quick to decode; they are internal, `to_builtins` names the fields. Stages that
only move events (dedup, lane routing) keep the envelope as raw JSON and pass it through
unparsed; the scoring stage decodes it typed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from trustscore_stream.events.classification import Classification, associations
from trustscore_stream.events.envelope import Envelope


class Routed(msgspec.Struct, array_like=True, gc=False):
    event_id: str
    lane: str
    priority: float
    category: str
    partition_key: str
    ingested_at: float  # unix seconds when the ingest stage accepted it
    envelope: Envelope

    @property
    def entities(self) -> tuple[str, ...]:
        """Every CONTRACT §1 id the event touches, its subject first."""
        return associations(self.envelope)


class RoutedRaw(msgspec.Struct, array_like=True, gc=False):
    """Same wire shape as Routed, with the envelope kept as undecoded JSON."""

    event_id: str
    lane: str
    priority: float
    category: str
    partition_key: str
    ingested_at: float
    envelope: msgspec.Raw


_encoder = msgspec.json.Encoder()
_routed_decoder = msgspec.json.Decoder(list[Routed])
_raw_decoder = msgspec.json.Decoder(list[RoutedRaw])


def routed(envelope: Envelope, classification: Classification, ingested_at: float) -> Routed:
    return Routed(
        envelope.event_id,
        classification.lane,
        classification.priority,
        classification.category,
        envelope.partition_key,
        ingested_at,
        envelope,
    )


# Kafka's default max request is 1 MiB: stay well below it.
MAX_BATCH_ITEMS = 500  # ~250 KB per record: re-splitting an over-size chunk costs an encode
MAX_BATCH_BYTES = 512 * 1024


def encode_batch(items: list[Routed] | list[RoutedRaw]) -> bytes:
    return _encoder.encode(items)


def encode_batches(
    items: list[Routed] | list[RoutedRaw],
    max_items: int = MAX_BATCH_ITEMS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[bytes]:
    """One or more batch records holding `items` in order, each within both limits."""
    out: list[bytes] = []
    pending = [items[i : i + max_items] for i in range(0, len(items), max_items)]
    while pending:
        chunk = pending.pop(0)
        encoded = _encoder.encode(chunk)
        if len(encoded) > max_bytes and len(chunk) > 1:
            half = len(chunk) // 2
            pending[:0] = [chunk[:half], chunk[half:]]
            continue
        out.append(encoded)
    return out


def decode_batch(raw: bytes) -> list[Routed]:
    return _routed_decoder.decode(raw)


def decode_batch_raw(raw: bytes) -> list[RoutedRaw]:
    return _raw_decoder.decode(raw)


def to_builtins(item: Routed) -> dict[str, Any]:
    """A routed event as a plain dict with named fields (for logs, tests and tools)."""
    return {
        "event_id": item.event_id,
        "lane": item.lane,
        "priority": item.priority,
        "category": item.category,
        "partition_key": item.partition_key,
        "ingested_at": item.ingested_at,
        "entities": list(item.entities),
        "envelope": msgspec.to_builtins(item.envelope),
    }

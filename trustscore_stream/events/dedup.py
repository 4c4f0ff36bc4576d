"""Bounded memory of seen event ids for one partition (pure; persisted by tables/dedup.py).

Ids live in hour buckets by first-seen (processing) time. A bucket older than the
retention window is forgotten as a whole, and when a partition holds more ids than its cap
the oldest buckets go first. New ids are handed out in chunks for the checkpoint to write
as one table entry per partition per checkpoint (more only when the ids would not fit in
one record), never one per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUCKET_SECONDS = 3600
# Largest chunk, in bytes of its JSON array: a checkpoint of 50,000 events with long ids
# made a single chunk over the broker's 1 MiB message limit and crashed the producer.
MAX_CHUNK_BYTES = 256 * 1024


def bucket_of(now: float) -> int:
    return int(now // BUCKET_SECONDS)


@dataclass(slots=True)
class DedupMemory:
    retention_s: float
    max_ids: int
    _ids: dict[str, int] = field(default_factory=dict)  # event_id -> bucket
    _chunks: dict[str, list[str]] = field(default_factory=dict)  # chunk key -> ids
    _pending: list[str] = field(default_factory=list)
    _seq: int = 0

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def remember(self, event_id: str, now: float) -> bool:
        """Record a first sighting; False if the id was already known (a duplicate)."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = bucket_of(now)
        self._pending.append(event_id)
        return True

    def load_chunk(self, chunk_key: str, ids: list[str]) -> None:
        """Restore a chunk written by an earlier checkpoint (on assignment/recovery)."""
        bucket = int(chunk_key.split(":", 1)[0])
        self._chunks[chunk_key] = ids
        for event_id in ids:
            self._ids.setdefault(event_id, bucket)
        seq = int(chunk_key.split(":", 1)[1])
        self._seq = max(self._seq, seq + 1)

    def take_pending(
        self, now: float, max_bytes: int = MAX_CHUNK_BYTES
    ) -> list[tuple[str, list[str]]]:
        """The ids remembered since the last checkpoint, as chunks to persist: one, unless
        its JSON array would exceed `max_bytes` (then as many as needed, each with its own
        sequence number). Empty when nothing is new."""
        chunks: list[tuple[str, list[str]]] = []
        ids: list[str] = []
        size = 2  # the brackets
        for event_id in self._pending:
            cost = len(event_id.encode()) + 3  # quotes and comma; escapes are rare
            if ids and size + cost > max_bytes:
                chunks.append(self._new_chunk(now, ids))
                ids, size = [], 2
            ids.append(event_id)
            size += cost
        if ids:
            chunks.append(self._new_chunk(now, ids))
        self._pending = []
        return chunks

    def _new_chunk(self, now: float, ids: list[str]) -> tuple[str, list[str]]:
        chunk_key = f"{bucket_of(now)}:{self._seq}"
        self._seq += 1
        self._chunks[chunk_key] = ids
        return chunk_key, ids

    def expire(self, now: float) -> list[str]:
        """Forget chunks past retention or over the cap; return their keys to delete."""
        oldest_kept = bucket_of(now - self.retention_s)
        dropped: list[str] = []
        for chunk_key in sorted(self._chunks, key=_chunk_order):
            bucket = int(chunk_key.split(":", 1)[0])
            if bucket >= oldest_kept and len(self._ids) <= self.max_ids:
                break
            for event_id in self._chunks.pop(chunk_key):
                if self._ids.get(event_id) is not None:
                    del self._ids[event_id]
            dropped.append(chunk_key)
        return dropped

    def discard_pending(self) -> None:
        """Forget ids that were remembered but never checkpointed (a failed checkpoint)."""
        for event_id in self._pending:
            self._ids.pop(event_id, None)
        self._pending = []


def _chunk_order(chunk_key: str) -> tuple[int, int]:
    bucket, seq = chunk_key.split(":", 1)
    return int(bucket), int(seq)

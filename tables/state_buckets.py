"""One partition's entity state as a working set over bucketed table records (no Faust).

Why buckets: on this stack every changelog record costs hundreds of microseconds, and a
checkpoint that wrote one record per changed entity would cost as much as the events it
covers. Entities are hashed into a fixed number of buckets per partition; a bucket is one
table record (`s:{partition}:{bucket}`) holding its entities' encoded state, so a checkpoint
writes at most `buckets` records per partition however many entities changed.

Each bucket also carries *marks*: per input source (`topic/partition`) the highest record
offset whose effects it holds. A kill -9 can leave some of a checkpoint's records durable
and others not; on replay an input record at or below a bucket's mark is skipped for that
bucket's keys, so a partly durable checkpoint neither loses nor double-counts an event.

Encoded entities are kept as they came from the table (`msgspec.Raw`) and decoded on first
use, so a checkpoint re-encodes only the entities that changed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import msgspec

from trustscore_stream.scoring.publication import Stored

STATE_PREFIX = "s"


class Bucket(msgspec.Struct, gc=False, array_like=True):
    marks: dict[str, int]
    entities: dict[str, msgspec.Raw]


_bucket_encoder = msgspec.json.Encoder()
_bucket_decoder = msgspec.json.Decoder(Bucket)
_stored_encoder = msgspec.json.Encoder()
_stored_decoder = msgspec.json.Decoder(Stored)


def bucket_of(key: str, buckets: int) -> int:
    """Stable across processes and versions (unlike `hash()`)."""
    return zlib.crc32(key.encode()) % buckets


def bucket_key(partition: int, bucket: int) -> bytes:
    return f"{STATE_PREFIX}:{partition}:{bucket}".encode()


class _Loaded:
    __slots__ = ("dirty", "marks", "raw")

    def __init__(self, marks: dict[str, int], raw: dict[str, msgspec.Raw]) -> None:
        self.marks = marks  # as durable in the table (updated when this process writes it)
        self.raw = raw
        self.dirty: set[str] = set()


class PartitionState:
    """The entities of one partition: read through, changed in memory, written by bucket."""

    def __init__(self, partition: int, buckets: int, read: Callable[[bytes], bytes | None]):
        self.partition = partition
        self.buckets = buckets
        self._read = read
        self._loaded: dict[int, _Loaded] = {}
        self._objects: dict[str, Stored] = {}  # decoded, including every dirty entity
        self._folded: dict[str, int] = {}  # source -> highest offset folded in memory

    def _bucket(self, key: str) -> _Loaded:
        index = bucket_of(key, self.buckets)
        loaded = self._loaded.get(index)
        if loaded is None:
            raw = self._read(bucket_key(self.partition, index))
            if raw is None:
                loaded = _Loaded({}, {})
            else:
                decoded = _bucket_decoder.decode(raw)
                loaded = _Loaded(decoded.marks, decoded.entities)
            self._loaded[index] = loaded
        return loaded

    def get(self, key: str) -> Stored | None:
        found = self._objects.get(key)
        if found is not None:
            return found
        raw = self._bucket(key).raw.get(key)
        if raw is None:
            return None
        stored = _stored_decoder.decode(raw)
        self._objects[key] = stored
        return stored

    def put(self, key: str, stored: Stored) -> None:
        self._objects[key] = stored
        self._bucket(key).dirty.add(key)

    def holds(self, key: str, source: str, offset: int) -> bool:
        """Whether the durable state of `key` already holds the input record at `offset`."""
        return self._bucket(key).marks.get(source, -1) >= offset

    def folded(self, source: str, offset: int) -> None:
        """Record that the input record at `offset` of `source` has been folded in memory."""
        if offset > self._folded.get(source, -1):
            self._folded[source] = offset

    @property
    def dirty(self) -> bool:
        return any(loaded.dirty for loaded in self._loaded.values())

    def dirty_keys(self) -> Iterator[str]:
        for loaded in self._loaded.values():
            yield from loaded.dirty

    def take_writes(self) -> list[tuple[bytes, bytes]]:
        """The records for every changed bucket, marked with what has been folded so far;
        the buckets count as written (call only right before writing them)."""
        writes: list[tuple[bytes, bytes]] = []
        marks = dict(self._folded)
        for index, loaded in self._loaded.items():
            if not loaded.dirty:
                continue
            for key in loaded.dirty:
                loaded.raw[key] = msgspec.Raw(_stored_encoder.encode(self._objects[key]))
            loaded.dirty.clear()
            # Sources this bucket knew but that were not folded here since keep their mark.
            loaded.marks = {**loaded.marks, **marks}
            value = _bucket_encoder.encode(Bucket(loaded.marks, loaded.raw))
            writes.append((bucket_key(self.partition, index), value))
        return writes

    def trim(self, max_objects: int) -> None:
        """Forget decoded clean entities beyond `max_objects` (they stay encoded)."""
        if len(self._objects) <= max_objects:
            return
        dirty = set(self.dirty_keys())
        self._objects = {k: v for k, v in self._objects.items() if k in dirty}

    def size(self) -> int:
        """Entities in the buckets loaded so far."""
        return sum(len(loaded.raw.keys() | loaded.dirty) for loaded in self._loaded.values())

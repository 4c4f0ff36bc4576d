"""One partition's entity state as a working set over bucketed table records (no Faust).

Why buckets: on this stack every changelog record costs hundreds of microseconds, and a
checkpoint that wrote one record per changed entity would cost as much as the events it
covers. Entities are hashed into a fixed number of buckets per partition; a bucket is one
table record (`s:{partition}:{bucket}`) holding its entities' encoded state, so a checkpoint
writes at most `buckets` records per partition however many entities changed.

Why seq, undo and a commit marker: one event can change entities in two buckets (an NFT
and its collection), and a kill -9 can leave any prefix of a checkpoint's records durable.
Each checkpoint has a sequence number; every bucket it writes carries that number and the
previous value of each entity it changed (undo); the partition's commit marker
(`c:{partition}`, written last, in the same changelog partition) names the last complete
checkpoint. A bucket newer than the marker is rolled back on load and rewritten by the next
checkpoint, so state is always exactly that of a complete checkpoint; the input after it
was not acknowledged and is read again.

Why a history offset: versions are published every conflation window but made durable
only here, so a restored state may be behind versions already published. Right after its
commit marker a checkpoint writes `h:{partition}`: `{"s": seq, "o": offset}`, an offset of
the score-history topic's partition below every history record published after the state
of checkpoint `seq`. A restore reads that topic from there and adopts what it finds
(agents/score_versions.py). Written after the marker, the record is never newer than the
committed state; an older one (a crash between the two) is still a valid, lower bound. A
separate record rather than a field of the marker, so that workers of the previous release
(which parse the marker as an integer) read state written by this one.

Link records (scoring/links.py: replicated wallet summaries, what was last sent) share the
buckets, so they are written atomically with the entity state that caused them; they have
their own accessors (`get_link` / `put_link`) and never appear as `Stored`.

Encoded entities are kept as they came from the table (`msgspec.Raw`) and decoded on first
use, so a checkpoint re-encodes only the entities that changed.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

import msgspec

from trustscore_stream.scoring.links import Linked
from trustscore_stream.scoring.publication import Stored

STATE_PREFIX = "s"
# Entity keys (CONTRACT §1); link records in the same buckets start otherwise.
ENTITY_PREFIXES = ("nft:", "collection:", "wallet:")
COMMIT_PREFIX = "c"
HISTORY_PREFIX = "h"

log = logging.getLogger(__name__)


class Bucket(msgspec.Struct, gc=False, array_like=True):
    seq: int
    entities: dict[str, msgspec.Raw]
    undo: dict[str, msgspec.Raw]  # values before checkpoint `seq` of what it changed...
    created: list[str]  # ...and what it added


_bucket_encoder = msgspec.json.Encoder()
_bucket_decoder = msgspec.json.Decoder(Bucket)
_stored_encoder = msgspec.json.Encoder()
_stored_decoder = msgspec.json.Decoder(Stored)
_linked_decoder: msgspec.json.Decoder[Linked] = msgspec.json.Decoder(Linked)  # type: ignore[arg-type]


def bucket_of(key: str, buckets: int) -> int:
    """Stable across processes and versions (unlike `hash()`)."""
    return zlib.crc32(key.encode()) % buckets


def bucket_key(partition: int, bucket: int) -> bytes:
    return f"{STATE_PREFIX}:{partition}:{bucket}".encode()


def commit_key(partition: int) -> bytes:
    return f"{COMMIT_PREFIX}:{partition}".encode()


def history_key(partition: int) -> bytes:
    return f"{HISTORY_PREFIX}:{partition}".encode()


class HistoryMark(msgspec.Struct, frozen=True, gc=False):
    s: int  # the checkpoint it was written with
    o: int  # the score-history offset to read from


_mark_decoder = msgspec.json.Decoder(HistoryMark)


class _Loaded:
    __slots__ = ("raw", "undo")

    def __init__(self, raw: dict[str, msgspec.Raw]) -> None:
        self.raw = raw  # as of the last complete checkpoint (or written by this process)
        # The bucket's dirty entities, each with its committed value (None: created since).
        self.undo: dict[str, msgspec.Raw | None] = {}


class PartitionState:
    """The entities of one partition: read through, changed in memory, written by bucket."""

    def __init__(self, partition: int, buckets: int, read: Callable[[bytes], bytes | None]):
        self.partition = partition
        self.buckets = buckets
        self._read = read
        self._loaded: dict[int, _Loaded] = {}
        self._objects: dict[str, Stored] = {}  # decoded, including every dirty entity
        self._links: dict[str, Linked] = {}  # decoded link records, including every dirty one
        # Every bucket's dirty keys (their undo keys), so a repeated put skips the bucket hash.
        self._dirty: set[str] = set()
        marker = read(commit_key(partition))
        self.committed = int(marker) if marker is not None else 0
        self.seq = self.committed
        # Where the score-history partition must be read from to find every version
        # published after this state (None: not known, read all of it).
        self.history_from = self._history_from(read(history_key(partition)))
        self._recover()

    def _history_from(self, raw: bytes | None) -> int | None:
        if raw is None:
            return None
        try:
            mark = _mark_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("partition %d: unreadable history mark %r (%s)", self.partition, raw, exc)
            return None
        if mark.s > self.committed:  # cannot happen (written after the marker): be safe
            return None
        return mark.o

    def _recover(self) -> None:
        """Roll back buckets written by a checkpoint that never committed."""
        for index in range(self.buckets):
            raw = self._read(bucket_key(self.partition, index))
            if raw is None:
                continue
            bucket = _bucket_decoder.decode(raw)
            self.seq = max(self.seq, bucket.seq)
            if bucket.seq <= self.committed:
                continue  # loaded lazily when needed
            loaded = _Loaded(bucket.entities)
            for key, before in bucket.undo.items():
                loaded.raw[key] = before
                loaded.undo[key] = before  # rewritten by the next checkpoint, whatever happens
                self._dirty.add(key)
            for key in bucket.created:
                loaded.raw.pop(key, None)
                loaded.undo[key] = None
                self._dirty.add(key)
            self._loaded[index] = loaded

    def _bucket(self, key: str) -> _Loaded:
        index = bucket_of(key, self.buckets)
        loaded = self._loaded.get(index)
        if loaded is None:
            raw = self._read(bucket_key(self.partition, index))
            loaded = _Loaded({} if raw is None else _bucket_decoder.decode(raw).entities)
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

    def entity_keys(self) -> list[str]:
        """Every entity of the partition, checkpointed or folded since (link records left
        out), sorted. Reads buckets not loaded yet without keeping them (ops checks)."""
        keys: set[str] = set(self._objects)
        for index in range(self.buckets):
            loaded = self._loaded.get(index)
            if loaded is not None:
                keys.update(loaded.raw)
                continue
            raw = self._read(bucket_key(self.partition, index))
            if raw is not None:
                keys.update(_bucket_decoder.decode(raw).entities)
        return sorted(k for k in keys if k.startswith(ENTITY_PREFIXES))

    def _mark_dirty(self, key: str) -> None:
        """Remember `key`'s committed value (undo) the first time a checkpoint changes it."""
        if key in self._dirty:
            return
        loaded = self._bucket(key)
        loaded.undo[key] = loaded.raw.get(key)
        self._dirty.add(key)

    def put(self, key: str, stored: Stored) -> None:
        self._mark_dirty(key)
        self._objects[key] = stored

    def get_link(self, key: str) -> Linked | None:
        found = self._links.get(key)
        if found is not None:
            return found
        raw = self._bucket(key).raw.get(key)
        if raw is None:
            return None
        linked = _linked_decoder.decode(raw)
        self._links[key] = linked
        return linked

    def put_link(self, key: str, linked: Linked) -> None:
        self._mark_dirty(key)
        self._links[key] = linked

    def take_writes(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The next checkpoint's number and its records: every changed bucket, then the
        commit marker. The buckets count as written (call right before writing them)."""
        seq = self.seq + 1
        writes: list[tuple[bytes, bytes]] = []
        for index, loaded in self._loaded.items():
            if not loaded.undo:
                continue
            for key in loaded.undo:
                stored = self._objects.get(key)
                if stored is not None:
                    loaded.raw[key] = msgspec.Raw(_stored_encoder.encode(stored))
                    continue
                linked = self._links.get(key)
                if linked is not None:
                    loaded.raw[key] = msgspec.Raw(_stored_encoder.encode(linked))
            undo = {k: v for k, v in loaded.undo.items() if v is not None}
            created = [k for k, v in loaded.undo.items() if v is None]
            value = _bucket_encoder.encode(Bucket(seq, loaded.raw, undo, created))
            writes.append((bucket_key(self.partition, index), value))
            loaded.undo = {}
        self._dirty = set()
        self.seq = seq
        return seq, writes

    def commit(self, seq: int) -> tuple[bytes, bytes]:
        """The commit marker record of checkpoint `seq` (write it after its buckets)."""
        self.committed = seq
        return commit_key(self.partition), str(seq).encode()

    def history_mark(self, seq: int, offset: int) -> tuple[bytes, bytes]:
        """The history offset record of checkpoint `seq` (write it after its marker)."""
        return history_key(self.partition), msgspec.json.encode(HistoryMark(seq, offset))

    def trim(self, max_objects: int) -> None:
        """Forget decoded clean entities beyond `max_objects` (they stay encoded)."""
        if len(self._objects) + len(self._links) <= max_objects:
            return
        dirty = self._dirty
        self._objects = {k: v for k, v in self._objects.items() if k in dirty}
        self._links = {k: v for k, v in self._links.items() if k in dirty}

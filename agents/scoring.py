"""Stage 3, the engine behind the lanes: fold events into entity state in memory, score what
changed once per conflation window, and checkpoint (Kafka Streams / Quix style).

- `fold` (per lane batch, in priority order): drop events this partition has already seen
  (its dedup memory), apply the rest to the cached state. Nothing is written.
- `publish` (every `conflation_window_s`): score each changed entity once, plus the watched
  NFTs of changed collections (dependants; every other NFT is scored on read). Every score
  change is a new version with a history row; a delta goes out when it moved by at least
  the significance threshold since the last delta. So a burst on one entity inside a window
  is one version and at most one delta carrying the latest value.
- `checkpoint` (every `checkpoint_interval_s` or `checkpoint_max_events`): publish, then
  per partition write the changed state buckets, the dedup chunk and the commit marker, in
  that order, into the same changelog partition (tables/entity_state.py). The lanes
  acknowledge the covered input only after that (agents/lanes.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from faust.types import EventT

from trustscore_stream.events.routed import Routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.output import FaustOutput, Output
from trustscore_stream.partitioning import partition_for
from trustscore_stream.scoring import (
    CollectionState,
    NftState,
    ScoreResult,
    WalletState,
    apply,
    keys_for,
    score_collection,
    score_nft,
    score_wallet,
)
from trustscore_stream.scoring.history import HistoryRow, encode_history, history_row
from trustscore_stream.scoring.publication import (
    Publication,
    Stored,
    delta_record,
    is_new_version,
    publish,
)
from trustscore_stream.settings import Settings
from trustscore_stream.tables.dedup import DedupStore
from trustscore_stream.tables.entity_state import EntityStore
from trustscore_stream.tables.state_buckets import PartitionState
from trustscore_stream.tables.watched import WatchIndex
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)


@dataclass
class LaneRecord:
    """One consumed lane (or retry) record and the events it carries."""

    event: EventT[bytes]
    items: list[Routed]

    @property
    def partition(self) -> int:
        return int(self.event.message.partition)


def collection_of(nft: str) -> str:
    return "collection:" + nft.split(":", 1)[1].rsplit(":", 1)[0]


def score_stored(key: str, stored: Stored, state_of: PartitionState, now: datetime) -> ScoreResult:
    """Score one entity from its state and, for an NFT, its collection's (same partition)."""
    state = stored.state
    if isinstance(state, NftState):
        coll = state_of.get(collection_of(key))
        coll_state = coll.state if coll is not None else None
        assert coll_state is None or isinstance(coll_state, CollectionState)
        return score_nft(state, coll_state, None, now)
    if isinstance(state, CollectionState):
        return score_collection(state, None, now)
    assert isinstance(state, WalletState)
    return score_wallet(state, now)


def score_state(
    key: str, entities: EntityStore, now: datetime
) -> tuple[Stored, ScoreResult] | None:
    """The current state and score of `key`, None if unknown (REST reads)."""
    state_of = entities.partition(entities.partition_of(key))
    stored = state_of.get(key)
    if stored is None:
        return None
    return stored, score_stored(key, stored, state_of, now)


class ScoringEngine:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        metrics: Metrics,
        entities: EntityStore,
        dedup: DedupStore,
        watched: WatchIndex | None,
        generation: Callable[[], int],
        output: Output | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.entities = entities
        self.dedup = dedup
        self.watched = watched
        self._generation = generation
        self.output: Output = output if output is not None else FaustOutput()
        self._seen_generation: int | None = None
        self.threshold = settings.significance
        # partition -> changed entity -> the event that last changed it (not yet scored)
        self._unscored: dict[int, dict[str, str]] = {}
        # partition -> one of its folded events, to write its changelog partition
        self._anchors: dict[int, EventT[bytes]] = {}
        self.pending_events = 0

    def _check_generation(self) -> None:
        generation = self._generation()
        if generation != self._seen_generation:
            # A rebalance: what was folded but not checkpointed is dropped with the cached
            # state (the lanes drop its unacknowledged input, which is read again).
            self._unscored.clear()
            self._anchors.clear()
            self.pending_events = 0
            self._seen_generation = generation

    async def fold(self, records: Sequence[LaneRecord]) -> None:
        self._check_generation()
        now_s = time.time()
        conflated = 0
        for record in records:
            partition = record.partition
            state_of = self.entities.partition(partition)
            memory = self.dedup.memory(partition)
            unscored = self._unscored.setdefault(partition, {})
            for item in record.items:
                if not memory.remember(item.event_id, now_s):
                    self.metrics.duplicates.inc()
                    continue
                event = item.envelope
                current = {}
                for key in keys_for(event):
                    stored = state_of.get(key)
                    if stored is not None:
                        current[key] = stored.state
                for key, state in apply(current, event).items():
                    previous = state_of.get(key)
                    if previous is None:
                        state_of.put(key, Stored(state))
                    else:
                        state_of.put(key, Stored(state, previous.published))
                    if key in unscored:
                        conflated += 1
                    unscored[key] = item.event_id
            self._anchors[partition] = record.event
            self.pending_events += len(record.items)
        self.metrics.conflated.inc(conflated)

    async def publish(self) -> None:
        """Score what changed since the last call; send versions and deltas."""
        self._check_generation()
        if not any(self._unscored.values()):
            return
        now = datetime.now(UTC)
        publications: list[Publication] = []
        history: dict[int, list[HistoryRow]] = {}
        dependants = 0
        for partition, changed in self._unscored.items():
            state_of = self.entities.partition(partition)
            eager: dict[str, str] = {}
            if self.watched is not None:
                for key in [k for k in changed if k.startswith("collection:")]:
                    for nft in self.watched.nfts_of(key):
                        if nft not in changed:
                            eager[nft] = changed[key]
            rows: list[HistoryRow] = []
            for key, cause in (*changed.items(), *eager.items()):
                stored = state_of.get(key)
                if stored is None:
                    continue
                result = score_stored(key, stored, state_of, now)
                if not is_new_version(stored.published, result):
                    continue
                published, publication = publish(
                    key, stored.published, result, cause, now, self.threshold
                )
                state_of.put(key, Stored(stored.state, published))
                publications.append(publication)
                rows.append(history_row(publication))
                dependants += key in eager
            if rows:
                history[partition] = rows
        self._unscored.clear()
        self.metrics.dependants_rescored.inc(dependants)
        for partition, rows in history.items():
            for record in encode_history(rows):
                await self.output.send(self.topics.history, value=record, partition=partition)
        emitted = 0
        partitions = self.settings.partitions
        for p in publications:
            if p.emit:
                value = orjson.dumps(delta_record(p))
                # The partition Kafka's default partitioner would pick for this key, from our
                # cached murmur2 rather than the producer's uncached pure-Python one.
                partition = partition_for(p.entity, partitions)
                await self.output.send(
                    self.topics.deltas, key=p.entity.encode(), value=value, partition=partition
                )
                emitted += 1
        self.metrics.deltas.inc(emitted)
        self.metrics.versions.inc(len(publications))

    async def checkpoint(self) -> None:
        """Publish, write changed state and dedup chunks, wait for every output."""
        await self.publish()
        self._check_generation()
        writes = dedup_writes = 0
        for partition, anchor in self._anchors.items():
            state, seen = self.entities.checkpoint(partition, anchor, self.dedup)
            writes += state
            dedup_writes += seen
        self.entities.trim()
        # Deltas and history go through the batching producer, which Faust does not flush
        # before it commits: they must be delivered before the lanes acknowledge.
        await self.output.flush()
        self.metrics.table_writes.labels("entity-state").inc(writes)
        self.metrics.table_writes.labels("scoring-dedup").inc(dedup_writes)
        self._anchors.clear()
        self.pending_events = 0
        # The lanes acknowledge next; Faust flushes the producer before it commits offsets,
        # so everything queued above is durable before the input it covers is committed.

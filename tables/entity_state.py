"""Changelog-backed factor state per entity, checkpointed by bucket (tables/state_buckets.py).

Table `entity-state` (raw bytes keys and values), per partition:
- `s:{partition}:{bucket}`: msgspec JSON `[marks, {entity: Stored}]` of the entities hashed
  to that bucket (`TRUSTSCORE_STATE_BUCKETS` per partition);
- `d:{partition}:{chunk}`: the scoring stage's seen event ids (tables/dedup.py), tagged
  with their checkpoint's number;
- `c:{partition}`: the number of the last complete checkpoint, written after its buckets
  and dedup chunk in the same changelog partition. Buckets and chunks of a checkpoint that
  did not complete are rolled back / ignored on load (tables/state_buckets.py);
- `h:{partition}`: `{"s": checkpoint, "o": offset}`, written after the marker: where the
  score-history topic's partition must be read from on load to find the versions published
  after that checkpoint (agents/score_versions.py).
An NFT lives on its collection's partition (lanes are partitioned by collection), so
scoring an NFT reads its collection's state locally. Keys name their partition, so a read
from outside a stream (REST) finds the one database that holds them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import faust
from faust.types import EventT, TableT

from trustscore_stream.events.ids import parse_entity_id
from trustscore_stream.partitioning import partition_for
from trustscore_stream.scoring.publication import Stored
from trustscore_stream.settings import Settings
from trustscore_stream.tables.dedup import DedupStore
from trustscore_stream.tables.partition_scope import partition_scope
from trustscore_stream.tables.rocksdb import bytes_table
from trustscore_stream.tables.state_buckets import PartitionState

TABLE_NAME = "entity-state"
SCORING_DEDUP_PREFIX = "d:"
COMMIT_PREFIX = "c:"
# A bucket record (state plus the undo of one checkpoint) this big is close to Kafka's
# default 1 MiB message limit.
LARGE_BUCKET_BYTES = 512 * 1024

log = logging.getLogger(__name__)


def declare_entity_table(app: faust.App, settings: Settings) -> TableT[bytes, bytes]:
    return bytes_table(
        app,
        settings,
        TABLE_NAME,
        "Factor state and last published score per entity, by bucket; scoring dedup ids.",
    )


def partition_key_of(entity: str) -> str:
    """The key an entity's events are partitioned by: an NFT's collection, else itself."""
    parsed = parse_entity_id(entity)
    return parsed.collection or entity


class EntityStore:
    def __init__(
        self, table: TableT[bytes, bytes], settings: Settings, generation: Callable[[], int]
    ) -> None:
        self._table = table
        self._partitions = settings.partitions
        self._buckets = settings.state_buckets
        self._decoded_limit = settings.state_cache_entities
        self._generation = generation
        self._states: dict[int, PartitionState] = {}
        self._state_generation: int | None = None

    def _check_generation(self) -> None:
        generation = self._generation()
        if generation != self._state_generation:
            # Partitions may have moved: drop everything not checkpointed (its input was
            # not acknowledged and will be read again) and re-read from the table.
            self._states.clear()
            self._state_generation = generation

    def partition(self, partition: int) -> PartitionState:
        self._check_generation()
        state = self._states.get(partition)
        if state is None:
            state = self._states[partition] = PartitionState(
                partition, self._buckets, self._table.get
            )
        return state

    def partition_of(self, entity: str) -> int:
        return partition_for(partition_key_of(entity), self._partitions)

    def get(self, entity: str) -> Stored | None:
        """The current state of `entity` (folded, possibly not yet checkpointed)."""
        return self.partition(self.partition_of(entity)).get(entity)

    def checkpoint(
        self,
        partition: int,
        anchor: EventT[bytes],
        dedup: DedupStore | None = None,
        history_from: Callable[[], int | None] | None = None,
    ) -> tuple[int, int]:
        """Write the changed buckets of `partition`, then its new dedup ids, then the commit
        marker, then the history offset (`history_from()`, when it gives one), all to its
        changelog partition (`anchor` is one of its events). Returns the number of bucket
        and dedup writes."""
        state = self.partition(partition)
        seq, writes = state.take_writes()
        with partition_scope(anchor):
            for key, value in writes:
                if len(value) > LARGE_BUCKET_BYTES:
                    log.warning(
                        "state bucket %s is %d bytes; raise TRUSTSCORE_STATE_BUCKETS (a record "
                        "over the broker's message limit, 1 MiB by default, cannot be written)",
                        key.decode(),
                        len(value),
                    )
                self._table[key] = value
            dedup_writes = dedup.checkpoint(partition, anchor, seq) if dedup is not None else 0
            if writes or dedup_writes:
                key, value = state.commit(seq)
                self._table[key] = value
                offset = history_from() if history_from is not None else None
                if offset is not None:
                    key, value = state.history_mark(seq, offset)
                    self._table[key] = value
        return len(writes), dedup_writes

    def trim(self) -> None:
        """Bound the decoded entities of every partition (call once per checkpoint)."""
        for state in self._states.values():
            state.trim(self._decoded_limit)

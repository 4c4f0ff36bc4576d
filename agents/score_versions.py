"""Score versions continue after a restore: read back what was published, adopt it.

The scoring engine publishes versions (deltas, history rows) every conflation window but
makes the entity state that numbers them durable only at checkpoints. After a kill -9, a
takeover or a rebalance, a partition's state is that of its last checkpoint, possibly
behind versions that readers have already seen. Before the engine folds anything into a
partition restored in this generation, `ScoreVersions.ready` reads the partition of the
score-history topic (where scoring sends each partition's rows, on that partition) from
the offset stored with the checkpoint (`h:{partition}`, tables/state_buckets.py) to its
end, and every entity whose rows go beyond its restored `Published` adopts the newest one
(scoring/history.py `adopt`). Re-folding the unacknowledged input then makes a version only
if the score differs from the last published one, numbered after it: no number is issued
twice, none is skipped. This is how Kafka Streams applications without transactions
recover what they produced: by reading their own output.

The offset stored with each checkpoint is a lower bound of the history records published
after that checkpoint's state: the end read at the restore, raised to just after the
highest history record this worker has seen delivered. An entity adopted from history but
not in the restored state (created after the checkpoint) waits until the re-read input
creates it; until then the stored offset stays at the one read from, so a second crash
reads those rows again.

Known limit: a worker that lost a partition in a rebalance but is still running may send
history for it for a moment after the new owner read the end (Faust has no fencing here);
such a late version can still be numbered twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from trustscore_stream.output import Delivered
from trustscore_stream.scoring.history import HistoryRow, adopt, decode_history
from trustscore_stream.scoring.publication import Published, Stored
from trustscore_stream.tables.entity_state import EntityStore

log = logging.getLogger(__name__)

# Reading a partition's history tail normally takes well under a second; a broker that does
# not answer for this long is an outage: the lane processor fails and the worker restarts.
READ_TIMEOUT_S = 120.0


class HistoryTail(Protocol):
    """Reads partitions of the score-history topic."""

    async def read(
        self,
        starts: Mapping[int, int | None],
        apply: Callable[[int, list[HistoryRow]], None],
    ) -> dict[int, int]:
        """Give `apply` the rows of each partition from its start offset (None: the
        beginning) to its end, in order; return each partition's end offset."""
        ...


class KafkaHistoryTail:
    """`HistoryTail` over the broker: a consumer outside any group, one per read."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float = READ_TIMEOUT_S) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._timeout_s = timeout_s

    async def read(
        self,
        starts: Mapping[int, int | None],
        apply: Callable[[int, list[HistoryRow]], None],
    ) -> dict[int, int]:
        tps = {p: TopicPartition(self._topic, p) for p in starts}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            # A start the log no longer holds (retention) means: from what it holds.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            request_timeout_ms=int(self._timeout_s * 1000),
        )
        await consumer.start()
        try:
            consumer.assign(list(tps.values()))
            for p, tp in tps.items():
                start = starts[p]
                if start is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, start)
            # The end of each partition is the high watermark of its first fetch, not
            # ListOffsets, which the embedded broker answers short after a multi-record
            # batch (docs/operations.md, "The embedded broker").
            ends: dict[int, int] = {}
            deadline = time.monotonic() + self._timeout_s
            while True:
                fetched = await consumer.getmany(timeout_ms=200)
                for tp, records in fetched.items():
                    end = ends.get(tp.partition)
                    for record in records:
                        if end is not None and record.offset >= end:
                            break
                        rows = self._decode(tp.partition, record.offset, record.value)
                        if rows:
                            apply(tp.partition, rows)
                        await asyncio.sleep(0)  # a big tail must not hold the event loop
                for p, tp in tps.items():
                    highwater = consumer.highwater(tp)
                    if p not in ends and highwater is not None:
                        ends[p] = int(highwater)
                if len(ends) == len(tps) and await _caught_up(consumer, tps, ends):
                    return ends
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"reading {self._topic} partitions {sorted(tps)} did not finish "
                        f"within {self._timeout_s:g}s"
                    )
        finally:
            await consumer.stop()

    def _decode(self, partition: int, offset: int, value: bytes | None) -> list[HistoryRow]:
        if value is None:
            return []
        try:
            return decode_history(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # The history agent dead-letters it too; it holds no version we can adopt.
            log.warning(
                "score history %s[%d]@%d does not decode, skipped: %s",
                self._topic,
                partition,
                offset,
                exc,
            )
            return []


async def _caught_up(
    consumer: AIOKafkaConsumer, tps: Mapping[int, TopicPartition], ends: Mapping[int, int]
) -> bool:
    for p, tp in tps.items():
        if int(await consumer.position(tp)) < ends[p]:
            return False
    return True


class ScoreVersions:
    """Per generation: which partitions were brought up to their published versions, the
    entities adopted before their state exists, and each partition's history offset for
    the next checkpoint."""

    def __init__(
        self,
        tail: HistoryTail | None,
        entities: EntityStore,
        threshold: float,
        generation: Callable[[], int],
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        self._tail = tail
        self._entities = entities
        self._threshold = threshold
        self._generation = generation
        self._flush = flush
        self._seen_generation: int | None = None
        self._ready: set[int] = set()
        self._read_from: dict[int, int | None] = {}  # where each partition was read from
        self._floor: dict[int, int] = {}  # the history offset for the next checkpoint
        self._deliveries: dict[int, list[asyncio.Future[Delivered]]] = {}
        # partition -> entity -> what it adopted while it has no state yet
        self._orphans: dict[int, dict[str, Published]] = {}

    def _check_generation(self) -> None:
        generation = self._generation()
        if generation != self._seen_generation:
            # Partitions may have moved and their state is re-read: start over.
            self._ready.clear()
            self._read_from.clear()
            self._floor.clear()
            self._deliveries.clear()
            self._orphans.clear()
            self._seen_generation = generation

    async def ready(self, partitions: Iterable[int]) -> bool:
        """Bring the given partitions' restored state up to the versions already published
        (once per generation, before anything is folded into them). False: a rebalance
        happened meanwhile; the caller must drop its input (it is not acknowledged)."""
        self._check_generation()
        todo = sorted(set(partitions) - self._ready)
        if not todo or self._tail is None:
            return True
        generation = self._generation()
        started = time.perf_counter()
        # Versions this worker sent before (an earlier generation) must be in the log
        # before its end is taken.
        await self._flush()
        if self._generation() != generation:
            return False
        starts = {p: self._entities.partition(p).history_from for p in todo}
        read = [0]
        moved: set[str] = set()

        def apply(partition: int, rows: list[HistoryRow]) -> None:
            if self._generation() == generation:
                read[0] += len(rows)
                moved.update(self._adopt(partition, rows))

        ends = await self._tail.read(starts, apply)
        if self._generation() != generation:
            return False
        for p in todo:
            self._ready.add(p)
            self._read_from[p] = starts[p]
            self._floor[p] = ends[p]
        orphans = sum(len(self._orphans.get(p, {})) for p in todo)
        log.info(
            "score versions: partitions %s read from history %s to %s (%d rows) in %.0f ms; "
            "%d entities continue from a version newer than their checkpoint (%d not in it)",
            todo,
            [starts[p] for p in todo],
            [ends[p] for p in todo],
            read[0],
            (time.perf_counter() - started) * 1000,
            len(moved),
            orphans,
            extra={"stage": "score"},
        )
        return True

    def _adopt(self, partition: int, rows: list[HistoryRow]) -> list[str]:
        """Adopt one record's rows; returns the entities that moved on."""
        state_of = self._entities.partition(partition)
        orphans = self._orphans.setdefault(partition, {})
        by_entity: dict[str, list[HistoryRow]] = {}
        for row in rows:
            by_entity.setdefault(row.entity, []).append(row)
        moved: list[str] = []
        for entity, its_rows in by_entity.items():
            stored = state_of.get(entity)
            before = stored.published if stored is not None else orphans.get(entity, Published())
            after = adopt(before, its_rows, self._threshold)
            if after is before:
                continue
            moved.append(entity)
            if stored is not None:
                state_of.put(entity, Stored(stored.state, after))
            else:
                orphans[entity] = after
        return moved

    def created(self, partition: int, entity: str) -> Published:
        """The publication an entity folded into existence starts from: what it adopted
        from history if it had published before, else none."""
        orphans = self._orphans.get(partition)
        if orphans:
            found = orphans.pop(entity, None)
            if found is not None:
                return found
        return Published()

    def sent(self, partition: int, delivery: Awaitable[Delivered] | None) -> None:
        """A history record of `partition` was sent; its offset raises the next floor."""
        if delivery is None or partition not in self._floor:
            return
        self._deliveries.setdefault(partition, []).append(asyncio.ensure_future(delivery))

    def history_from(self, partition: int) -> int | None:
        """The history offset to store with `partition`'s next commit marker: every
        history record published after the state being written is at or after it. None:
        nothing to store (not read in this generation, or read from the beginning while
        an adopted entity still has no state)."""
        floor = self._floor.get(partition)
        if floor is None:
            return None
        if self._orphans.get(partition):
            return self._read_from[partition]  # read these rows again after a crash
        pending: list[asyncio.Future[Delivered]] = []
        for delivery in self._deliveries.get(partition, []):
            if not delivery.done():
                pending.append(delivery)
            elif not delivery.cancelled() and delivery.exception() is None:
                floor = max(floor, delivery.result().offset + 1)
        self._deliveries[partition] = pending
        self._floor[partition] = floor
        return floor

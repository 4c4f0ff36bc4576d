"""Stage 3, the handler of the lanes: fold events into entity state, score what changed,
publish deltas and history, all once per checkpoint (one lane batch).

Per batch and partition: drop events already applied (the `scoring-dedup` table, which is
checkpointed with the state it guards), apply the rest to the cached state, score the
touched NFTs, collections and wallets, and publish those that moved by at least the
significance threshold since their last delta (every change is a new version). Then,
in this order: history rows to the database (idempotent on
(entity, version)), changed records to `entity-state` (one write per key), the dedup chunk,
the deltas; the lane agent acknowledges the input only after that. A database failure
raises TransientError before any state is written, so the batch is retried whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime

from faust.types import EventT
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from trustscore_stream.agents.lanes import TransientError
from trustscore_stream.db.history import ScoreVersionRow, record_score_versions
from trustscore_stream.events.routed import Routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.partitioning import partition_for
from trustscore_stream.scoring import (
    CollectionState,
    NftState,
    ScoreResult,
    State,
    WalletState,
    apply,
    keys_for,
    score_collection,
    score_nft,
    score_wallet,
)
from trustscore_stream.scoring.publication import (
    Publication,
    Published,
    Stored,
    delta_record,
    is_new_version,
    publish,
)
from trustscore_stream.settings import Settings
from trustscore_stream.tables.dedup import DedupStore
from trustscore_stream.tables.entity_state import EntityStore
from trustscore_stream.tables.watched import WatchIndex
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)


def score_state(
    key: str, records: dict[str, Stored], store: EntityStore, now: datetime
) -> ScoreResult | None:
    """Score one entity from its state and, for an NFT, its collection's."""
    stored = records.get(key) or store.get(key)
    if stored is None:
        return None
    state = stored.state
    if isinstance(state, NftState):
        collection_key = "collection:" + key.split(":", 1)[1].rsplit(":", 1)[0]
        coll = records.get(collection_key) or store.get(collection_key)
        coll_state = coll.state if coll is not None else None
        assert coll_state is None or isinstance(coll_state, CollectionState)
        return score_nft(state, coll_state, None, now)
    if isinstance(state, CollectionState):
        return score_collection(state, None, now)
    assert isinstance(state, WalletState)
    return score_wallet(state, now)


class ScoringStage:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        metrics: Metrics,
        entities: EntityStore,
        dedup: DedupStore,
        engine: Engine,
        watched: WatchIndex | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.entities = entities
        self.dedup = dedup
        self.engine = engine
        self.watched = watched
        self.db_ready = asyncio.Event()
        self.threshold = settings.significance

    async def handle(self, items: list[Routed], anchors: dict[int, EventT[bytes]]) -> None:
        now_s = time.time()
        now = datetime.fromtimestamp(now_s, UTC)
        by_partition: dict[int, list[Routed]] = defaultdict(list)
        for item in items:
            by_partition[partition_for(item.partition_key, self.settings.partitions)].append(item)
        staged: dict[int, dict[str, Stored]] = {}
        publications: list[Publication] = []
        try:
            for partition, partition_items in by_partition.items():
                records, pubs = self._fold(partition, partition_items, now_s, now)
                staged[partition] = records
                publications.extend(pubs)
            if publications:
                await self._record_history(publications)
        except BaseException:
            for partition in by_partition:
                self.dedup.memory(partition).discard_pending()
            raise
        writes = 0
        for partition, records in staged.items():
            anchor = anchors[partition]
            writes += self.entities.write(anchor, records)
            self.metrics.table_writes.labels("dedup").inc(self.dedup.checkpoint(partition, anchor))
        self.metrics.table_writes.labels("entity-state").inc(writes)
        emitted = [p for p in publications if p.emit]
        for p in emitted:
            await self.topics.deltas.send(key=p.entity.encode(), value=delta_record(p))
        self.metrics.deltas.inc(len(emitted))
        self.metrics.versions.inc(len(publications))

    def _fold(
        self, partition: int, items: list[Routed], now_s: float, now: datetime
    ) -> tuple[dict[str, Stored], list[Publication]]:
        memory = self.dedup.memory(partition)
        records: dict[str, Stored] = {}
        causes: dict[str, str] = {}
        for item in items:
            if not memory.remember(item.event_id, now_s):
                self.metrics.duplicates.inc()
                continue
            event = item.envelope
            current: dict[str, State] = {}
            for key in keys_for(event):
                stored = records.get(key) or self.entities.get(key)
                if stored is not None:
                    current[key] = stored.state
            for key, state in apply(current, event).items():
                previous = records.get(key) or self.entities.get(key)
                published = previous.published if previous is not None else Published()
                records[key] = Stored(state, published)
                causes[key] = event.event_id
        # Dependants: a changed collection reaches the NFTs somebody watches now; the rest
        # are scored on read. Work is proportional to watchers, not to collection size.
        dependants: set[str] = set()
        for key in [k for k in records if k.startswith("collection:")]:
            for nft in self.watched.nfts_of(key) if self.watched is not None else ():
                if nft not in records:
                    stored = self.entities.get(nft)
                    if stored is not None:
                        records[nft] = stored
                        causes[nft] = causes[key]
                        dependants.add(nft)
        self.metrics.dependants_rescored.inc(len(dependants))
        publications: list[Publication] = []
        for key in list(records):
            result = score_state(key, records, self.entities, now)
            if result is None:
                continue
            stored = records[key]
            if is_new_version(stored.published, result):
                published, publication = publish(
                    key, stored.published, result, causes[key], now, self.threshold
                )
                records[key] = Stored(stored.state, published)
                publications.append(publication)
            elif key in dependants:
                del records[key]  # rescored, unchanged: nothing to write
        return records, publications

    async def _record_history(self, publications: list[Publication]) -> None:
        rows = [
            ScoreVersionRow(
                entity=p.entity,
                version=p.version,
                score=p.score,
                level=p.level,
                confidence=p.result.confidence,
                model_version=p.result.model_version,
                factors={
                    fid: {"value": f.value, "weight": f.weight, "evidence": list(f.evidence)}
                    for fid, f in p.result.factors.items()
                },
                factors_changed=p.factors_changed,
                cause_event_id=p.cause_event_id,
                at=p.at,
            )
            for p in publications
        ]
        await self.db_ready.wait()
        started = time.perf_counter()
        try:
            await asyncio.to_thread(record_score_versions, self.engine, rows)
        except SQLAlchemyError as exc:
            self.metrics.db_failures.inc()
            raise TransientError(f"score history not written: {exc.__class__.__name__}") from exc
        finally:
            self.metrics.db_write_seconds.observe(time.perf_counter() - started)

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
- `fold_links` (link records from `trustscore-wallet-links`, through the same lane processor
  and checkpoints): a creator's collection report is applied to its wallet state; a wallet
  summary is kept as a replica on this partition and its dependants here are marked
  changed: the creator's collections (and so their watched NFTs) and, for a wallet that
  flags owners, the watched NFTs whose ownership chain holds it. Every other NFT sees the
  replica on read (`score_stored`). `publish` sends the links that its changes call for
  (scoring/links.py): reports of changed collections, summaries of changed wallets.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
from faust.types import EventT

from trustscore_stream.agents.score_versions import HistoryTail, ScoreVersions
from trustscore_stream.batched_histogram import Tally
from trustscore_stream.events.control import RescoreRequest
from trustscore_stream.events.routed import Routed
from trustscore_stream.metrics import Metrics
from trustscore_stream.output import FaustOutput, Output
from trustscore_stream.partitioning import partition_for
from trustscore_stream.scoring import (
    CollectionState,
    NftState,
    ScoreResult,
    State,
    WalletState,
    WalletSummary,
    apply,
    apply_report,
    chain_wallets,
    creator_of,
    score_collection,
    score_nft,
    score_wallet,
)
from trustscore_stream.scoring.causes import Causes, add_cause
from trustscore_stream.scoring.history import HistoryRow, encode_history, history_row
from trustscore_stream.scoring.links import (
    FLAGGED_INDEX_KEY,
    FlaggedIndex,
    Link,
    Replica,
    ReportLink,
    SentReport,
    SentSummary,
    SummaryLink,
    encode_links,
    flags_owners,
    receive_summary,
    reindex,
    replica_collections,
    report_to_send,
    sent_key,
    summary_key,
    summary_to_send,
)
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

# Rescore request ids remembered for the ops endpoint that waits on them.
MAX_REMEMBERED_RESCORES = 1000


@dataclass
class LaneRecord:
    """One consumed lane (or retry) record and the events it carries, or a control request
    (events/control.py) instead of events."""

    event: EventT[bytes]
    items: list[Routed]
    rescore: RescoreRequest | None = None

    @property
    def partition(self) -> int:
        return int(self.event.message.partition)


@dataclass
class LinkRecord:
    """One consumed `trustscore-wallet-links` record and the links it carries."""

    event: EventT[bytes]
    links: list[Link]

    @property
    def partition(self) -> int:
        return int(self.event.message.partition)


def collection_of(nft: str) -> str:
    return "collection:" + nft.split(":", 1)[1].rsplit(":", 1)[0]


def replica_of(state_of: PartitionState, wallet: str | None) -> WalletSummary | None:
    """The summary of `wallet` this partition holds (None: nothing to say, or never heard)."""
    if wallet is None:
        return None
    held = state_of.get_link(summary_key(wallet))
    return held.summary if isinstance(held, Replica) else None


def chain_replicas(state_of: PartitionState, nft: NftState) -> dict[str, WalletSummary] | None:
    """Summaries of the flagged wallets in an NFT's ownership chain (only those change its
    score). The index keeps the common case, no flagged wallet at all, to one lookup."""
    index = state_of.get_link(FLAGGED_INDEX_KEY)
    if not isinstance(index, FlaggedIndex) or not index.wallets:
        return None
    found: dict[str, WalletSummary] = {}
    for wallet in chain_wallets(nft):
        if wallet in index.wallets:
            summary = replica_of(state_of, wallet)
            if summary is not None:
                found[wallet] = summary
    return found or None


class _StateView(Mapping[str, State]):
    """The partition's states as `apply` reads them: the keys of `keys_for`, and the other
    NFTs of the same collection a late event re-checks (scoring/state.py). Remembers what it
    read, to keep their published versions."""

    __slots__ = ("_of", "found")

    def __init__(self, state_of: PartitionState) -> None:
        self._of = state_of
        self.found: dict[str, Stored] = {}

    def __getitem__(self, key: str) -> State:
        stored = self._of.get(key)
        if stored is None:
            raise KeyError(key)
        self.found[key] = stored
        return stored.state

    def get(self, key: str, default: object = None) -> Any:
        stored = self._of.get(key)
        if stored is None:
            return default
        self.found[key] = stored
        return stored.state

    def __iter__(self) -> Iterator[str]:
        return iter(self.found)  # `apply` only looks keys up

    def __len__(self) -> int:
        return len(self.found)


def score_stored(key: str, stored: Stored, state_of: PartitionState, now: datetime) -> ScoreResult:
    """Score one entity from its state and, for an NFT, its collection's (same partition),
    with the creator's and the ownership chain's wallet summaries held on this partition."""
    state = stored.state
    if isinstance(state, NftState):
        coll = state_of.get(collection_of(key))
        coll_state = coll.state if coll is not None else None
        assert coll_state is None or isinstance(coll_state, CollectionState)
        creator = replica_of(state_of, creator_of(state, coll_state))
        return score_nft(state, coll_state, creator, now, wallets=chain_replicas(state_of, state))
    if isinstance(state, CollectionState):
        return score_collection(state, replica_of(state_of, creator_of(None, state)), now)
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
        history_tail: HistoryTail | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.entities = entities
        self.dedup = dedup
        self.watched = watched
        self._generation = generation
        self.output: Output = output if output is not None else FaustOutput()
        # Restored partitions continue from the versions already published (None: tests
        # that do not restore).
        self.versions = ScoreVersions(
            history_tail, entities, settings.significance, generation, self.output.flush
        )
        self._seen_generation: int | None = None
        self.threshold = settings.significance
        # partition -> changed entity -> the events that changed it (not yet scored), the
        # last one its cause (scoring/causes.py)
        self._unscored: dict[int, Causes] = {}
        # partition -> one of its folded events, to write its changelog partition
        self._anchors: dict[int, EventT[bytes]] = {}
        # target partition -> links the last publish called for (sent at its end)
        self._outgoing: dict[int, list[Link]] = {}
        # partition -> entities a received summary marked changed (dependants, for metrics)
        self._linked: dict[int, set[str]] = {}
        # partition -> changed entity -> (unix time its first change in this window was
        # applied, occurred_at of the oldest event that changed it, inf if none did)
        self._since: dict[int, dict[str, tuple[float, float]]] = {}
        # delivery watchers of published deltas (latency metrics), kept until they finish
        self._watching_deliveries: set[asyncio.Task[None]] = set()
        self.pending_events = 0
        # Rescore requests folded since the last rebalance, oldest first (bounded): the ops
        # endpoint waits until its request is folded and published (web/ops.py).
        self._rescores_folded: dict[str, None] = {}

    def _check_generation(self) -> None:
        generation = self._generation()
        if generation != self._seen_generation:
            # A rebalance: what was folded but not checkpointed is dropped with the cached
            # state (the lanes drop its unacknowledged input, which is read again).
            self._unscored.clear()
            self._anchors.clear()
            self._outgoing.clear()
            self._linked.clear()
            self._rescores_folded.clear()
            self._since.clear()
            self.pending_events = 0
            self._seen_generation = generation

    async def fold(self, records: Sequence[LaneRecord]) -> None:
        self._check_generation()
        if not await self.versions.ready({r.partition for r in records}):
            return  # rebalanced meanwhile: this input is not acknowledged, it is read again
        now_s = time.time()
        conflated = 0
        trace = log.isEnabledFor(logging.DEBUG)  # once per batch: ~0 cost when off
        metrics = self.metrics
        # lane -> (since event time, since ingest), tallied here and recorded once per fold
        tallies: dict[str, tuple[Tally, Tally]] = {}
        for record in records:
            partition = record.partition
            state_of = self.entities.partition(partition)
            memory = self.dedup.memory(partition)
            unscored = self._unscored.setdefault(partition, {})
            if record.rescore is not None:
                self._fold_rescore(partition, state_of, unscored, record.rescore)
            since = self._since.setdefault(partition, {})
            lane = record.items[0].lane if record.items else ""
            pair = tallies.get(lane)
            if pair is None:
                pair = tallies[lane] = (
                    metrics.event_to_scored.tally(),
                    metrics.ingest_to_scored.tally(),
                )
            from_event, from_ingest = pair
            for item in record.items:
                if not memory.remember(item.event_id, now_s):
                    metrics.duplicates.inc()
                    if trace:
                        log.debug(
                            "duplicate dropped", extra={"stage": "score", "event_id": item.event_id}
                        )
                    continue
                event = item.envelope
                occurred = event.occurred_at.timestamp()
                from_event.add(now_s - occurred)
                from_ingest.add(now_s - item.ingested_at)
                view = _StateView(state_of)
                found = view.found
                changed = apply(view, event)
                for key, state in changed.items():
                    previous = found.get(key)
                    if previous is None:
                        state_of.put(key, Stored(state, self.versions.created(partition, key)))
                    else:
                        state_of.put(key, Stored(state, previous.published))
                    conflated += add_cause(unscored, key, item.event_id)
                    first = since.get(key)
                    if first is None:
                        since[key] = (now_s, occurred)
                    elif occurred < first[1]:
                        since[key] = (first[0], occurred)
                if trace:
                    log.debug(
                        "event folded into %d entities",
                        len(changed),
                        extra={
                            "stage": "score",
                            "event_id": item.event_id,
                            "entities": list(changed),
                        },
                    )
            self._anchors[partition] = record.event
            self.pending_events += len(record.items)
        metrics.conflated.inc(conflated)
        for lane, (from_event, from_ingest) in tallies.items():
            metrics.event_to_scored.record(from_event, lane)
            metrics.ingest_to_scored.record(from_ingest, lane)

    def _fold_rescore(
        self,
        partition: int,
        state_of: PartitionState,
        unscored: Causes,
        request: RescoreRequest,
    ) -> None:
        """Mark the requested entities changed: the next publish scores them from their
        state and versions them only if the score differs (so a repeat adds nothing)."""
        for entity in request.entities:
            if state_of.get(entity) is not None:
                unscored.setdefault(entity, [request.cause])  # an event's cause goes first
                self._link_changed(partition, entity)  # no event time, like a link
        self._rescores_folded[request.request_id] = None
        while len(self._rescores_folded) > MAX_REMEMBERED_RESCORES:
            del self._rescores_folded[next(iter(self._rescores_folded))]

    def rescore_folded(self, request_id: str) -> bool:
        """Whether this worker folded the rescore request since its last rebalance."""
        self._check_generation()
        return request_id in self._rescores_folded

    def is_pending(self, entity: str) -> bool:
        """Whether `entity` changed since the last publish (its next version is coming)."""
        self._check_generation()
        return entity in self._unscored.get(self.entities.partition_of(entity), {})

    async def publish(self) -> None:
        """Score what changed since the last call; send versions and deltas."""
        self._check_generation()
        if not any(self._unscored.values()):
            return
        now = datetime.now(UTC)
        publications: list[Publication] = []
        # per publication: (first change applied, oldest event time), for latency metrics
        timings: list[tuple[float, float]] = []
        history: dict[int, list[HistoryRow]] = {}
        dependants = 0
        unknown = (now.timestamp(), math.inf)
        for partition, changed in self._unscored.items():
            state_of = self.entities.partition(partition)
            linked = self._linked.get(partition, set())
            since = self._since.get(partition, {})
            eager: Causes = {}
            if self.watched is not None:
                for key in [k for k in changed if k.startswith("collection:")]:
                    for nft in self.watched.nfts_of(key):
                        if nft not in changed:
                            eager[nft] = changed[key]
                            # a dependant changed when its collection did
                            since[nft] = since.get(key, unknown)
            rows: list[HistoryRow] = []
            for key, causes in (*changed.items(), *eager.items()):
                stored = state_of.get(key)
                if stored is None:
                    continue
                result = score_stored(key, stored, state_of, now)
                if not is_new_version(stored.published, result):
                    continue
                published, publication = publish(
                    key, stored.published, result, causes[-1], now, self.threshold, causes
                )
                if isinstance(stored.state, NftState) and stored.state.provenance.owner:
                    publication.owner = stored.state.provenance.owner
                state_of.put(key, Stored(stored.state, published))
                publications.append(publication)
                timings.append(since.get(key, unknown))
                rows.append(history_row(publication, published.emitted))
                dependants += key in eager or key in linked
            if rows:
                history[partition] = rows
            self._plan_links(state_of, changed, now)
        self._unscored.clear()
        self._linked.clear()
        self._since.clear()
        self.metrics.dependants_rescored.inc(dependants)
        for partition, rows in history.items():
            for record in encode_history(rows):
                delivery = await self.output.send(
                    self.topics.history, value=record, partition=partition
                )
                self.versions.sent(partition, delivery)
        emitted = 0
        partitions = self.settings.partitions
        if log.isEnabledFor(logging.DEBUG):
            _trace_publications(publications)
        deliveries: list[Awaitable[object]] = []
        delta_timings: list[tuple[float, float]] = []
        for p, timing in zip(publications, timings, strict=True):
            if p.emit:
                value = orjson.dumps(delta_record(p))
                # The partition Kafka's default partitioner would pick for this key, from our
                # cached murmur2 rather than the producer's uncached pure-Python one.
                partition = partition_for(p.entity, partitions)
                deliveries.append(
                    await self.output.send(
                        self.topics.deltas, key=p.entity.encode(), value=value, partition=partition
                    )
                )
                delta_timings.append(timing)
                emitted += 1
        self.metrics.deltas.inc(emitted)
        if deliveries:
            self._observe_when_delivered(deliveries, delta_timings)
        self.metrics.versions.inc(len(publications))
        outgoing, self._outgoing = self._outgoing, {}
        for target, links in outgoing.items():
            for link in links:
                self.metrics.links.labels(_kind(link), "sent").inc()
            for record in encode_links(links):
                await self.output.send(self.topics.links, value=record, partition=target)

    def _observe_when_delivered(
        self, deliveries: list[Awaitable[object]], timings: list[tuple[float, float]]
    ) -> None:
        """Record the publication latencies once the broker has acknowledged this publish's
        deltas: one watcher task per publish, not per delta, and the publish does not wait."""

        async def watch() -> None:
            try:
                await asyncio.gather(*deliveries)
            except Exception:  # (the checkpoint's flush raises it where it matters)
                return
            delivered = time.time()
            from_change = self.metrics.scored_to_published.tally()
            from_event = self.metrics.event_to_published.tally()
            for changed_at, occurred in timings:
                from_change.add(delivered - changed_at)
                if occurred != math.inf:
                    from_event.add(delivered - occurred)
            self.metrics.scored_to_published.record(from_change)
            self.metrics.event_to_published.record(from_event)

        task = asyncio.ensure_future(watch())
        self._watching_deliveries.add(task)
        task.add_done_callback(self._watching_deliveries.discard)

    def _plan_links(self, state_of: PartitionState, changed: Causes, now: datetime) -> None:
        """Queue the reports of changed collections and the summaries of changed wallets that
        say something new; remember what was sent with the partition's state."""
        partitions = self.settings.partitions
        now_ms = int(now.timestamp() * 1000)
        for key, causes in changed.items():
            cause = causes[-1]
            stored = state_of.get(key)
            if stored is None:
                continue
            state = stored.state
            if isinstance(state, CollectionState):
                last = state_of.get_link(sent_key(key))
                sent = report_to_send(state, last if isinstance(last, SentReport) else None, now)
                if sent is not None:
                    state_of.put_link(sent_key(key), sent)
                    target = partition_for(sent.wallet, partitions)
                    link = ReportLink(sent.wallet, cause, sent.report)
                    self._outgoing.setdefault(target, []).append(link)
            elif isinstance(state, WalletState):
                previous = state_of.get_link(sent_key(key))
                planned = summary_to_send(
                    state,
                    previous if isinstance(previous, SentSummary) else None,
                    now_ms,
                    partitions,
                    lambda c: partition_for(c, partitions),
                    cause,
                )
                if planned is not None:
                    memory, sends = planned
                    state_of.put_link(sent_key(key), memory)
                    for target, summary_link in sends:
                        self._outgoing.setdefault(target, []).append(summary_link)

    async def fold_links(self, records: Sequence[LinkRecord]) -> None:
        """Apply link records (idempotent: reports by report time, summaries by number)."""
        self._check_generation()
        if not await self.versions.ready({r.partition for r in records}):
            return  # rebalanced meanwhile: this input is not acknowledged, it is read again
        for record in records:
            partition = record.partition
            state_of = self.entities.partition(partition)
            unscored = self._unscored.setdefault(partition, {})
            for link in record.links:
                if isinstance(link, ReportLink):
                    applied = self._receive_report(state_of, unscored, link)
                else:
                    applied = self._receive_summary(partition, state_of, unscored, link)
                self.metrics.links.labels(_kind(link), "applied" if applied else "repeat").inc()
            self._anchors[partition] = record.event
            self.pending_events += len(record.links)

    def _receive_report(self, state_of: PartitionState, unscored: Causes, link: ReportLink) -> bool:
        previous = state_of.get(link.wallet)
        wallet = previous.state if previous is not None else None
        assert wallet is None or isinstance(wallet, WalletState)
        updated = apply_report(wallet, link.wallet, link.report)
        if wallet is not None and updated.collections == wallet.collections:
            return False  # a repeat, or older than what the creator's record holds
        published = (
            previous.published
            if previous is not None
            else self.versions.created(state_of.partition, link.wallet)
        )
        state_of.put(link.wallet, Stored(updated, published))
        add_cause(unscored, link.wallet, link.cause)
        self._link_changed(state_of.partition, link.wallet)
        return True

    def _receive_summary(
        self, partition: int, state_of: PartitionState, unscored: Causes, link: SummaryLink
    ) -> bool:
        key = summary_key(link.wallet)
        found = state_of.get_link(key)
        held = found if isinstance(found, Replica) else None
        replica = receive_summary(held, link)
        if replica is None:
            return False
        state_of.put_link(key, replica)
        index = state_of.get_link(FLAGGED_INDEX_KEY)
        reindexed = reindex(index if isinstance(index, FlaggedIndex) else None, replica)
        if reindexed is not None:
            state_of.put_link(FLAGGED_INDEX_KEY, reindexed)
        # The creator's collections here (and, through publish, their watched NFTs).
        partitions = self.settings.partitions
        dependants = self._linked.setdefault(partition, set())
        for collection in replica_collections(held, replica):
            if partition_for(collection, partitions) == partition and state_of.get(collection):
                unscored.setdefault(collection, [link.cause])
                self._link_changed(partition, collection)
                dependants.add(collection)
        was_flagging = held is not None and flags_owners(held.summary)
        if (was_flagging or flags_owners(replica.summary)) and self.watched is not None:
            for nft in self.watched.watched_nfts():
                if partition_for(collection_of(nft), partitions) != partition:
                    continue
                stored = state_of.get(nft)
                state = stored.state if stored is not None else None
                if isinstance(state, NftState) and link.wallet in chain_wallets(state):
                    unscored.setdefault(nft, [link.cause])
                    self._link_changed(partition, nft)
                    dependants.add(nft)
        return True

    def _link_changed(self, partition: int, key: str) -> None:
        """A link or a rescore request changed `key`: the change counts from now, and it
        carries no event time."""
        self._since.setdefault(partition, {}).setdefault(key, (time.time(), math.inf))

    async def checkpoint(self) -> None:
        """Publish, write changed state and dedup chunks, wait for every output."""
        started = time.perf_counter()
        events = self.pending_events
        await self.publish()
        self._check_generation()
        writes = dedup_writes = 0
        for partition, anchor in self._anchors.items():
            state, seen = self.entities.checkpoint(
                partition, anchor, self.dedup, partial(self.versions.history_from, partition)
            )
            writes += state
            dedup_writes += seen
        self.entities.trim()
        # Deltas and history go through the batching producer, which Faust does not flush
        # before it commits: they must be delivered before the lanes acknowledge.
        await self.output.flush()
        self.metrics.table_writes.labels("entity-state").inc(writes)
        self.metrics.table_writes.labels("scoring-dedup").inc(dedup_writes)
        log.info(
            "checkpoint: %d events, %d partitions, %d state and %d dedup writes in %.0f ms",
            events,
            len(self._anchors),
            writes,
            dedup_writes,
            (time.perf_counter() - started) * 1000,
            extra={"stage": "checkpoint"},
        )
        self._anchors.clear()
        self.pending_events = 0
        # The lanes acknowledge next; Faust flushes the producer before it commits offsets,
        # so everything queued above is durable before the input it covers is committed.


def _trace_publications(publications: Sequence[Publication]) -> None:
    """One DEBUG line per new version, naming the events that made it (conflated)."""
    for p in publications:
        log.debug(
            "delta %s v%d" if p.emit else "version %s v%d (below significance: no delta)",
            p.entity,
            p.version,
            extra={
                "stage": "delta",
                "entity": p.entity,
                "version": p.version,
                "score": p.score,
                "previous": p.previous,
                "event_id": p.cause_event_id,
                "event_ids": list(p.cause_event_ids),
            },
        )


def _kind(link: Link) -> str:
    return "report" if isinstance(link, ReportLink) else "summary"

"""Notifications on the stream side: subscriptions kept in a changelog table, and the
notifier that turns score changes into notifications for the users who care.

`trustscore-subscriptions` (key: entity id, on `partition_for(entity)`) → agent
"subscriptions" → table `subscriptions` (entity → its subscriptions). The deltas topic is
keyed and partitioned the same way, so agent "notify" reads a delta's subscriptions from
its own partition. Per (subscription, entity) it keeps significance and pacing state
(table `watching`), detects what is significant (notifications/significance.py), paces it
(notifications/pacing.py), renders it (notifications/content.py) and records it.

Order per batch, so a crash at any point loses nothing and creates nothing twice: the
notifications (with their queued deliveries) are recorded in the database first, keyed by
a hash of (user, entity, kind, cause) so a replay inserts nothing new; then the new state
is written; then what is not yet on the live stream is pushed to `trustscore-notifications`
(key: user id) and marked pushed; then the deltas are acknowledged. A crash before the
state write replays the batch from the old state: the same notifications, already there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import msgspec
import orjson
from faust.types import EventT, StreamT, TableT
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from trustscore_stream.agents.batches import ack_all, event_batches, fail_fast
from trustscore_stream.db.notifications import (
    DIGEST_CAUSE,
    NewDelivery,
    NewNotification,
    mark_pushed,
    recent_counts,
    record_notifications,
    unpushed,
    wallet_subscriptions,
)
from trustscore_stream.events.retry import backoff_delay
from trustscore_stream.metrics import Metrics
from trustscore_stream.notifications.content import Content, render, render_digest
from trustscore_stream.notifications.pacing import Digest, PacingRules, flush, group, pace
from trustscore_stream.notifications.records import (
    SubscriptionChange,
    SubscriptionRecord,
    Watching,
    alerts,
    data_of,
    dedup_key,
    notification_id,
    targets,
)
from trustscore_stream.notifications.significance import (
    SEVERITIES,
    Observation,
    Preferences,
    Signal,
    detect,
)
from trustscore_stream.output import Output
from trustscore_stream.partitioning import partition_for
from trustscore_stream.settings import Settings
from trustscore_stream.tables.partition_scope import partition_scope
from trustscore_stream.topics import Topics

log = logging.getLogger(__name__)

_change = msgspec.json.Decoder(SubscriptionChange)
_subs = msgspec.msgpack.Decoder(dict[str, SubscriptionRecord])
_watching = msgspec.msgpack.Decoder(Watching)
_encode = msgspec.msgpack.Encoder()


class DeltaView(msgspec.Struct):
    """The fields of a CONTRACT §6 delta the notifier reads."""

    entity: str
    score: float
    level: str
    version: int
    at: str
    previous: float | None = None
    cause_event_id: str | None = None
    factors_changed: list[str] = []
    owner: str | None = None  # extension: an NFT's current owner
    evidence: dict[str, list[str]] = {}  # extension: evidence of changed alert factors
    cause_event_ids: list[str] = []  # extension: the events conflated into it (>1)


_delta = msgspec.json.Decoder(DeltaView)


def subscription_change(op: str, sub: SubscriptionRecord, partitions: int) -> tuple[int, bytes]:
    """(partition, value) of a `trustscore-subscriptions` record for `sub`."""
    value = msgspec.json.encode(SubscriptionChange(op, sub))
    return partition_for(sub.entity, partitions), value


class NotifyStage:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        metrics: Metrics,
        engine: Engine,
        subscriptions: TableT[bytes, bytes],
        watching: TableT[bytes, bytes],
        output: Output,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.engine = engine
        self.subscriptions = subscriptions
        self.watching = watching
        self.output = output
        self.pacing = PacingRules(
            cooldown_s=settings.notify_cooldown_s,
            cap_per_hour=settings.notify_cap_per_hour,
            digest_interval_s=settings.notify_digest_interval_s,
        )
        # Watches with a digest waiting (key -> partition), and an event of each partition to
        # scope table access by: the digest timer sends what is due between deltas. After a
        # rebalance a waiting digest is sent with the entity's next delta instead.
        self._digests: dict[bytes, int] = {}
        self._scopes: dict[int, EventT[bytes]] = {}
        self._generation: int | None = None  # the assignment the two maps above belong to
        self._lock = asyncio.Lock()  # the notifier and the digest timer share the state
        # Wallet subscriptions cover the NFTs the wallet holds: an NFT's delta names its
        # owner, and its partition is not the wallet's, so every worker keeps all of them,
        # reloaded from the database (their source of truth) every few seconds.
        self.wallets: dict[str, list[SubscriptionRecord]] = {}

    def register(self, app: faust.App) -> None:
        self.app = app
        app.agent(self.topics.subscriptions, name="subscriptions", concurrency=1)(self.sync)
        app.agent(self.topics.deltas, name="notify", concurrency=1)(self.notify)
        app.timer(max(0.5, min(5.0, self.settings.notify_digest_interval_s / 4)))(
            self.send_due_digests
        )
        app.timer(WALLET_RELOAD_S)(self.reload_wallets)

    async def reload_wallets(self) -> None:
        try:
            rows = await asyncio.to_thread(wallet_subscriptions, self.engine)
        except SQLAlchemyError as exc:  # keep the last good copy while the database is away
            log.warning("wallet subscriptions not reloaded: %s", exc)
            return
        wallets: dict[str, list[SubscriptionRecord]] = {}
        for row in rows:
            wallets.setdefault(row["entity"], []).append(msgspec.convert(row, SubscriptionRecord))
        self.wallets = wallets

    # -- subscriptions ------------------------------------------------------------------

    async def sync(self, stream: StreamT[Any]) -> None:
        async for events in event_batches(stream, 500, self.settings.take_within_s):
            for event in events:
                try:
                    change = _change.decode(event.value)
                except msgspec.DecodeError as exc:
                    log.error("ignoring bad subscription record: %s", exc)  # internal topic
                    continue
                with partition_scope(event):
                    self._apply(change)
            await ack_all(stream, events)

    def _apply(self, change: SubscriptionChange) -> None:
        sub = change.subscription
        key = sub.entity.encode()
        raw = self.subscriptions.get(key)
        current = _subs.decode(raw) if raw else {}
        if change.op == "put":
            current[sub.id] = sub
        else:
            current.pop(sub.id, None)
        if current:
            self.subscriptions[key] = _encode.encode(current)
        elif raw:
            del self.subscriptions[key]

    # -- notifier -----------------------------------------------------------------------

    async def notify(self, stream: StreamT[Any]) -> None:
        async for events in event_batches(stream, 500, self.settings.take_within_s):
            async with self._lock:
                await fail_fast(self.app, self._notify(events))
            await ack_all(stream, events)

    async def _notify(self, events: list[EventT[bytes]]) -> None:
        pending: list[tuple[bytes, NewNotification, Signal | None]] = []
        # The batch's own state per watch: later deltas of an entity see earlier ones.
        states: dict[bytes, tuple[EventT[bytes], Watching]] = {}
        trace = log.isEnabledFor(logging.DEBUG)  # once per batch: ~0 cost when off
        for event in events:
            try:
                delta = _delta.decode(event.value)
                at = datetime.fromisoformat(delta.at.replace("Z", "+00:00"))
                if at.tzinfo is None or not MIN_AT <= at <= MAX_AT:
                    raise ValueError(f"`at` {delta.at!r} is not a recent RFC 3339 time")
                if not (math.isfinite(delta.score) and 0.0 <= delta.score <= 100.0):
                    raise ValueError(f"score {delta.score!r} is not 0-100")
            except (msgspec.DecodeError, ValueError, OverflowError) as exc:
                # A record another producer put on the topic: skipped, never a crash loop.
                log.error("ignoring bad delta record at offset %s: %s", event.message.offset, exc)
                continue
            with partition_scope(event):
                raw = self.subscriptions.get(delta.entity.encode())
            subs = list(_subs.decode(raw).values()) if raw else []
            if delta.owner and delta.entity.startswith("nft:"):
                chain = delta.entity.split(":", 2)[1]
                subs += self.wallets.get(f"wallet:{chain}:{delta.owner}", ())
            if trace:
                log.debug(
                    "delta %s v%d: %d subscriptions",
                    delta.entity,
                    delta.version,
                    len(subs),
                    extra={
                        "stage": "notify",
                        "entity": delta.entity,
                        "version": delta.version,
                        "event_id": delta.cause_event_id,
                        "event_ids": delta.cause_event_ids or [delta.cause_event_id],
                    },
                )
            for sub in subs:
                key = f"{sub.id}|{delta.entity}".encode()
                if key in states:
                    watching = states[key][1]
                else:
                    with partition_scope(event):
                        stored = self.watching.get(key)
                    watching = _watching.decode(stored) if stored else Watching()
                if delta.version <= watching.last_version:
                    continue  # counted before this batch was replayed
                watching, new = self._observe(watching, sub, delta, at)
                pending += [(key, item, signal) for item, signal in new]
                states[key] = (event, watching)
        items = await self._cap_per_user(pending, states) if pending else []
        if items:
            await self._record(items)
            if trace:
                _trace_notifications(items)
        for key, (event, watching) in states.items():
            with partition_scope(event):
                self.watching[key] = _encode.encode(watching)
            partition = event.message.partition
            self._own_assignment()
            self._scopes[partition] = event
            if watching.pacing.digest:
                self._digests[key] = partition
            else:
                self._digests.pop(key, None)
        if items:
            await self.push([item.id for item in items])

    def _own_assignment(self) -> None:
        """Forget scopes and waiting digests of partitions a rebalance may have moved."""
        generation = int(self.app.consumer_generation_id)
        if generation != self._generation:
            self._generation = generation
            self._digests.clear()
            self._scopes.clear()

    async def send_due_digests(self) -> None:
        self._own_assignment()
        if not self._digests:
            return
        async with self._lock:
            self._own_assignment()  # a rebalance may have happened while we waited
            now = time.time()
            items: list[NewNotification] = []
            states: list[tuple[EventT[bytes], bytes, Watching]] = []
            for key, partition in list(self._digests.items()):
                scope = self._scopes.get(partition)
                if scope is None:
                    continue
                with partition_scope(scope):
                    stored = self.watching.get(key)
                    sub_id, _, entity = key.decode().partition("|")
                    raw_subs = self.subscriptions.get(entity.encode())
                subs = _subs.decode(raw_subs) if raw_subs else {}
                if entity.startswith("nft:"):  # a wallet subscription's watch of an NFT
                    subs.update((w.id, w) for ws in self.wallets.values() for w in ws)
                if stored is None or sub_id not in subs:
                    self._digests.pop(key, None)
                    continue
                watching = _watching.decode(stored)
                pacing, digest = flush(watching.pacing, now, self.pacing)
                if digest is None:
                    continue
                at = datetime.fromtimestamp(now, UTC)
                item = self._digest(subs[sub_id], entity, digest, at)
                self.metrics.notifications.labels(item.kind, item.severity).inc()
                items.append(item)
                states.append((scope, key, msgspec.structs.replace(watching, pacing=pacing)))
            if not items:
                return
            await self._record(items)
            if log.isEnabledFor(logging.DEBUG):
                _trace_notifications(items)
            for scope, key, watching in states:
                with partition_scope(scope):
                    self.watching[key] = _encode.encode(watching)
                self._digests.pop(key, None)
            await self.push([item.id for item in items])

    def _observe(
        self, watching: Watching, sub: SubscriptionRecord, delta: DeltaView, at: datetime
    ) -> tuple[Watching, list[tuple[NewNotification, Signal | None]]]:
        now = at.timestamp()
        findings, severe, seen = alerts(delta.evidence, watching.seen)
        obs = Observation(
            entity=delta.entity,
            at=now,
            score=delta.score,
            level=delta.level,
            previous_score=delta.previous,
            previous_level=watching.last_level,
            cause_event_id=delta.cause_event_id,
            factors_changed=tuple(delta.factors_changed),
            new_findings=findings,
            high_severity_evidence=severe,
        )
        prefs = Preferences(
            min_score=50.0 if sub.min_score is None else sub.min_score,
            change_pct=sub.change_pct,
        )
        significance, signals = detect(watching.significance, obs, prefs)
        pacing, send, digest = pace(watching.pacing, signals, now, self.pacing)
        cause = delta.cause_event_id or f"v{delta.version}"
        out: list[tuple[NewNotification, Signal | None]] = [
            (self._new(sub, s, cause, delta.version, at, delta.cause_event_ids), s) for s in send
        ]
        if digest is not None:
            out.append((self._digest(sub, delta.entity, digest, at), None))
        watching = Watching(significance, pacing, delta.level, seen, last_version=delta.version)
        return watching, out

    def _new(
        self,
        sub: SubscriptionRecord,
        signal: Signal,
        cause: str,
        version: int,
        at: datetime,
        cause_event_ids: Sequence[str] = (),
    ) -> NewNotification:
        content = render(
            signal.kind, signal.severity, signal.entity, signal.facts, sub.locale or "en"
        )
        data = data_of(dict(signal.facts), signal.cause_event_id, version, cause_event_ids)
        # Two findings of one delta are two notifications: the signal's own cause counts.
        return notification(
            sub,
            signal.kind,
            signal.severity,
            signal.entity,
            f"{signal.cause_event_id}|{cause}|{version}",
            content,
            data,
            at,
            signal.cause_event_id,
        )

    def _digest(
        self, sub: SubscriptionRecord, entity: str, digest: Digest, at: datetime
    ) -> NewNotification:
        content = render_digest(
            [(s.kind, s.severity, s.entity, s.facts) for s in digest.items],
            sub.locale or "en",
            total=digest.count,
        )
        worst = max(digest.items, key=lambda s: SEVERITIES.index(s.severity))
        items = [{"kind": s.kind, "severity": s.severity, **s.facts} for s in digest.items]
        data = {"digest": True, "count": digest.count, "items": items}
        # The dedup cause is the digest's start: a replay makes the same digest once.
        cause = f"{DIGEST_CAUSE}{digest.since}"
        return notification(
            sub, worst.kind, worst.severity, entity, cause, content, data, at, cause
        )

    async def _cap_per_user(
        self,
        pending: list[tuple[bytes, NewNotification, Signal | None]],
        states: dict[bytes, tuple[EventT[bytes], Watching]],
    ) -> list[NewNotification]:
        """Hold back what would take a user past the hourly cap (across all their
        subscriptions): those items join their watch's digest. Critical items and digests
        are never held. Counts come from the database, where every worker records."""
        cappable = [item for _, item, signal in pending if signal is not None]
        cappable = [item for item in cappable if item.severity != "critical"]
        counts: dict[str, int] = {}
        if cappable:
            newest = max(item.created_at for item in cappable)
            counts = await self._with_db(
                recent_counts,
                sorted({item.user_id for item in cappable}),
                newest - timedelta(hours=1),
                [item.dedup_key for _, item, _ in pending],
            )
        items: list[NewNotification] = []
        for key, item, signal in pending:
            held = (
                signal is not None
                and item.severity != "critical"
                and counts.get(item.user_id, 0) >= self.settings.notify_user_cap_per_hour
            )
            if held and signal is not None:
                event, watching = states[key]
                pacing = group(watching.pacing, signal, item.created_at.timestamp(), self.pacing)
                states[key] = (event, msgspec.structs.replace(watching, pacing=pacing))
                continue
            if signal is not None and item.severity != "critical":
                counts[item.user_id] = counts.get(item.user_id, 0) + 1
            self.metrics.notifications.labels(item.kind, item.severity).inc()
            items.append(item)
        return items

    async def _with_db(self, work: Any, *args: Any, write: bool = False) -> Any:
        """Run a repository call, retrying while the database is away (nothing is lost:
        the batch is not acknowledged until it went through). A `write` has each attempt
        timed in the database write latency histogram, like the history writer's."""
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                return await asyncio.to_thread(work, self.engine, *args)
            except (OperationalError, InterfaceError) as exc:  # the database is away
                error = exc
            finally:
                if write:
                    self.metrics.db_write_seconds.observe(time.perf_counter() - started)
            delay = backoff_delay(
                attempt, self.settings.retry_base_delay_s, self.settings.retry_max_delay_s
            )
            log.warning("notifier database call failed (%s); retrying in %.1fs", error, delay)
            self.metrics.db_failures.inc()
            self.metrics.retries.labels("notify").inc()
            await asyncio.sleep(delay)

    async def _record(self, items: list[NewNotification]) -> None:
        created = await self._with_db(record_notifications, items, write=True)
        self.metrics.notifications_created.inc(len(created))

    async def push(self, ids: list[str]) -> None:
        """Send what is not on the live stream yet (also after a replay) and mark it."""
        documents = await self._with_db(unpushed, ids)
        if not documents:
            return
        partitions = self.settings.partitions
        for document in documents:
            user = document.pop("user_id")
            await self.output.send(
                self.topics.notifications,
                key=user.encode(),
                value=orjson.dumps(document),
                partition=partition_for(user, partitions),
            )
        await self.output.flush()
        await self._with_db(mark_pushed, [d["id"] for d in documents])
        if log.isEnabledFor(logging.DEBUG):
            for document in documents:
                data = document.get("data") or {}
                log.debug(
                    "notification %s on the live stream",
                    document["id"],
                    extra={
                        "stage": "notification",
                        "notification_id": document["id"],
                        "event_id": data.get("cause_event_id"),
                    },
                )


def _trace_notifications(items: Sequence[NewNotification]) -> None:
    """One DEBUG line per recorded notification, with the events behind it."""
    for item in items:
        ids = item.data.get("cause_event_ids") or [item.cause_event_id]
        log.debug(
            "notification %s recorded: %s (%s) on %s",
            item.id,
            item.kind,
            item.severity,
            item.entity,
            extra={
                "stage": "notification",
                "notification_id": item.id,
                "subscription_id": item.subscription_id,
                "entity": item.entity,
                "event_id": item.cause_event_id,
                "event_ids": ids,
                "channels": [d.channel for d in item.deliveries],
            },
        )


WALLET_RELOAD_S = 3.0
# Deltas outside these times are not real (a producer's bug): skipped with a log line.
MIN_AT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AT = datetime(2200, 1, 1, tzinfo=UTC)


def notification(
    sub: SubscriptionRecord,
    kind: str,
    severity: str,
    entity: str,
    cause: str,
    content: Content,
    data: dict[str, Any],
    at: datetime,
    cause_event_id: str | None = None,
) -> NewNotification:
    """A notification of `sub`, identified by (user, entity, kind, cause)."""
    key = dedup_key(sub.id, entity, kind, cause)
    return NewNotification(
        id=notification_id(key),
        dedup_key=key,
        user_id=sub.user_id,
        subscription_id=sub.id,
        kind=kind,
        severity=severity,
        entity=entity,
        title=content.title,
        body=content.body,
        data={**data, "action": content.action},
        cause_event_id=cause_event_id,
        created_at=at,
        deliveries=tuple(NewDelivery(c, t) for c, t in targets(sub)),
    )

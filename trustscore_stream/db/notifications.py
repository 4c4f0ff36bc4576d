"""Repository functions for users, subscriptions, notifications and their deliveries.

Plain synchronous functions taking an Engine, one transaction each (asyncio callers run
them in a thread). Every read and write of a user's rows is scoped by the user id, so a
user can neither see nor change another user's subscriptions or notifications: a foreign
id is indistinguishable from an unknown one (404 at the API).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trustscore_stream.db.models import (
    Delivery,
    DeliveryAttempt,
    Notification,
    Subscription,
    User,
    utcnow,
)
from trustscore_stream.events.deadletter import rfc3339

# The cause_event_id of a digest starts with this (digests are not counted by the caps).
DIGEST_CAUSE = "digest:"


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    entity: str
    channels: tuple[str, ...]
    min_score: float | None = None
    change_pct: float | None = None
    webhook_url: str | None = None
    email: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    channel: str
    target: str | None


@dataclass(frozen=True, slots=True)
class NewNotification:
    id: str  # derived from dedup_key: the same cause makes the same id
    dedup_key: str
    user_id: str
    subscription_id: str | None
    kind: str
    severity: str
    entity: str
    title: str
    body: str
    data: dict[str, Any]
    cause_event_id: str | None
    created_at: datetime
    deliveries: tuple[NewDelivery, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """A claimed delivery with what sending it needs."""

    id: str
    channel: str
    target: str | None
    attempts: int  # attempts made before this one
    notification: dict[str, Any]  # the CONTRACT §5 document
    secret: str | None  # the subscription's webhook secret
    locale: str | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    delivery_id: str
    attempt: int
    sent: bool
    detail: str
    retry_at: datetime | None  # None with sent=False: no attempts left, dead-lettered
    at: datetime = field(default_factory=utcnow)


def subscription_document(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "entity": sub.entity,
        "min_score": sub.min_score,
        "change_pct": sub.change_pct,
        "channels": list(sub.channels),
        "webhook_url": sub.webhook_url,
        "email": sub.email,
        "locale": sub.locale,
        "created_at": rfc3339(sub.created_at),
    }


def notification_document(n: Notification) -> dict[str, Any]:
    """CONTRACT §5."""
    return {
        "id": n.id,
        "kind": n.kind,
        "severity": n.severity,
        "entity": n.entity,
        "title": n.title,
        "body": n.body,
        "data": n.data,
        "created_at": rfc3339(n.created_at),
        "read_at": None if n.read_at is None else rfc3339(n.read_at),
    }


def create_subscription(engine: Engine, user_id: str, spec: SubscriptionSpec) -> dict[str, Any]:
    """The new subscription's document; with a webhook also its `webhook_secret`, shown
    once (it signs every delivery)."""
    secret = secrets.token_hex(32) if "webhook" in spec.channels else None
    with Session(engine) as session, session.begin():
        if session.get(User, user_id) is None:
            session.add(User(id=user_id, email=spec.email, locale=spec.locale or "en"))
            session.flush()
        sub = Subscription(
            user_id=user_id,
            entity=spec.entity,
            min_score=spec.min_score,
            change_pct=spec.change_pct,
            channels=list(spec.channels),
            webhook_url=spec.webhook_url,
            webhook_secret=secret,
            email=spec.email,
            locale=spec.locale,
        )
        session.add(sub)
        session.flush()
        document = subscription_document(sub)
    if secret is not None:
        document["webhook_secret"] = secret
    return document


def list_subscriptions(engine: Engine, user_id: str) -> list[dict[str, Any]]:
    with Session(engine) as session:
        rows = session.scalars(
            select(Subscription)
            .where(Subscription.user_id == user_id)
            .order_by(Subscription.created_at, Subscription.id)
        )
        return [subscription_document(sub) for sub in rows]


def wallet_subscriptions(engine: Engine) -> list[dict[str, Any]]:
    """Every subscription to a wallet, as the notifier keeps it (no secrets)."""
    with Session(engine) as session:
        rows = session.scalars(select(Subscription).where(Subscription.entity.like("wallet:%")))
        return [
            {
                "id": sub.id,
                "user_id": sub.user_id,
                "entity": sub.entity,
                "channels": tuple(sub.channels),
                "min_score": sub.min_score,
                "change_pct": sub.change_pct,
                "locale": sub.locale,
                "webhook_url": sub.webhook_url,
                "email": sub.email,
            }
            for sub in rows
        ]


def get_subscription(engine: Engine, user_id: str, sub_id: str) -> dict[str, Any] | None:
    with Session(engine) as session:
        sub = session.get(Subscription, sub_id)
        if sub is None or sub.user_id != user_id:
            return None
        return subscription_document(sub)


def delete_subscription(engine: Engine, user_id: str, sub_id: str) -> dict[str, Any] | None:
    """The deleted subscription's document, None if the user has no such subscription."""
    with Session(engine) as session, session.begin():
        sub = session.get(Subscription, sub_id)
        if sub is None or sub.user_id != user_id:
            return None
        document = subscription_document(sub)
        session.delete(sub)
    return document


def record_notifications(engine: Engine, items: Sequence[NewNotification]) -> list[str]:
    """Insert the notifications not created before (by dedup key), each with its queued
    deliveries, in one transaction; returns the ids that are new. Idempotent: replays and
    rebalances that produce the same notification again change nothing."""
    if not items:
        return []
    conflict: IntegrityError | None = None
    for _ in range(3):  # another worker may insert the same keys between read and write
        try:
            with Session(engine) as session, session.begin():
                keys = [item.dedup_key for item in items]
                existing = set(
                    session.scalars(
                        select(Notification.dedup_key).where(Notification.dedup_key.in_(keys))
                    )
                )
                fresh: list[NewNotification] = []
                for item in items:
                    if item.dedup_key in existing:
                        continue
                    existing.add(item.dedup_key)
                    fresh.append(item)
                    session.add(
                        Notification(
                            id=item.id,
                            user_id=item.user_id,
                            subscription_id=item.subscription_id,
                            cause_event_id=item.cause_event_id,
                            dedup_key=item.dedup_key,
                            kind=item.kind,
                            severity=item.severity,
                            entity=item.entity,
                            title=item.title,
                            body=item.body,
                            data=item.data,
                            created_at=item.created_at,
                        )
                    )
                session.flush()  # no relationship() orders the inserts: parents first
                for item in fresh:
                    for d in item.deliveries:
                        session.add(
                            Delivery(
                                notification_id=item.id,
                                user_id=item.user_id,
                                channel=d.channel,
                                target=d.target,
                                status="queued",
                                attempts=0,
                                next_attempt_at=item.created_at,
                            )
                        )
                created = [item.id for item in fresh]
            return created
        except IntegrityError as exc:
            conflict = exc
    raise RuntimeError("notifications could not be recorded") from conflict


def recent_counts(
    engine: Engine, users: Sequence[str], since: datetime, exclude: Sequence[str]
) -> dict[str, int]:
    """Per user: non-critical notifications created since `since`, leaving out digests and
    those whose dedup keys are in `exclude` (the batch being decided, when it is a replay)."""
    with Session(engine) as session:
        rows = session.execute(
            select(Notification.user_id, func.count())
            .where(
                Notification.user_id.in_(users),
                Notification.created_at >= since,
                Notification.severity != "critical",
                or_(
                    Notification.cause_event_id.is_(None),
                    Notification.cause_event_id.not_like(f"{DIGEST_CAUSE}%"),
                ),
                or_(Notification.dedup_key.is_(None), Notification.dedup_key.not_in(exclude)),
            )
            .group_by(Notification.user_id)
        ).all()
        return {user: int(count) for user, count in rows}


def unpushed(engine: Engine, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Documents of these notifications not yet pushed to the live stream, with user ids."""
    with Session(engine) as session:
        rows = session.scalars(
            select(Notification).where(Notification.id.in_(ids), Notification.pushed_at.is_(None))
        )
        return [{"user_id": n.user_id, **notification_document(n)} for n in rows]


def unpushed_before(engine: Engine, before: datetime, limit: int = 500) -> list[str]:
    """Ids of notifications recorded but not on the live stream since before `before`
    (their push was interrupted): the delivery stage pushes them."""
    with Session(engine) as session:
        return list(
            session.scalars(
                select(Notification.id)
                .where(Notification.pushed_at.is_(None), Notification.created_at < before)
                .limit(limit)
            )
        )


def mark_pushed(engine: Engine, ids: Sequence[str]) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(Notification).where(Notification.id.in_(ids)).values(pushed_at=utcnow())
        )


def list_notifications(
    engine: Engine, user_id: str, unread_only: bool, limit: int
) -> list[dict[str, Any]]:
    with Session(engine) as session:
        query = select(Notification).where(Notification.user_id == user_id)
        if unread_only:
            query = query.where(Notification.read_at.is_(None))
        query = query.order_by(Notification.created_at.desc(), Notification.id).limit(limit)
        return [notification_document(n) for n in session.scalars(query)]


def mark_read(engine: Engine, user_id: str, notification_id: str) -> dict[str, Any] | None:
    with Session(engine) as session, session.begin():
        n = session.get(Notification, notification_id)
        if n is None or n.user_id != user_id:
            return None
        if n.read_at is None:
            n.read_at = utcnow()
        return notification_document(n)


def delivery_report(
    engine: Engine, user_id: str, notification_id: str
) -> list[dict[str, Any]] | None:
    """Every delivery of the user's notification with its attempts; None if not theirs."""
    with Session(engine) as session:
        n = session.get(Notification, notification_id)
        if n is None or n.user_id != user_id:
            return None
        deliveries = session.scalars(
            select(Delivery)
            .where(Delivery.notification_id == notification_id)
            .order_by(Delivery.channel, Delivery.id)
        ).all()
        report = []
        for d in deliveries:
            attempts = session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == d.id)
                .order_by(DeliveryAttempt.attempt)
            )
            report.append(
                {
                    "id": d.id,
                    "channel": d.channel,
                    "purpose": d.purpose,
                    "status": d.status,
                    "attempts": [
                        {
                            "attempt": a.attempt,
                            "at": rfc3339(a.at),
                            "outcome": a.outcome,
                            "detail": a.detail,
                        }
                        for a in attempts
                    ],
                    "next_attempt_at": None if d.status != "queued" else rfc3339(d.next_attempt_at),
                    "last_error": d.last_error,
                }
            )
        return report


def claim_due_deliveries(
    engine: Engine, now: datetime, limit: int, lease: timedelta
) -> list[DeliveryJob]:
    """Claim up to `limit` queued deliveries whose time has come, for `lease`: a worker that
    dies mid-attempt leaves a claim that expires, and the delivery is tried again."""
    jobs: list[DeliveryJob] = []
    with Session(engine) as session, session.begin():
        candidates = session.scalars(
            select(Delivery)
            .where(
                Delivery.status == "queued",
                Delivery.next_attempt_at <= now,
                or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
            )
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
        ).all()
        for d in candidates:
            claimed = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == d.id,
                    Delivery.status == "queued",
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
                )
                .values(claimed_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker was first (or has tried it meanwhile)
            session.refresh(d)  # the attempts as they are now, not as first selected
            n = session.get(Notification, d.notification_id)
            assert n is not None
            sub = session.get(Subscription, n.subscription_id) if n.subscription_id else None
            jobs.append(
                DeliveryJob(
                    id=d.id,
                    channel=d.channel,
                    target=d.target,
                    attempts=d.attempts,
                    notification=notification_document(n),
                    secret=sub.webhook_secret if sub is not None else None,
                    locale=sub.locale if sub is not None else None,
                )
            )
    return jobs


def record_attempts(engine: Engine, outcomes: Sequence[AttemptOutcome]) -> None:
    with Session(engine) as session, session.begin():
        for o in outcomes:
            status = "sent" if o.sent else ("queued" if o.retry_at is not None else "dead")
            session.add(
                DeliveryAttempt(
                    delivery_id=o.delivery_id,
                    attempt=o.attempt,
                    at=o.at,
                    outcome="sent" if o.sent else "failed",
                    detail=o.detail,
                )
            )
            values: dict[str, Any] = {
                "status": status,
                "attempts": o.attempt,
                "claimed_until": None,
                "updated_at": o.at,
                "last_error": None if o.sent else o.detail,
            }
            if o.retry_at is not None:
                values["next_attempt_at"] = o.retry_at
            session.execute(update(Delivery).where(Delivery.id == o.delivery_id).values(**values))


def escalate_unread(engine: Engine, now: datetime, after: timedelta) -> int:
    """Critical notifications unread for `after`: queue them once more on the first channel
    of their subscription after `in_app` (a reminder where the user may see it sooner).
    Each is escalated at most once; one with nowhere to go is only marked. Returns how many
    deliveries were queued."""
    queued = 0
    with Session(engine) as session, session.begin():
        due = session.scalars(
            select(Notification)
            .where(
                Notification.severity == "critical",
                Notification.read_at.is_(None),
                Notification.escalated_at.is_(None),
                Notification.created_at <= now - after,
            )
            .limit(500)
        ).all()
        for n in due:
            marked = session.execute(
                update(Notification)
                .where(Notification.id == n.id, Notification.escalated_at.is_(None))
                .values(escalated_at=now)
                .execution_options(synchronize_session=False)
            )
            if marked.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker escalated it
            sub = session.get(Subscription, n.subscription_id) if n.subscription_id else None
            if sub is None:
                continue
            channel = next((c for c in sub.channels if c != "in_app"), None)
            if channel is None:
                continue
            target = {"webhook": sub.webhook_url, "email": sub.email}.get(channel, sub.user_id)
            session.add(
                Delivery(
                    notification_id=n.id,
                    user_id=n.user_id,
                    channel=channel,
                    purpose="escalation",
                    target=target,
                    status="queued",
                    attempts=0,
                    next_attempt_at=now,
                )
            )
            queued += 1
    return queued

"""SQLAlchemy 2.x typed ORM models: the relational schema of TrustScore Stream.

The schema itself is created by the Alembic migrations in `trustscore_stream.db.migrations`;
these models must stay in step with them (tests/db/test_migrations.py checks parity).
Column types are chosen to work identically on the embedded SQLite default and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypedDict

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint/index names, so migrations can refer to them on every backend.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Portable JSON; JSONB on PostgreSQL for compact storage and indexable operators.
JSONType = JSON().with_variant(JSONB(), "postgresql")

# Bounded to the envelope's own limits (event ids and entity ids are ≤ 200 characters).
ENTITY_LEN = 200
EVENT_ID_LEN = 200


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetime that always reads back in UTC.

    SQLite has no timezone-aware type: it stores the text of the wall-clock time, dropping the
    offset. So values are normalised to UTC on the way in (naive values are refused rather
    than guessed) and tagged UTC on the way out. On PostgreSQL the column is TIMESTAMPTZ and
    the driver returns the session's timezone, which is converted to UTC for consistency.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime from the driver, got {type(value).__name__}")
        if value.tzinfo is None:
            # Only SQLite gets here: what was stored is UTC (see process_bind_param).
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class FactorDetail(TypedDict):
    """One scoring factor as stored in `score_history.factors` (keyed by factor id)."""

    value: float
    weight: float
    evidence: list[Any]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ScoreHistory(Base):
    """One row per published score version of an entity; rows are never updated."""

    __tablename__ = "score_history"
    __table_args__ = (
        # "Newest first by entity" (WHERE entity = ? ORDER BY version DESC) is answered by the
        # primary-key index, scanned backwards; this one serves time-window lookups such as
        # "the score as of 24 hours ago" for change alerts.
        Index("ix_score_history_entity_at", "entity", "at"),
    )

    entity: Mapped[str] = mapped_column(String(ENTITY_LEN), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    score: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64))
    factors: Mapped[dict[str, FactorDetail]] = mapped_column(JSONType)
    factors_changed: Mapped[list[str]] = mapped_column(JSONType)
    cause_event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditLog(Base):
    """Audit trail of operational actions and of event-processing outcomes."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_kind_at", "kind", "at"),
        Index("ix_audit_log_event_id", "event_id"),
    )

    # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-assigned rowid.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str | None] = mapped_column(String(ENTITY_LEN))
    event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_LEN))
    actor: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    locale: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Subscription(Base):
    """A user's alert rule on one entity; delivery per `channels` (e.g. "webhook", "email")."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_entity", "entity"),
        Index("ix_subscriptions_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(200), ForeignKey("users.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN))
    min_score: Mapped[float | None] = mapped_column(Float)
    change_pct: Mapped[float | None] = mapped_column(Float)
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    locale: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Notification(Base):
    """An in-app notification; `read_at` is NULL until the user reads it."""

    __tablename__ = "notifications"
    __table_args__ = (
        # Serves "unread for user, newest first" (user_id = ? AND read_at IS NULL).
        Index("ix_notifications_user_id_read_at_created_at", "user_id", "read_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(200))
    subscription_id: Mapped[str | None] = mapped_column(String(32))
    cause_event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_LEN))
    # Created once per (user, entity, kind, cause event) whatever replays, retries and
    # rebalances do: the id is derived from them and this key is unique.
    dedup_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # sent to the SSE topic
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(ENTITY_LEN))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(Base):
    """One notification on one channel other than in-app: a durable outbox row, claimed by a
    worker for each attempt, retried with backoff until sent or dead (never dropped)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_notification_id", "notification_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    notification_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("notifications.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    # "first" or "escalation" (a critical notification left unread, sent again)
    purpose: Mapped[str] = mapped_column(String(16), default="first", server_default="first")
    target: Mapped[str | None] = mapped_column(String(2048))  # URL or address
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|sent|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryAttempt(Base):
    """Every attempt of a delivery, with its outcome (tracking, CONTRACT §5)."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    delivery_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))  # sent|failed|dead
    detail: Mapped[str | None] = mapped_column(Text)

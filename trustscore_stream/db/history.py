"""Repository functions for score history and the audit log.

Plain synchronous functions taking an Engine: asyncio callers run them in a thread executor
(`await loop.run_in_executor(None, record_score_versions, engine, rows)`). Each call is one
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, String, TextClause, bindparam, insert, select, text

from trustscore_stream.db.models import AuditLog, FactorDetail, ScoreHistory, UTCDateTime, utcnow


class EncodedJson(str):
    """A JSON document that is already encoded (history rows carry their factors through a
    topic as JSON): stored as it is, never decoded and encoded again on the way in."""


@dataclass(frozen=True, slots=True)
class ScoreVersionRow:
    """One published score version of an entity; (entity, version) identifies it."""

    entity: str
    version: int
    score: float
    level: str
    confidence: float
    model_version: str
    factors: Mapping[str, FactorDetail] | EncodedJson
    factors_changed: tuple[str, ...]
    cause_event_id: str | None
    at: datetime  # must be timezone-aware; read back in UTC


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit-trail record, e.g. kind "dead_letter", "replay", "rescore", "config"."""

    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    entity: str | None = None
    event_id: str | None = None
    actor: str | None = None
    at: datetime = field(default_factory=utcnow)


_COLUMNS = (
    "entity",
    "version",
    "score",
    "level",
    "confidence",
    "model_version",
    "factors",
    "factors_changed",
    "cause_event_id",
    "at",
)
_JSON_COLUMNS = ("factors", "factors_changed")


def _insert_ignoring_duplicates(engine: Engine) -> TextClause:
    """INSERT into score_history that skips rows whose (entity, version) already exists.

    Plain SQL rather than an ORM insert: the JSON columns are bound as already-encoded text
    (cast to JSONB on PostgreSQL), which spares the per-row JSON encoding and bind
    processing that dominated the history writer's CPU (docs/benchmarks.md)."""
    dialect = engine.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"no idempotent insert for dialect {dialect!r}")

    def value(column: str) -> str:
        if column in _JSON_COLUMNS and dialect == "postgresql":
            return f"CAST(:{column} AS JSONB)"
        return f":{column}"

    sql = (
        f"INSERT INTO {ScoreHistory.__tablename__} ({', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join(value(c) for c in _COLUMNS)}) "
        "ON CONFLICT (entity, version) DO NOTHING"
    )
    return text(sql).bindparams(
        bindparam("at", type_=UTCDateTime()),
        *(bindparam(c, type_=String()) for c in _JSON_COLUMNS),
    )


def _json_text(value: Mapping[str, FactorDetail] | EncodedJson) -> str:
    if isinstance(value, EncodedJson):
        return value
    return orjson.dumps(value).decode()


def record_score_versions(engine: Engine, rows: Sequence[ScoreVersionRow]) -> int:
    """Insert score versions in one batch; return how many were new.

    Idempotent on (entity, version): a version already stored (or repeated within `rows`) is
    skipped, not an error, so replays and redeliveries are harmless. The first stored copy
    wins; a version is never overwritten.
    """
    if not rows:
        return 0
    params = [
        {
            "entity": r.entity,
            "version": r.version,
            "score": r.score,
            "level": r.level,
            "confidence": r.confidence,
            "model_version": r.model_version,
            "factors": _json_text(r.factors),
            "factors_changed": orjson.dumps(r.factors_changed).decode(),
            "cause_event_id": r.cause_event_id,
            "at": r.at,
        }
        for r in rows
    ]
    # One executemany in one transaction. Its rowcount is the number of rows actually
    # inserted (skipped conflicts count 0) on both drivers: sqlite3 and psycopg 3 sum it
    # over the parameter sets (tests/db/test_history.py checks it on both backends).
    with engine.begin() as conn:
        return int(conn.execute(_insert_ignoring_duplicates(engine), params).rowcount)


def score_history(engine: Engine, entity: str, limit: int) -> list[ScoreVersionRow]:
    """The newest `limit` score versions of `entity`, newest (highest version) first."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if limit == 0:
        return []
    t = ScoreHistory
    stmt = (
        select(
            t.entity,
            t.version,
            t.score,
            t.level,
            t.confidence,
            t.model_version,
            t.factors,
            t.factors_changed,
            t.cause_event_id,
            t.at,
        )
        .where(t.entity == entity)
        .order_by(t.version.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            ScoreVersionRow(
                entity=row.entity,
                version=row.version,
                score=row.score,
                level=row.level,
                confidence=row.confidence,
                model_version=row.model_version,
                factors=row.factors,
                factors_changed=tuple(row.factors_changed),
                cause_event_id=row.cause_event_id,
                at=row.at,
            )
            for row in conn.execute(stmt)
        ]


def record_audit(engine: Engine, entries: Sequence[AuditEntry]) -> int:
    """Append audit entries in one batched insert; return how many were written."""
    if not entries:
        return 0
    params = [
        {
            "at": e.at,
            "kind": e.kind,
            "entity": e.entity,
            "event_id": e.event_id,
            "actor": e.actor,
            "detail": dict(e.detail),
        }
        for e in entries
    ]
    with engine.begin() as conn:
        conn.execute(insert(AuditLog), params)
    return len(params)


def audit_entries(
    engine: Engine,
    *,
    kind: str | None = None,
    event_id: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest `limit` audit entries, optionally filtered by kind and/or event id."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if limit == 0:
        return []
    t = AuditLog
    stmt = select(t.kind, t.detail, t.entity, t.event_id, t.actor, t.at)
    if kind is not None:
        stmt = stmt.where(t.kind == kind)
    if event_id is not None:
        stmt = stmt.where(t.event_id == event_id)
    # id breaks ties between entries written in the same instant, keeping insertion order.
    stmt = stmt.order_by(t.at.desc(), t.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [
            AuditEntry(
                kind=row.kind,
                detail=row.detail,
                entity=row.entity,
                event_id=row.event_id,
                actor=row.actor,
                at=row.at,
            )
            for row in conn.execute(stmt)
        ]

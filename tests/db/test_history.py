"""Score history and audit repository functions, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from tests.db.pg import with_pg_options
from trustscore_stream.db.engine import create_engine_for
from trustscore_stream.db.history import (
    AuditEntry,
    EncodedJson,
    ScoreVersionRow,
    audit_entries,
    record_audit,
    record_score_versions,
    score_history,
)
from trustscore_stream.db.migrate import upgrade
from trustscore_stream.db.models import Notification, ScoreHistory, Subscription, User

NFT = "nft:ethereum:0x0000000000000000000000000000000000000001:1"
OTHER = "collection:ethereum:0x0000000000000000000000000000000000000002"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_row(version: int, entity: str = NFT, **changes: Any) -> ScoreVersionRow:
    fields: dict[str, Any] = {
        "entity": entity,
        "version": version,
        "score": 40.0 + version,
        "level": "medium",
        "confidence": 0.75,
        "model_version": "trust-v1",
        "factors": {
            "wash_trading": {"value": 0.2, "weight": 0.3, "evidence": ["evt-1", {"n": 2}]},
            "verified": {"value": 1.0, "weight": 0.1, "evidence": []},
        },
        "factors_changed": ("wash_trading",),
        "cause_event_id": f"evt-{version}",
        "at": T0 + timedelta(minutes=version),
    }
    fields.update(changes)
    return ScoreVersionRow(**fields)


def count_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(ScoreHistory)) or 0)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def listener(*args: Any) -> None:
        seen.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_batch_insert_is_idempotent(engine: Engine) -> None:
    rows = [make_row(v) for v in range(1, 6)]
    assert record_score_versions(engine, rows) == 5
    assert record_score_versions(engine, rows) == 0
    assert count_rows(engine) == 5


def test_mixed_batch_inserts_only_new_rows_and_never_overwrites(engine: Engine) -> None:
    assert record_score_versions(engine, [make_row(1), make_row(2)]) == 2
    mixed = [make_row(2, score=99.0), make_row(3), make_row(1, level="high"), make_row(4)]
    assert record_score_versions(engine, mixed) == 2
    assert count_rows(engine) == 4
    stored = {r.version: r for r in score_history(engine, NFT, 10)}
    assert stored[1] == make_row(1)  # first stored copy wins
    assert stored[2].score == make_row(2).score


def test_pre_encoded_factors_are_stored_as_given(engine: Engine) -> None:
    factors = make_row(1).factors
    encoded = EncodedJson(
        '{"wash_trading":{"value":0.2,"weight":0.3,"evidence":["evt-1",{"n":2}]},'
        '"verified":{"value":1.0,"weight":0.1,"evidence":[]}}'
    )
    assert record_score_versions(engine, [make_row(1, factors=encoded)]) == 1
    [back] = score_history(engine, NFT, 1)
    assert back.factors == factors
    assert back == make_row(1)


def test_duplicates_within_one_batch_count_once(engine: Engine) -> None:
    assert record_score_versions(engine, [make_row(1), make_row(1), make_row(2)]) == 2
    assert count_rows(engine) == 2


def test_one_insert_statement_per_call(engine: Engine) -> None:
    rows = [make_row(v) for v in range(1, 201)]
    with statements(engine) as seen:
        assert record_score_versions(engine, rows) == 200
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1


def test_large_batch_spanning_pages(engine: Engine) -> None:
    rows = [make_row(v) for v in range(1, 2501)]
    assert record_score_versions(engine, rows) == 2500
    assert record_score_versions(engine, [*rows[-10:], make_row(2501)]) == 1
    assert count_rows(engine) == 2501


def test_empty_batch_touches_nothing(engine: Engine) -> None:
    with statements(engine) as seen:
        assert record_score_versions(engine, []) == 0
        assert record_audit(engine, []) == 0
    assert seen == []


def test_history_is_newest_first_with_limit(engine: Engine) -> None:
    # Inserted out of order, across two calls, with another entity interleaved.
    record_score_versions(engine, [make_row(3), make_row(1), make_row(2, entity=OTHER)])
    record_score_versions(engine, [make_row(5), make_row(2), make_row(4)])
    assert [r.version for r in score_history(engine, NFT, 3)] == [5, 4, 3]
    assert [r.version for r in score_history(engine, NFT, 100)] == [5, 4, 3, 2, 1]
    assert [r.version for r in score_history(engine, OTHER, 100)] == [2]
    assert score_history(engine, NFT, 0) == []
    assert score_history(engine, "nft:unknown", 10) == []
    with pytest.raises(ValueError):
        score_history(engine, NFT, -1)


def test_rows_round_trip_exactly(engine: Engine) -> None:
    row = make_row(7, cause_event_id=None, factors_changed=("a", "b"))
    record_score_versions(engine, [row])
    [back] = score_history(engine, NFT, 1)
    assert back == row
    assert back.factors["wash_trading"]["evidence"] == ["evt-1", {"n": 2}]


def test_newest_first_query_uses_primary_key_index(engine: Engine, backend: str) -> None:
    # The claim in models.ScoreHistory / docs: no separate index needed for newest-first.
    record_score_versions(engine, [make_row(v) for v in range(1, 50)])
    query = "SELECT * FROM score_history WHERE entity = 'x' ORDER BY version DESC LIMIT 5"
    with engine.connect() as conn:
        if backend == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}"))
            assert "sqlite_autoindex_score_history" in plan
            assert "TEMP B-TREE" not in plan  # no sort step
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny table: force the choice
            plan = " ".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {query}"))
            assert "Index Scan Backward using pk_score_history" in plan
            assert "Sort" not in plan


def test_datetimes_round_trip_timezone_aware_utc(db_url: str, backend: str) -> None:
    if backend == "postgresql":
        # A non-UTC session timezone: the driver then returns local times, still read as UTC.
        db_url = with_pg_options(db_url, "timezone=America/New_York")
    upgrade(db_url)
    engine = create_engine_for(db_url)
    try:
        ist = timezone(timedelta(hours=5, minutes=30))
        local = datetime(2024, 3, 10, 1, 30, 15, 123456, tzinfo=ist)
        record_score_versions(engine, [make_row(1, at=local)])
        record_audit(engine, [AuditEntry(kind="config", at=local)])
        [back] = score_history(engine, NFT, 1)
        [audit] = audit_entries(engine)
        for value in (back.at, audit.at):
            assert value == local  # same instant
            assert value.tzinfo is UTC
            assert value == datetime(2024, 3, 9, 20, 0, 15, 123456, tzinfo=UTC)
        with Session(engine) as session:
            user = User(id="u-tz")
            session.add(user)
            session.commit()
            assert user.created_at.tzinfo is UTC
    finally:
        engine.dispose()


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        record_score_versions(engine, [make_row(1, at=datetime(2024, 1, 1))])
    assert count_rows(engine) == 0


def test_audit_entries_batch_insert_and_read(engine: Engine) -> None:
    entries = [
        AuditEntry(
            kind="dead_letter",
            detail={"reason": "payload.price: expected str", "attempts": 3},
            event_id="evt-9",
            at=T0,
        ),
        AuditEntry(kind="replay", actor="ops@example.com", detail={"from": 10}, at=T0),
        AuditEntry(kind="rescore", entity=NFT, actor="cli", at=T0 + timedelta(seconds=1)),
    ]
    with statements(engine) as seen:
        assert record_audit(engine, entries) == 3
    assert sum(s.lstrip().upper().startswith("INSERT") for s in seen) == 1

    newest_first = audit_entries(engine)
    assert [e.kind for e in newest_first] == ["rescore", "replay", "dead_letter"]
    assert newest_first[0] == entries[2]
    assert audit_entries(engine, kind="dead_letter") == [entries[0]]
    assert audit_entries(engine, event_id="evt-9") == [entries[0]]
    assert audit_entries(engine, limit=1) == [entries[2]]
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM audit_log ORDER BY id")).scalars().all()
    assert len(set(ids)) == 3  # auto-assigned on both backends


def test_user_subscription_notification_defaults(engine: Engine) -> None:
    with Session(engine) as session:
        user = User(id="u1", email="a@example.com")
        session.add(user)
        session.flush()  # no ORM relationship: the user row must exist before the FK row
        sub = Subscription(user_id="u1", entity=NFT, min_score=30.0, channels=["webhook"])
        note = Notification(
            user_id="u1", kind="score_drop", severity="high", entity=NFT, title="t", body="b"
        )
        session.add_all([sub, note])
        session.commit()
        assert user.locale == "en"
        assert len(sub.id) == 32 and int(sub.id, 16) >= 0
        assert sub.channels == ["webhook"]
        assert note.read_at is None and note.data == {}
        # Deleting a user removes their subscriptions (ON DELETE CASCADE, FKs on in SQLite).
        session.delete(user)
        session.commit()
        session.expunge_all()
        assert session.scalars(select(Subscription)).all() == []


def test_concurrent_writers_from_threads(engine: Engine) -> None:
    # How the stream workers use it: several executor threads writing overlapping batches.
    batches = [[make_row(v) for v in range(start, start + 40)] for start in range(1, 400, 20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        inserted = sum(pool.map(lambda rows: record_score_versions(engine, rows), batches))
    assert inserted == count_rows(engine) == 420

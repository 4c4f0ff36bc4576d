"""Migrations: apply from empty, repeatable, concurrent-safe, and identical to the models."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select

from trustscore_stream.db.engine import create_engine_for
from trustscore_stream.db.history import ScoreVersionRow, record_score_versions
from trustscore_stream.db.migrate import MIGRATIONS_DIR, alembic_config, upgrade
from trustscore_stream.db.models import Base, ScoreHistory

APP_TABLES = {
    "score_history",
    "audit_log",
    "users",
    "subscriptions",
    "notifications",
    "deliveries",
    "delivery_attempts",
}


def _head() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def _current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _row(version: int) -> ScoreVersionRow:
    return ScoreVersionRow(
        entity="nft:ethereum:0x0000000000000000000000000000000000000001:1",
        version=version,
        score=50.0,
        level="medium",
        confidence=0.5,
        model_version="m1",
        factors={},
        factors_changed=(),
        cause_event_id=None,
        at=datetime(2024, 1, 1, tzinfo=UTC),
    )


def test_upgrade_from_empty_creates_schema_at_head(db_url: str) -> None:
    engine = create_engine_for(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == set()
        upgrade(db_url)
        assert set(inspect(engine).get_table_names()) == APP_TABLES | {"alembic_version"}
        assert _current(engine) == _head()
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op_and_keeps_data(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    try:
        assert record_score_versions(engine, [_row(1)]) == 1
        upgrade(db_url)
        assert _current(engine) == _head()
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(ScoreHistory)) == 1
    finally:
        engine.dispose()


def test_models_match_migrated_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_downgrade_to_base_then_upgrade_again(db_url: str) -> None:
    upgrade(db_url)
    command.downgrade(alembic_config(db_url), "base")
    engine = create_engine_for(db_url)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(db_url)
        assert set(inspect(engine).get_table_names()) >= APP_TABLES
    finally:
        engine.dispose()


def test_concurrent_upgrades_from_empty_all_succeed(db_url: str) -> None:
    # Separate processes: Alembic's context is process-global, and this is the real case of
    # several workers starting at once against one database.
    cmd = [sys.executable, "-m", "trustscore_stream.db.migrate", "upgrade", db_url]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    for code, (_out, err) in results:
        assert code == 0, err
    engine = create_engine_for(db_url)
    try:
        assert _current(engine) == _head()
    finally:
        engine.dispose()


def test_offline_mode_renders_postgresql_ddl(capsys: pytest.CaptureFixture[str]) -> None:
    # `--sql` mode: DDL for review by a DBA, no connection made.
    url = "postgresql+psycopg://nobody@192.0.2.1:1/unreachable"
    command.upgrade(alembic_config(url), "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE score_history" in ddl
    assert "JSONB" in ddl and "TIMESTAMP WITH TIME ZONE" in ddl
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in ddl

"""Engine construction: URLs, SQLite pragmas, foreign keys, PostgreSQL pre-ping."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import IntegrityError

from trustscore_stream.db.engine import create_engine_for, default_sqlite_url
from trustscore_stream.db.models import Subscription


def test_default_sqlite_url_points_at_data_dir_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data dir"  # a space must survive the URL round trip
    data_dir.mkdir()
    url = default_sqlite_url(data_dir)
    assert url.endswith("trustscore.sqlite")
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert (data_dir / "trustscore.sqlite").is_file()


def test_sqlite_engine_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine_for(default_sqlite_url(tmp_path))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_postgresql_engine_pre_pings() -> None:
    engine = create_engine_for("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        assert engine.pool._pre_ping  # no connection is made here
    finally:
        engine.dispose()


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database backend"):
        create_engine_for("mysql://user@localhost/db")


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(Subscription).values(id="s1", user_id="nobody", entity="e", channels=[])
        )

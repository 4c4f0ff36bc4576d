"""Fixtures running each database test on SQLite (tmp_path) and on PostgreSQL.

PostgreSQL isolation: every test gets its own schema `ts_test_<session>_<n>` selected through
`search_path` in the URL, so tests never touch other data and concurrent sessions never
collide. All of this session's schemas are dropped at the end, even after failures.
Unreachable PostgreSQL skips those tests, or fails them when CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.db.pg import PgSchemas
from trustscore_stream.db.engine import create_engine_for, default_sqlite_url
from trustscore_stream.db.migrate import upgrade

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL_ENV = "TRUSTSCORE_TEST_PG_URL"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    probe = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = f"PostgreSQL unreachable at {url} ({PG_URL_ENV} overrides): {exc.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires the PostgreSQL tests to run")
        pytest.skip(f"{reason}; skipping PostgreSQL tests (they fail instead when CI=true)")
    finally:
        probe.dispose()
    return url


@pytest.fixture(scope="session")
def pg_schemas(pg_admin_url: str) -> Iterator[PgSchemas]:
    schemas = PgSchemas(pg_admin_url)
    try:
        yield schemas
    finally:
        schemas.drop_all()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database on `backend`, private to the test."""
    if backend == "sqlite":
        yield default_sqlite_url(tmp_path)
        return
    schemas: PgSchemas = request.getfixturevalue("pg_schemas")
    schema = schemas.create()
    try:
        yield schemas.url(schema)
    finally:
        schemas.drop(schema)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a freshly migrated database."""
    upgrade(db_url)
    eng = create_engine_for(db_url)
    try:
        yield eng
    finally:
        # Before the schema drop: idle pooled connections would otherwise linger.
        eng.dispose()

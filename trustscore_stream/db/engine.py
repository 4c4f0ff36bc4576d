"""Engine construction for the two supported backends: embedded SQLite and PostgreSQL.

Engines are synchronous. Stream workers call the repository functions (history.py) from a
thread executor, so a blocking driver is fine and keeps transactions simple.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url

SQLITE_FILENAME = "trustscore.sqlite"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def default_sqlite_url(data_dir: Path) -> str:
    """URL of the embedded database file `trustscore.sqlite` in `data_dir` (not created here)."""
    path = (data_dir / SQLITE_FILENAME).resolve()
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def backend_name(url: str | URL) -> str:
    """The backend of `url`, "sqlite" or "postgresql"; ValueError for anything else."""
    name = make_url(url).get_backend_name()
    if name not in SUPPORTED_BACKENDS:
        raise ValueError(f"unsupported database backend {name!r}: use sqlite or postgresql")
    return name


def create_engine_for(url: str) -> Engine:
    """Sync engine for `url`: SQLite in WAL mode with foreign keys on; PostgreSQL pre-pinged."""
    sa_url = make_url(url)
    if backend_name(sa_url) == "sqlite":
        engine = create_engine(sa_url)
        _install_sqlite_pragmas(engine, foreign_keys=True)
        return engine
    # Pre-ping: a worker may sit idle long enough for the server or a proxy to drop the link.
    return create_engine(sa_url, pool_pre_ping=True)


def create_migration_engine(url: str) -> Engine:
    """Engine used only to run migrations (see migrations/env.py).

    SQLite differs from the application engine in two ways:
    - pysqlite's implicit transaction handling is switched off and every transaction starts
      with BEGIN IMMEDIATE, so DDL is transactional (a failed migration leaves no half-made
      schema) and concurrent upgraders queue on the write lock instead of racing;
    - foreign keys are off, because Alembic's batch mode rebuilds tables (copy, DROP, rename)
      and a DROP with foreign keys on would cascade-delete the referencing rows.
    """
    sa_url = make_url(url)
    if backend_name(sa_url) == "postgresql":
        return create_engine(sa_url, pool_pre_ping=True)
    # Generous lock wait: another process may be in the middle of its own upgrade.
    engine = create_engine(sa_url, connect_args={"isolation_level": None, "timeout": 60.0})
    _install_sqlite_pragmas(engine, foreign_keys=False)

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _install_sqlite_pragmas(engine: Engine, *, foreign_keys: bool) -> None:
    fk = "ON" if foreign_keys else "OFF"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers (API, workers) don't block the writer and vice versa. The mode is
            # persistent in the file; a :memory: database silently stays in "memory" mode.
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode (only an OS crash can
            # lose the last commits), and avoids an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # SQLite ignores foreign keys unless asked, per connection.
            cursor.execute(f"PRAGMA foreign_keys={fk}")
        finally:
            cursor.close()

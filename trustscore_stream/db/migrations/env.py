"""Alembic environment for the packaged migrations (driven by trustscore_stream.db.migrate)."""

from __future__ import annotations

import zlib
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, text

from trustscore_stream.db.engine import backend_name, create_migration_engine
from trustscore_stream.db.models import Base, JSONType, UTCDateTime

# One key for the whole PostgreSQL database: concurrent upgraders (several workers starting
# at once) run one after the other; the later ones then find the schema at head.
_PG_LOCK_KEY = zlib.crc32(b"trustscore_stream.db.migrations")


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations are snapshots: render our decorator as the plain column type it stores.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and obj is JSONType:
        # Alembic's own rendering of this variant names `Text()` without its `sa.` prefix.
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")'
    return False


def _configure_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_item=_render_item,
        # SQLite cannot ALTER most things: future migrations use batch (copy-and-move) mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Transaction-scoped: released at commit/rollback, no unlock path to get wrong.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        context.run_migrations()


def run_migrations_offline(url: str) -> None:
    """`alembic upgrade --sql`: print the DDL instead of running it."""
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_item=_render_item,
        render_as_batch=backend_name(url) == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online(url: str) -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        # The caller owns the connection and its transaction (e.g. tests, embedding apps).
        _configure_online(given)
        return
    engine = create_migration_engine(url)
    try:
        with engine.begin() as connection:
            _configure_online(connection)
    finally:
        engine.dispose()


def _main() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set: use trustscore_stream.db.migrate")
    if context.is_offline_mode():
        run_migrations_offline(url)
    else:
        run_migrations_online(url)


# Alembic executes this file as a script (module name "env_py"); importing it as part of the
# package (type checkers, import sweeps) must not try to run migrations.
if __name__ != "trustscore_stream.db.migrations.env":
    _main()

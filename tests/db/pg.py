"""PostgreSQL test helpers: per-test schemas selected through the URL's search_path."""

from __future__ import annotations

import itertools
import secrets

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool


def with_pg_options(url: str, *options: str) -> str:
    """`url` with extra libpq `-c name=value` options appended (e.g. search_path, timezone)."""
    sa_url = make_url(url)
    current = sa_url.query.get("options", "")
    existing = current if isinstance(current, str) else " ".join(current)
    merged = " ".join([existing, *(f"-c{o}" for o in options)]).strip()
    return sa_url.update_query_dict({"options": merged}).render_as_string(hide_password=False)


class PgSchemas:
    """Creates and drops this session's throwaway schemas."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.prefix = f"ts_test_{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        # AUTOCOMMIT: CREATE/DROP SCHEMA take effect at once; NullPool: nothing left open.
        self._admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def create(self) -> str:
        name = f"{self.prefix}_{next(self._counter)}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        return name

    def url(self, schema: str) -> str:
        return with_pg_options(self.admin_url, f"search_path={schema}")

    def drop(self, schema: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    def drop_all(self) -> None:
        # The prefix is random hex plus "_", so it cannot match another session's schemas;
        # "_" is a LIKE wildcard, hence the escapes.
        pattern = self.prefix.replace("_", r"\_") + r"\_%"
        with self._admin.connect() as conn:
            names = conn.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": pattern}
            ).scalars()
            for name in list(names):
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        self._admin.dispose()

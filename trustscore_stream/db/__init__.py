"""Database layer: SQLAlchemy models, Alembic migrations and repository functions.

See docs/database.md. Importing this package does no I/O; engines are created on request.
Migrations run via `trustscore_stream.db.migrate.upgrade(url)`, deliberately not re-exported
here so that `python -m trustscore_stream.db.migrate` runs cleanly.
"""

from trustscore_stream.db.engine import create_engine_for, default_sqlite_url
from trustscore_stream.db.history import (
    AuditEntry,
    ScoreVersionRow,
    audit_entries,
    record_audit,
    record_score_versions,
    score_history,
)
from trustscore_stream.db.models import FactorDetail

__all__ = [
    "AuditEntry",
    "FactorDetail",
    "ScoreVersionRow",
    "audit_entries",
    "create_engine_for",
    "default_sqlite_url",
    "record_audit",
    "record_score_versions",
    "score_history",
]

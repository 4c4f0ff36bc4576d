"""Score history rows as they travel from scoring to the database writer (pure).

Scoring sends one record per partition and conflation window to the internal history
topic; agents/history.py writes them in batches, idempotent on (entity, version), so the
score path never waits on the database and a database outage loses nothing.

The same topic is the scoring stage's own record of what it published: after a restore,
the versions published since the restored checkpoint are read back from it and adopted
(`adopt`, agents/score_versions.py), so numbering continues after the last version any
reader has seen instead of reusing numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from trustscore_stream.events.deadletter import rfc3339
from trustscore_stream.scoring.publication import Publication, Published


class FactorRow(msgspec.Struct, frozen=True, gc=False):
    """A factor as the database stores it (db.models.FactorDetail)."""

    value: float
    weight: float
    evidence: tuple[str, ...]


class HistoryRow(msgspec.Struct, frozen=True, gc=False, array_like=True):
    entity: str
    version: int
    score: float
    level: str
    confidence: float
    model_version: str
    # {factor id: FactorRow} encoded once, when the version is published; the writer stores
    # it as it is (db.history.EncodedJson) instead of decoding and re-encoding it.
    factors: msgspec.Raw
    factors_changed: list[str]
    cause_event_id: str | None
    at: datetime
    # The score of the entity's last delta as of this version (`Published.emitted`), so a
    # restore that adopts this row knows the next delta's `previous` exactly. Trailing and
    # defaulted: rows written before it decode with None, and older readers ignore it.
    emitted: float | None = None


def history_row(p: Publication, emitted: float | None = None) -> HistoryRow:
    factors = {fid: FactorRow(f.value, f.weight, f.evidence) for fid, f in p.result.factors.items()}
    return HistoryRow(
        entity=p.entity,
        version=p.version,
        score=p.score,
        level=p.level,
        confidence=p.result.confidence,
        model_version=p.result.model_version,
        factors=msgspec.Raw(_encoder.encode(factors)),
        factors_changed=list(p.factors_changed),
        cause_event_id=p.cause_event_id,
        at=p.at,
        emitted=emitted,
    )


class _FactorValue(msgspec.Struct, frozen=True, gc=False):
    value: float  # weight and evidence are skipped


_decoder = msgspec.json.Decoder(list[HistoryRow])
_factor_values = msgspec.json.Decoder(dict[str, _FactorValue])
_encoder = msgspec.json.Encoder()
# Records stay well below Kafka's default 1 MiB message limit.
MAX_RECORD_BYTES = 256 * 1024


def encode_history(rows: list[HistoryRow], max_bytes: int = MAX_RECORD_BYTES) -> list[bytes]:
    """Rows as JSON-array records of at most `max_bytes` each (a bigger row goes alone)."""
    records: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for row in rows:
        raw = _encoder.encode(row)
        if chunk and size + len(raw) + 1 > max_bytes:
            records.append(b"[" + b",".join(chunk) + b"]")
            chunk, size = [], 0
        chunk.append(raw)
        size += len(raw) + 1
    if chunk:
        records.append(b"[" + b",".join(chunk) + b"]")
    return records


def decode_history(raw: bytes) -> list[HistoryRow]:
    return _decoder.decode(raw)


def published_of(row: HistoryRow, before: Published, threshold: float) -> Published:
    """The `Published` that publishing `row` left behind (`before`: the entity's previous
    one). A row from before `emitted` existed gets it by the publication rule itself
    (`is_significant`), which is exact when `before` is the version just below the row."""
    if row.emitted is not None:
        emitted: float | None = row.emitted
    elif before.emitted is None or before.level != row.level:
        emitted = row.score
    else:
        emitted = row.score if abs(row.score - before.emitted) >= threshold else before.emitted
    factors = _factor_values.decode(row.factors)
    return Published(
        version=row.version,
        score=row.score,
        level=row.level,
        at=rfc3339(row.at),
        factors={fid: f.value for fid, f in factors.items()},
        emitted=emitted,
    )


def adopt(published: Published, rows: Iterable[HistoryRow], threshold: float) -> Published:
    """What an entity restored with `published` must continue from, given its history rows
    in topic order: the row of the highest version above `published.version`, if any.
    Rows at or below the current version are ignored, so of two rows with one number the
    first wins, as in the database (agents/history.py keeps the first copy). Returns
    `published` itself when no row is newer."""
    current = published
    for row in rows:
        if row.version > current.version:
            current = published_of(row, current, threshold)
    return current

"""Score history rows as they travel from scoring to the database writer (pure).

Scoring sends one record per partition and conflation window to the internal history
topic; agents/history.py writes them in batches, idempotent on (entity, version), so the
score path never waits on the database and a database outage loses nothing.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from trustscore_stream.scoring.publication import Publication


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


def history_row(p: Publication) -> HistoryRow:
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
    )


_decoder = msgspec.json.Decoder(list[HistoryRow])
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

"""Score versions and deltas (pure).

Every change of an entity's score (to its 0.1 resolution) or level is a new `version`
(CONTRACT §3) with a history row. A delta goes to `trustscore-deltas` only when the score
has moved by at least the significance threshold since the last delta, or the level
changed, or it is the first: small moves are versioned but not broadcast. The current
version is kept with the entity's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from trustscore_stream.events.deadletter import rfc3339
from trustscore_stream.scoring.model import ScoreResult, factors_changed
from trustscore_stream.scoring.state import State

# A delta only for moves of at least half a point: finer moves are noise to a reader.
DEFAULT_SIGNIFICANCE = 0.5


class Published(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """The current score version of an entity."""

    version: int = 0
    score: float | None = None
    level: str | None = None
    at: str | None = None  # RFC 3339
    factors: dict[str, float] = {}  # factor id -> value, to name what changed
    emitted: float | None = None  # the score carried by the last delta


class Stored(msgspec.Struct, frozen=True, gc=False):
    """What the entity-state table holds per key: the factor state and the publication."""

    state: State
    published: Published = Published()


class Publication(msgspec.Struct, gc=False):
    """A new version; `emit` says whether it is also broadcast as a delta."""

    entity: str
    version: int
    score: float
    previous: float | None
    level: str
    factors_changed: tuple[str, ...]
    cause_event_id: str | None
    at: datetime
    result: ScoreResult
    emit: bool
    owner: str | None = None  # an NFT's current owner (wallet address), when known
    # Every event conflated into this version (at most scoring/causes.py MAX_CAUSES, the
    # newest), oldest first; the last is `cause_event_id`.
    cause_event_ids: tuple[str, ...] = ()


def is_new_version(previous: Published, result: ScoreResult) -> bool:
    return previous.score != result.score or previous.level != result.level


def is_significant(previous: Published, result: ScoreResult, threshold: float) -> bool:
    if previous.emitted is None or previous.level != result.level:
        return True
    return abs(result.score - previous.emitted) >= threshold


def changed_factors(previous: Published, result: ScoreResult) -> tuple[str, ...]:
    if not previous.factors:
        return tuple(result.factors)
    return tuple(fid for fid, f in result.factors.items() if previous.factors.get(fid) != f.value)


def publish(
    entity: str,
    previous: Published,
    result: ScoreResult,
    cause_event_id: str | None,
    at: datetime,
    threshold: float,
    cause_event_ids: Sequence[str] = (),
) -> tuple[Published, Publication]:
    """The next version of `entity` (call only when `is_new_version`)."""
    version = previous.version + 1
    emit = is_significant(previous, result, threshold)
    publication = Publication(
        entity=entity,
        version=version,
        score=result.score,
        previous=previous.emitted,
        level=result.level,
        factors_changed=changed_factors(previous, result),
        cause_event_id=cause_event_id,
        at=at,
        result=result,
        emit=emit,
        cause_event_ids=tuple(cause_event_ids),
    )
    published = Published(
        version=version,
        score=result.score,
        level=result.level,
        at=rfc3339(at),
        factors={fid: f.value for fid, f in result.factors.items()},
        emitted=result.score if emit else previous.emitted,
    )
    return published, publication


# Factors whose new evidence can be news in itself (a finding, a wash-trading ring, a
# flagged owner): a delta carries their evidence when they changed, for the notifier.
ALERT_FACTORS = ("fraud_risk", "market_integrity", "provenance")
MAX_EVIDENCE = 5


def delta_record(p: Publication) -> dict[str, Any]:
    """The CONTRACT §6 delta: the SSE `score` data plus `model_version`, extended with
    `owner` (NFTs), `evidence` of the alert factors that changed and, when several events
    were conflated into it, `cause_event_ids` (oldest first, the last is the cause)."""
    previous = p.previous
    record = {
        "entity": p.entity,
        "score": p.score,
        "previous": previous,
        "delta": None if previous is None else round(p.score - previous, 1),
        "level": p.level,
        "factors_changed": list(p.factors_changed),
        "cause_event_id": p.cause_event_id,
        "version": p.version,
        "at": rfc3339(p.at),
        "model_version": p.result.model_version,
    }
    if p.owner:
        record["owner"] = p.owner
    if len(p.cause_event_ids) > 1:
        record["cause_event_ids"] = list(p.cause_event_ids)
    evidence = {
        fid: list(p.result.factors[fid].evidence[:MAX_EVIDENCE])
        for fid in ALERT_FACTORS
        if fid in p.factors_changed and fid in p.result.factors
    }
    if evidence:
        record["evidence"] = evidence
    return record


def score_document(entity: str, result: ScoreResult, published: Published) -> dict[str, Any]:
    """The CONTRACT §3 answer for a score computed now (reads are always current). A score
    that differs from the stored version (decay, or a collection change not yet folded into
    this lazily scored NFT) is the next version, stored when the entity next changes."""
    pending = is_new_version(published, result)
    version = published.version + (1 if pending else 0)
    factors = {
        fid: {"value": f.value, "weight": f.weight, "evidence": list(f.evidence)}
        for fid, f in result.factors.items()
    }
    return {
        "entity": entity,
        "score": result.score,
        "level": result.level,
        "confidence": result.confidence,
        "model_version": result.model_version,
        "version": version,
        "updated_at": published.at,
        "factors": factors,
    }


__all__ = [
    "DEFAULT_SIGNIFICANCE",
    "Publication",
    "Published",
    "Stored",
    "changed_factors",
    "delta_record",
    "factors_changed",
    "is_new_version",
    "is_significant",
    "publish",
    "score_document",
]

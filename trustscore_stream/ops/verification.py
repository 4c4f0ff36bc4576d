"""`verify`: does an entity's stored score version agree with its stored factor state? Pure.

The scoring engine versions a score with exactly what `score_stored` computes from the
entity's state at that moment (agents/scoring.py, `publish`). So a stored version must equal
a recomputation from the state now held, either at the version's own time (the state has not
changed since, and time-decayed evidence is read at the same instant) or at the present (the
state changed since without moving the score, so no new version was due). A version that
matches neither was not produced from this state: a corrupted bucket, a lost update, a model
change without a rescore.

Two expected differences are not failures:
- `pending`: the entity changed since the last publish; its next version is at most one
  conflation window away (checked again, it would be compared then);
- `lagging`: an NFT nobody watches is scored on read only (docs/architecture.md, "Scoring"),
  so its stored version lags collection-level changes until its own next event; `rescore`
  publishes it now. `strict` counts these as mismatches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from trustscore_stream.scoring.model import ScoreResult
from trustscore_stream.scoring.publication import Published

Status = Literal["ok", "mismatch", "lagging", "pending"]


@dataclass(frozen=True, slots=True)
class ScoreCheck:
    entity: str
    status: Status
    version: int
    stored_score: float | None
    stored_level: str | None
    recomputed_at_version: float | None  # None: the version has no time (never published)
    recomputed_now: float
    recomputed_level: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same(published: Published, result: ScoreResult, with_factors: bool) -> bool:
    if published.score != result.score or published.level != result.level:
        return False
    if with_factors and published.factors:
        return published.factors == {fid: f.value for fid, f in result.factors.items()}
    return True


def check_score(
    entity: str,
    published: Published,
    at_version: ScoreResult | None,
    now: ScoreResult,
    *,
    pending: bool,
    lazy: bool,
    strict: bool = False,
) -> ScoreCheck:
    """Compare a stored version with recomputations at its time (`at_version`) and now."""

    def verdict(status: Status, detail: str) -> ScoreCheck:
        return ScoreCheck(
            entity=entity,
            status=status,
            version=published.version,
            stored_score=published.score,
            stored_level=published.level,
            recomputed_at_version=at_version.score if at_version is not None else None,
            recomputed_now=now.score,
            recomputed_level=now.level,
            detail=detail,
        )

    if pending:
        return verdict("pending", "changed since the last publish; a new version is due")
    if published.version == 0:
        return verdict("mismatch", "state without any published version")
    # At the version's own time the factor values must agree too (they were stored then).
    if at_version is not None and _same(published, at_version, with_factors=True):
        return verdict("ok", "matches a recomputation at the version's time")
    if _same(published, now, with_factors=False):
        return verdict("ok", "matches a recomputation now")
    if lazy and not strict:
        return verdict("lagging", "unwatched NFT, scored on read; `rescore` publishes it")
    return verdict(
        "mismatch",
        f"stored {published.score} ({published.level}) v{published.version}; recomputed "
        f"{at_version.score if at_version is not None else '-'} at the version's time, "
        f"{now.score} ({now.level}) now",
    )

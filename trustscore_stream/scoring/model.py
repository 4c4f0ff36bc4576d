"""Factor ids, weights, the composite score and its result types (docs/scoring.md §3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import floor
from typing import Literal

from msgspec import Struct

from trustscore_stream.scoring.common import clamp

MODEL_VERSION = "2"

MARKET_INTEGRITY = "market_integrity"
PROVENANCE = "provenance"
FRAUD_RISK = "fraud_risk"
CREATOR_REPUTATION = "creator_reputation"
COLLECTION_HEALTH = "collection_health"
LIQUIDITY = "liquidity"
SOCIAL_SENTIMENT = "social_sentiment"
METADATA_STABILITY = "metadata_stability"

FACTOR_IDS: tuple[str, ...] = (
    MARKET_INTEGRITY,
    PROVENANCE,
    FRAUD_RISK,
    CREATOR_REPUTATION,
    COLLECTION_HEALTH,
    LIQUIDITY,
    SOCIAL_SENTIMENT,
    METADATA_STABILITY,
)

# Default weights (sum 1): direct manipulation and fraud evidence first, gameable social last.
WEIGHTS: dict[str, float] = {
    MARKET_INTEGRITY: 0.20,
    FRAUD_RISK: 0.20,
    PROVENANCE: 0.15,
    COLLECTION_HEALTH: 0.12,
    CREATOR_REPUTATION: 0.10,
    LIQUIDITY: 0.08,
    METADATA_STABILITY: 0.08,
    SOCIAL_SENTIMENT: 0.07,
}

# No data → "caution": absence of evidence is neither trust nor fraud.
PRIOR_VALUE = 50.0
# 1 % of the total weight: decides only when nothing else has data.
PRIOR_WEIGHT = 0.01

HIGH_TRUST_AT = 80.0
MODERATE_AT = 60.0
CAUTION_AT = 40.0

# An unresolved critical finding keeps the score deep in high_risk (< 40), whatever else.
CRITICAL_CAP = 30.0
# An unresolved high finding keeps it at most in caution.
HIGH_CAP = 55.0
# Below even odds a finding is a suspicion for the weighted factor, not an override.
CAP_MIN_CONFIDENCE = 0.5

# Evidence strings per factor: enough to explain, few enough for a push notification.
MAX_EVIDENCE = 5
# Score and values to 0.1 so decay does not bump CONTRACT's `version` on every read.
SCORE_DECIMALS = 1
CONFIDENCE_DECIMALS = 3

NO_DATA = "no data"

Level = Literal["high_trust", "moderate", "caution", "high_risk"]


class FactorValue(Struct, frozen=True, gc=False):
    """What a factor says: value 0–100 (higher = more trustworthy), confidence 0–1, why."""

    value: float
    confidence: float
    evidence: tuple[str, ...] = ()


def no_data(value: float = PRIOR_VALUE) -> FactorValue:
    return FactorValue(value, 0.0, (NO_DATA,))


class Cap(Struct, frozen=True, gc=False):
    """An upper bound on the composite and the reason for it."""

    limit: float
    reason: str


class FactorScore(Struct, frozen=True, gc=False):
    value: float
    weight: float
    confidence: float
    evidence: tuple[str, ...]


class ScoreResult(Struct, frozen=True, gc=False):
    score: float
    level: Level
    confidence: float
    factors: dict[str, FactorScore]
    model_version: str = MODEL_VERSION
    capped_by: str | None = None

    def to_contract(self) -> dict[str, object]:
        """The score fields of CONTRACT §3 (the stream layer adds entity, version, updated_at)."""
        return {
            "score": self.score,
            "level": self.level,
            "confidence": self.confidence,
            "model_version": self.model_version,
            "factors": {
                fid: {
                    "value": f.value,
                    "weight": f.weight,
                    "confidence": f.confidence,
                    "evidence": list(f.evidence),
                }
                for fid, f in self.factors.items()
            },
        }


def level_for(score: float) -> Level:
    if score >= HIGH_TRUST_AT:
        return "high_trust"
    if score >= MODERATE_AT:
        return "moderate"
    if score >= CAUTION_AT:
        return "caution"
    return "high_risk"


def _round(x: float, digits: int) -> float:
    return round(x, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


_SCORE_SCALE = 10.0**SCORE_DECIMALS
_CONFIDENCE_SCALE = 10.0**CONFIDENCE_DECIMALS
# Where x·scale is this close to a half, `round` itself decides (a tie, or too close to tell).
_TIE_MARGIN = 1e-9


def _round_fast(x: float, scale: float, digits: int) -> float:
    """Exactly `_round(x, digits)` for scale = 10**digits, about twice as fast.

    `round(x, digits)` is the double nearest to x rounded to `digits` decimals. Away from a
    tie, that decimal is k/scale with k the integer nearest to x·scale: the product's rounding
    error (≤ 1.2e-10 for |x·scale| < 1e6) cannot move x·scale across a half that is more than
    _TIE_MARGIN away, and k / scale, an IEEE division of two exact integers, is the double
    nearest to k/scale. Near a tie, or for large or non-finite x, `round` decides.
    tests/scoring/test_rounding.py checks it against `round`.
    """
    y = x * scale
    if not -1e6 < y < 1e6:
        return round(x, digits) + 0.0
    k = floor(y)
    frac = y - k  # exact: y and k are within 1 of each other
    if -_TIE_MARGIN < frac - 0.5 < _TIE_MARGIN:
        return round(x, digits) + 0.0
    return (k + 1 if frac > 0.5 else k) / scale


def round_score(x: float) -> float:
    """_round(x, SCORE_DECIMALS)."""
    return _round_fast(x, _SCORE_SCALE, SCORE_DECIMALS)


def round_confidence(x: float) -> float:
    """_round(x, CONFIDENCE_DECIMALS)."""
    return _round_fast(x, _CONFIDENCE_SCALE, CONFIDENCE_DECIMALS)


def _unit(x: float) -> float:
    """clamp(x, 0.0, 1.0)."""
    if x != x:
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _cap_order(cap: Cap) -> tuple[float, str]:
    return cap.limit, cap.reason


_NO_DATA_EVIDENCE = (NO_DATA,)


def composite(
    factors: Mapping[str, FactorValue],
    caps: Iterable[Cap] = (),
    weights: Mapping[str, float] = WEIGHTS,
) -> ScoreResult:
    """Weighted mean by weight × confidence, with a prior, one-sided fraud_risk and caps."""
    num = PRIOR_WEIGHT * PRIOR_VALUE
    den = PRIOR_WEIGHT
    total_conf = 0.0
    out: dict[str, FactorScore] = {}
    for fid in FACTOR_IDS:
        f = factors.get(fid)
        weight = weights[fid]
        if f is None:  # no_data(), rounded
            out[fid] = FactorScore(PRIOR_VALUE, weight, 0.0, _NO_DATA_EVIDENCE)
            continue
        conf = f.confidence
        if not 0.0 <= conf <= 1.0:  # also NaN
            conf = _unit(conf)
        value = f.value
        if not 0.0 <= value <= 100.0:
            value = clamp(value)
        total_conf += weight * conf
        out[fid] = FactorScore(
            _round_fast(value, _SCORE_SCALE, SCORE_DECIMALS),
            weight,
            _round_fast(conf, _CONFIDENCE_SCALE, CONFIDENCE_DECIMALS),
            tuple(f.evidence[:MAX_EVIDENCE]),
        )
        if fid == FRAUD_RISK:
            continue
        e = weight * conf
        num += e * value
        den += e
    score = num / den
    fraud = factors.get(FRAUD_RISK)
    if fraud is not None:
        e = weights[FRAUD_RISK] * _unit(fraud.confidence)
        value = clamp(fraud.value)
        # One-sided: findings may only lower the score (docs/scoring.md §3).
        if e > 0 and value < score:
            score = (num + e * value) / (den + e)
    capped_by: str | None = None
    binding = min(caps, key=_cap_order, default=None)
    if binding is not None and score > binding.limit:
        score = binding.limit
        capped_by = binding.reason
    score = _round(clamp(score), SCORE_DECIMALS)
    return ScoreResult(
        score=score,
        level=level_for(score),
        confidence=_round(_unit(total_conf), CONFIDENCE_DECIMALS),
        factors=out,
        capped_by=capped_by,
    )


def factors_changed(old: ScoreResult | None, new: ScoreResult) -> tuple[str, ...]:
    """Factor ids whose value changed (CONTRACT's `factors_changed`)."""
    if old is None:
        return tuple(new.factors)
    return tuple(
        fid
        for fid, f in new.factors.items()
        if fid not in old.factors or old.factors[fid].value != f.value
    )

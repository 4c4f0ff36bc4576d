"""fraud_risk: third-party fraud findings by severity × confidence (docs/scoring.md §5.3).

Findings are kept per entity state, one record per finding kind (the entity is the state's own
key, so the key is `(finding, entity)`), last writer by `occurred_at` wins: a later
`resolved: true` cancels a finding and a late-arriving older report cannot revive it
(ties in time: the larger event id wins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from msgspec import Struct

from trustscore_stream.events.envelope import FraudFindingPayload
from trustscore_stream.scoring.model import (
    CAP_MIN_CONFIDENCE,
    CRITICAL_CAP,
    HIGH_CAP,
    Cap,
    FactorValue,
)

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
# One confident critical finding → value 10; low findings barely move it.
SEVERITY_WEIGHT: tuple[float, ...] = (0.1, 0.3, 0.6, 0.9)
HIGH = 2
CRITICAL = 3

# A finding on the token or its collection (e.g. a rug pull) applies to the token in full.
SCOPE_NFT = 1.0
SCOPE_COLLECTION = 1.0
# The creator's conduct predicts their works but is one step removed.
SCOPE_CREATOR = 0.8
# A wallet's own findings, for wallet scores.
SCOPE_WALLET = 1.0

NO_FINDINGS = "no unresolved fraud findings"


class FindingRecord(Struct, frozen=True, array_like=True, gc=False):
    severity: int  # index into SEVERITIES
    confidence: float
    t: int
    event_id: str
    resolved: bool = False

    @property
    def weight(self) -> float:
        return SEVERITY_WEIGHT[self.severity] * self.confidence


Findings = dict[str, FindingRecord]


class Scoped(NamedTuple):
    """The findings of one entity as seen from the entity being scored."""

    label: str  # e.g. "this NFT", "its collection", "its creator 0x…"
    weight: float
    findings: Mapping[str, FindingRecord]


def update(
    findings: Mapping[str, FindingRecord], payload: FraudFindingPayload, t: int, event_id: str
) -> Findings:
    """Upsert a finding (last writer by event time wins; ties go to the larger event id, so
    the arrival order never decides)."""
    old = findings.get(payload.finding)
    if old is not None and (t, event_id) < (old.t, old.event_id):
        return dict(findings)
    new = dict(findings)
    new[payload.finding] = FindingRecord(
        severity=SEVERITIES.index(payload.severity),
        confidence=float(payload.confidence),
        t=t,
        event_id=event_id,
        resolved=bool(payload.resolved),
    )
    return new


def unresolved(findings: Mapping[str, FindingRecord]) -> list[tuple[str, FindingRecord]]:
    if not findings:
        return []
    return [(kind, rec) for kind, rec in sorted(findings.items()) if not rec.resolved]


def worst(findings: Mapping[str, FindingRecord]) -> tuple[float, str, FindingRecord] | None:
    """The unresolved finding with the largest severity weight × confidence."""
    best: tuple[float, str, FindingRecord] | None = None
    for kind, rec in unresolved(findings):
        if best is None or rec.weight > best[0]:
            best = (rec.weight, kind, rec)
    return best


def describe(kind: str, rec: FindingRecord, label: str) -> str:
    return (
        f"{kind} ({SEVERITIES[rec.severity]}, confidence {rec.confidence:.2f}) on {label} "
        f"(event {rec.event_id})"
    )


_NOTHING = FactorValue(100.0, 0.0, (NO_FINDINGS,))


def assess(scopes: Sequence[Scoped]) -> tuple[FactorValue, list[Cap]]:
    """The fraud_risk value and the hard caps, in one pass over the unresolved findings.

    value = 100·Π(1 − SEV·c·σ), confidence = 1 − Π(1 − c·σ); a cap for every unresolved
    high/critical finding with effective confidence c·σ ≥ CAP_MIN_CONFIDENCE.
    """
    keep = 1.0
    doubt = 1.0
    items: list[tuple[float, str]] = []
    out: list[Cap] = []
    for scope in scopes:
        if not scope.findings:
            continue
        for kind, rec in unresolved(scope.findings):
            keep *= 1.0 - SEVERITY_WEIGHT[rec.severity] * rec.confidence * scope.weight
            doubt *= 1.0 - rec.confidence * scope.weight
            items.append((rec.weight * scope.weight, describe(kind, rec, scope.label)))
            if rec.confidence * scope.weight < CAP_MIN_CONFIDENCE:
                continue
            if rec.severity == CRITICAL:
                limit = CRITICAL_CAP
            elif rec.severity == HIGH:
                limit = HIGH_CAP
            else:
                continue
            out.append(
                Cap(
                    limit,
                    f"unresolved {SEVERITIES[rec.severity]} {kind} on {scope.label} "
                    f"(event {rec.event_id})",
                )
            )
    if not items:
        return _NOTHING, out
    items.sort(key=lambda i: (-i[0], i[1]))
    return FactorValue(100.0 * keep, 1.0 - doubt, tuple(text for _, text in items)), out


def flagged(findings: Mapping[str, FindingRecord]) -> tuple[str, FindingRecord] | None:
    """The worst unresolved high/critical finding with confidence ≥ 0.5, if any."""
    hits = [
        (kind, rec)
        for kind, rec in unresolved(findings)
        if rec.severity >= HIGH and rec.confidence >= CAP_MIN_CONFIDENCE
    ]
    if not hits:
        return None
    return max(hits, key=lambda h: (h[1].weight, h[0]))

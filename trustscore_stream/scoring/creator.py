"""creator_reputation: a creator's track record over their collections (§5.4).

Collections live on other partitions than their creator's wallet key, so each collection
sends its creator a small `CollectionReport`; the creator's `WalletSummary` carries the reports
(and the wallet's unresolved findings) to wherever the creator's works are scored.
"""

from __future__ import annotations

from collections.abc import Mapping

from msgspec import Struct

from trustscore_stream.scoring.common import clamp, sat
from trustscore_stream.scoring.fraud import FindingRecord
from trustscore_stream.scoring.model import FactorValue, no_data

# Reports kept per creator: enough to judge a track record, bounded for prolific creators.
MAX_REPORTS = 32
# A known but unproven creator: moderate.
CREATOR_PRIOR = 60.0
# Pseudo-collections of prior: one collection moves the value only part of the way.
PRIOR_COLLECTIONS = 2.0
# A collection with an unresolved high/critical finding is the worst possible track record.
FLAGGED_TRACK = 0.0
# A verification naming this creator for the collection being scored.
VERIFIED_BONUS = 10.0
# Below this health confidence a report says nothing about quality, only that it exists.
MIN_HEALTH_CONFIDENCE = 0.1
# Confidence: a named creator is some evidence; the track record and a verification add to it.
CONF_KNOWN = 0.3
CONF_TRACK = 0.6
CONF_VERIFIED = 0.1
TRACK_CONFIDENCE_SCALE = 3.0


class CollectionReport(Struct, frozen=True, array_like=True, gc=False):
    """What a creator's wallet key learns about one of the creator's collections."""

    collection: str
    t: int
    health: float
    health_confidence: float
    verified: bool | None = None
    flagged: str = ""  # the worst unresolved high/critical finding, described; "" if none


class WalletSummary(
    Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    rename={
        "findings": "f",
        "collections": "c",
    },
):
    """The part of a wallet's state other partitions need: findings and creator record."""

    id: str
    findings: dict[str, FindingRecord] = {}
    collections: dict[str, CollectionReport] = {}

    @property
    def address(self) -> str:
        return self.id.rsplit(":", 1)[-1]


def upsert_report(
    reports: Mapping[str, CollectionReport], report: CollectionReport
) -> dict[str, CollectionReport]:
    """Last writer by report time wins; only the newest MAX_REPORTS collections are kept."""
    old = reports.get(report.collection)
    if old is not None and old.t > report.t:
        return dict(reports)
    out = dict(reports)
    out[report.collection] = report
    if len(out) > MAX_REPORTS:
        keep = sorted(out.items(), key=lambda kv: (kv[1].t, kv[0]))[-MAX_REPORTS:]
        out = dict(sorted(keep))
    return out


def value(
    creator: str,
    summary: WalletSummary | None,
    *,
    exclude: str,
    verified_for_creator: bool,
) -> FactorValue:
    """`creator`: address (empty if unknown); `exclude`: the collection being scored."""
    if not creator:
        return no_data()
    reports = (
        []
        if summary is None
        else [r for key, r in sorted(summary.collections.items()) if key != exclude]
    )
    total = CREATOR_PRIOR * PRIOR_COLLECTIONS
    flagged: list[str] = []
    for r in reports:
        if r.flagged:
            total += FLAGGED_TRACK
            flagged.append(f"{r.collection}: {r.flagged}")
        elif r.health_confidence >= MIN_HEALTH_CONFIDENCE:
            total += clamp(r.health)
        else:
            total += CREATOR_PRIOR
    v = total / (PRIOR_COLLECTIONS + len(reports))
    if verified_for_creator:
        v += VERIFIED_BONUS
    evidence = [
        f"creator {creator}" + (" (verified for this collection)" if verified_for_creator else "")
    ]
    if reports:
        evidence.append(
            f"{len(reports)} other collections by the creator, {len(flagged)} with unresolved "
            "high/critical findings"
        )
        evidence.extend(flagged)
    else:
        evidence.append("no other collections known for the creator")
    confidence = (
        CONF_KNOWN
        + CONF_TRACK * sat(len(reports), TRACK_CONFIDENCE_SCALE)
        + (CONF_VERIFIED if verified_for_creator else 0.0)
    )
    return FactorValue(clamp(v), clamp(confidence, 0.0, 1.0), tuple(evidence))

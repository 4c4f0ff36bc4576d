"""Classification and prioritisation of validated events (pure; see docs/architecture.md).

Every event gets a category, the entities it touches, a priority 0–100 from a
multi-factor rule (type, severity × confidence, value moved, staleness) and a lane.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

import msgspec

from trustscore_stream.events.envelope import (
    Burn,
    CollectionVerified,
    Envelope,
    FraudFinding,
    Listing,
    Mint,
    Sale,
    Transfer,
)
from trustscore_stream.events.ids import parse_entity_id, wallet_id

Category = Literal["ownership", "trade", "market", "risk", "social", "metadata"]
Lane = Literal["critical", "normal", "bulk"]
LANES: tuple[Lane, ...] = ("critical", "normal", "bulk")

CATEGORY_BY_TYPE: dict[str, Category] = {
    "mint": "ownership",
    "transfer": "ownership",
    "burn": "ownership",
    "sale": "trade",
    "listing": "trade",
    "market_data": "market",
    "fraud_finding": "risk",
    "collection_verified": "risk",  # verification changes how far the collection is trusted
    "social_signal": "social",
    "metadata_update": "metadata",
}

# Base priority by type: how much one event of the type can move a trust score at once.
BASE_PRIORITY: dict[str, float] = {
    "fraud_finding": 60.0,  # direct risk evidence
    "sale": 40.0,  # trades drive market integrity and liquidity
    "collection_verified": 40.0,  # one event flips provenance for a whole collection
    "transfer": 35.0,
    "burn": 35.0,
    "mint": 30.0,
    "listing": 20.0,  # intent, not settlement
    "metadata_update": 20.0,
    "market_data": 10.0,  # periodic aggregates; the next one supersedes it
    "social_signal": 5.0,  # noisy, high-volume, averaged anyway
}
# Added for fraud findings, scaled by confidence: a critical, confident finding must jump
# every queue; a low-severity one is ordinary work.
SEVERITY_BOOST: dict[str, float] = {"low": 0.0, "medium": 10.0, "high": 30.0, "critical": 40.0}
# Confidence floor for the boost, so a "critical" finding at low confidence still rises.
MIN_CONFIDENCE_WEIGHT = 0.5
# Value moved: +VALUE_SCALE × log10(1 + price), capped; a fresh sale of ≥ ~31 units of its
# currency reaches critical (prices are not converted between currencies).
VALUE_SCALE = 20.0
VALUE_CAP = 40.0
# Staleness: old events are backfill. Their effect on the current score is the same, but
# nobody is waiting for them, so they must not crowd out live events.
STALE_AFTER_S = 3600.0
STALE_PENALTY = 10.0
VERY_STALE_AFTER_S = 86400.0
VERY_STALE_PENALTY = 20.0
# Lane thresholds on the 0–100 priority.
CRITICAL_AT = 70.0
NORMAL_AT = 25.0


class Classification(msgspec.Struct, frozen=True, gc=False):
    """What ingest decides about an event. Its entity associations are `associations(event)`:
    derived from the envelope wherever they are needed, not shipped with every event."""

    category: Category
    priority: float
    lane: Lane


def _price(value: str | None) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except ValueError:  # pragma: no cover - the envelope pattern already guarantees digits
        return 0.0


def value_moved(event: Envelope) -> float:
    if isinstance(event, Sale | Mint):
        return _price(event.payload.price)
    return 0.0


def priority(event: Envelope, now: datetime) -> float:
    """The multi-factor priority rule, 0–100 (docs/architecture.md, "Priority")."""
    score = BASE_PRIORITY[event.type]
    if isinstance(event, FraudFinding):
        p = event.payload
        if p.resolved:
            score = BASE_PRIORITY["sale"]  # a resolution matters, but restores; not urgent
        else:
            score += SEVERITY_BOOST[p.severity] * max(p.confidence, MIN_CONFIDENCE_WEIGHT)
    moved = value_moved(event)
    if moved > 0:
        score += min(VALUE_CAP, VALUE_SCALE * math.log10(1.0 + moved))
    age = (now - event.occurred_at).total_seconds()
    if age > VERY_STALE_AFTER_S:
        score -= VERY_STALE_PENALTY
    elif age > STALE_AFTER_S:
        score -= STALE_PENALTY
    return max(0.0, min(100.0, score))


def lane_for(priority_value: float) -> Lane:
    if priority_value >= CRITICAL_AT:
        return "critical"
    if priority_value >= NORMAL_AT:
        return "normal"
    return "bulk"


def associations(event: Envelope) -> tuple[str, ...]:
    """The entities an event touches: subject, collection, then wallets (creators too)."""
    subject = event.entity
    out: list[str] = [subject]
    parsed = parse_entity_id(subject)
    if parsed.collection and parsed.collection != subject:
        out.append(parsed.collection)
    chain = event.chain
    wallets: list[str | None] = []
    if isinstance(event, Sale):
        wallets = [event.payload.seller, event.payload.buyer]
    elif isinstance(event, Transfer):
        wallets = [event.payload.from_, event.payload.to]
    elif isinstance(event, Mint):
        wallets = [event.payload.to, event.payload.creator]
    elif isinstance(event, Burn):
        wallets = [event.payload.from_]
    elif isinstance(event, Listing):
        wallets = [event.payload.seller]
    elif isinstance(event, CollectionVerified):
        wallets = [event.payload.creator]
    for address in wallets:
        if address is not None:
            wid = wallet_id(chain, address)
            if wid not in out:
                out.append(wid)
    return tuple(out)


def classify(event: Envelope, now: datetime) -> Classification:
    p = priority(event, now)
    return Classification(CATEGORY_BY_TYPE[event.type], p, lane_for(p))

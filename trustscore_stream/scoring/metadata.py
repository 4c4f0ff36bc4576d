"""metadata_stability: changes after mint, frozen metadata (docs/scoring.md §5.8)."""

from __future__ import annotations

import math

from msgspec import Struct

from trustscore_stream.events.envelope import MetadataUpdatePayload
from trustscore_stream.scoring.common import (
    DAY,
    ZERO,
    Decayed,
    add,
    at,
    clamp,
    decay,
    duration,
    sat,
)
from trustscore_stream.scoring.model import FactorValue, no_data

# Fields that change what the token *is*; the rest (description, traits order…) matter less.
CRITICAL_FIELDS = frozenset({"image", "image_url", "image_data", "animation_url", "name"})
W_CRITICAL_FIELD = 1.0
W_OTHER_FIELD = 0.4
# Delayed reveals change the image shortly after mint as a matter of course.
REVEAL_GRACE = 7 * DAY
REVEAL_FACTOR = 0.3
# A change after a freeze breaks an explicit promise: worse than any ordinary change.
W_AFTER_FREEZE = 3.0
# Unfreezing reopens the door to swaps.
W_UNFREEZE = 1.0
# Old changes fade slowly: a swap half a year ago still says something about the issuer.
METADATA_HALF_LIFE = 180 * DAY
# One late image change → 61.
METADATA_SCALE = 2.0
# Freezing halves the remaining penalty: past changes happened, future ones cannot.
FROZEN_RELIEF = 0.5
# Days unchanged since mint that give 63 % of the time-based confidence.
AGE_SCALE_DAYS = 30.0
# Per-token change mass at which a collection's value falls to 37.
COLLECTION_RATE_SCALE = 0.5
# Tokens + updates that give 63 % confidence for the collection rate.
COLLECTION_CONFIDENCE_SCALE = 20.0
MAX_CHANGES = 3
EVIDENCE_MIN = 0.05


class Change(Struct, frozen=True, array_like=True, gc=False):
    t: int
    weight: float
    text: str


class MetadataState(
    Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    rename={
        "mass": "c",
        "updates": "n",
        "frozen": "f",
        "frozen_at": "ft",
        "changes": "e",
        "broken": "x",
    },
):
    mass: Decayed = ZERO
    updates: int = 0
    frozen: bool = False
    frozen_at: int = 0
    changes: tuple[Change, ...] = ()
    broken: bool = False  # changed after a freeze: the freeze is not honoured


class CollectionMetadata(Struct, frozen=True, array_like=True, gc=False):
    mass: Decayed = ZERO
    updates: int = 0


def update(
    state: MetadataState,
    payload: MetadataUpdatePayload,
    t: int,
    minted_at: int | None,
    event_id: str,
) -> tuple[MetadataState, float]:
    """Apply one metadata_update; also return its change weight (the collection adds it)."""
    names = sorted({f.strip().lower() for f in payload.fields if f.strip()})
    weight = 0.0
    texts: list[str] = []
    broken = state.broken
    if names:
        if state.frozen and t > state.frozen_at:
            weight = W_AFTER_FREEZE
            broken = True
            texts.append(f"metadata changed after being frozen (event {event_id})")
        else:
            critical = any(n in CRITICAL_FIELDS for n in names)
            weight = W_CRITICAL_FIELD if critical else W_OTHER_FIELD
            if minted_at is not None and t - minted_at <= REVEAL_GRACE:
                weight *= REVEAL_FACTOR
            when = (
                f"{duration(t - minted_at)} after mint"
                if minted_at is not None
                else "(mint not observed)"
            )
            shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
            texts.append(f"{shown} changed {when} (event {event_id})")
    frozen, frozen_at = state.frozen, state.frozen_at
    if payload.frozen is True:
        if not frozen:
            frozen, frozen_at = True, t
        elif t < frozen_at:  # a late event shows it was frozen earlier
            frozen_at = t
    elif payload.frozen is False and frozen and t > frozen_at:
        frozen, frozen_at = False, 0
        weight += W_UNFREEZE
        texts.append(f"metadata unfrozen (event {event_id})")
    changes = state.changes
    if weight > 0:
        changes = (*changes, Change(t, weight, "; ".join(texts)))[-MAX_CHANGES:]
    return (
        MetadataState(
            mass=add(state.mass, weight, t, METADATA_HALF_LIFE),
            updates=state.updates + 1,
            frozen=frozen,
            frozen_at=frozen_at,
            changes=changes,
            broken=broken,
        ),
        weight,
    )


def value(state: MetadataState, minted_at: int | None, now: int) -> FactorValue:
    mass = at(state.mass, now, METADATA_HALF_LIFE)
    v = 100.0 * math.exp(-mass / METADATA_SCALE)
    evidence: list[str] = []
    if state.frozen and not state.broken:
        v = 100.0 - FROZEN_RELIEF * (100.0 - v)
        evidence.append("metadata frozen")
    elif state.frozen:
        evidence.append("metadata frozen, but the freeze was not honoured")
    if state.frozen:
        confidence = 1.0
    elif minted_at is not None:
        age_days = max(0.0, (now - minted_at) / DAY)
        confidence = 0.3 + 0.5 * sat(age_days, AGE_SCALE_DAYS)
    elif state.updates > 0:
        confidence = 0.5
    else:
        return no_data()
    shown = [
        c.text
        for c in reversed(state.changes)
        if c.weight * decay(now - c.t, METADATA_HALF_LIFE) >= EVIDENCE_MIN
    ]
    evidence.extend(shown)
    if not shown:
        evidence.append(
            "no metadata changes after mint"
            if mass < EVIDENCE_MIN
            else f"{state.updates} metadata updates"
        )
    return FactorValue(clamp(v), confidence, tuple(evidence))


def collection_update(state: CollectionMetadata, weight: float, t: int) -> CollectionMetadata:
    return CollectionMetadata(add(state.mass, weight, t, METADATA_HALF_LIFE), state.updates + 1)


def collection_value(state: CollectionMetadata, tokens: int, now: int) -> FactorValue:
    if tokens <= 0 and state.updates == 0:
        return no_data()
    mass = at(state.mass, now, METADATA_HALF_LIFE)
    rate = mass / max(1, tokens)
    evidence = (
        f"{state.updates} metadata updates; change mass {rate:.2f} per token"
        if state.updates
        else "no metadata changes observed"
    )
    return FactorValue(
        clamp(100.0 * math.exp(-rate / COLLECTION_RATE_SCALE)),
        sat(tokens + state.updates, COLLECTION_CONFIDENCE_SCALE),
        (evidence,),
    )

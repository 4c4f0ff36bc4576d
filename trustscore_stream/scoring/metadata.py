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


# Metadata updates kept in event-time order (the ordering horizon, docs/scoring.md §7): a late
# update, or a late mint (the reveal grace), recomputes them; older ones are settled.
UPDATES_KEPT = 8


class MetaEvent(Struct, frozen=True, array_like=True, gc=False):
    """One metadata_update as the fold needs it; `w` is its change weight as last folded."""

    t: int
    fields: tuple[str, ...]  # normalised names, sorted
    frozen: int  # -1: not said, 0: unfrozen, 1: frozen
    eid: str
    w: float = 0.0


def _event_key(e: MetaEvent) -> tuple[int, tuple[str, ...], int, str]:
    return e.t, e.fields, e.frozen, e.eid


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
        "recent": "r",
        "settled": "s",
    },
):
    """The fold of every update seen: `settled` (the updates that left `recent`) followed by
    `recent` (the last UPDATES_KEPT, in event-time order)."""

    mass: Decayed = ZERO
    updates: int = 0
    frozen: bool = False
    frozen_at: int = 0
    changes: tuple[Change, ...] = ()
    broken: bool = False  # changed after a freeze: the freeze is not honoured
    recent: tuple[MetaEvent, ...] = ()
    settled: MetadataState | None = None


class CollectionMetadata(Struct, frozen=True, array_like=True, gc=False):
    mass: Decayed = ZERO
    updates: int = 0


def _step(state: MetadataState, e: MetaEvent, minted_at: int | None) -> tuple[MetadataState, float]:
    """Fold one update (in event-time order); also return its change weight."""
    t, names, event_id = e.t, e.fields, e.eid
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
    if e.frozen == 1:
        if not frozen:
            frozen, frozen_at = True, t
        elif t < frozen_at:  # a late event shows it was frozen earlier
            frozen_at = t
    elif e.frozen == 0 and frozen and t > frozen_at:
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


def _base(state: MetadataState) -> MetadataState:
    return MetadataState(
        state.mass, state.updates, state.frozen, state.frozen_at, state.changes, state.broken
    )


def _refold(
    settled: MetadataState, recent: tuple[MetaEvent, ...], minted_at: int | None
) -> tuple[MetadataState, tuple[MetaEvent, ...], list[tuple[int, float]]]:
    """Fold `recent` over `settled`; return the state, `recent` with the new weights and the
    weight changes (time, delta) against the weights they had."""
    state = settled
    out: list[MetaEvent] = []
    deltas: list[tuple[int, float]] = []
    for e in recent:
        state, w = _step(state, e, minted_at)
        if w != e.w:
            deltas.append((e.t, w - e.w))
            e = MetaEvent(e.t, e.fields, e.frozen, e.eid, w)
        out.append(e)
    return state, tuple(out), deltas


def _with(
    state: MetadataState,
    settled: MetadataState,
    recent: tuple[MetaEvent, ...],
    minted_at: int | None,
) -> MetadataState:
    if len(recent) > UPDATES_KEPT:
        settled, _ = _step(settled, recent[0], minted_at)
        recent = recent[1:]
    return MetadataState(
        state.mass,
        state.updates,
        state.frozen,
        state.frozen_at,
        state.changes,
        state.broken,
        recent,
        settled,
    )


Deltas = list[tuple[int, float]]  # (time, change of an update's weight): for the collection


def update(
    state: MetadataState,
    payload: MetadataUpdatePayload,
    t: int,
    minted_at: int | None,
    event_id: str,
) -> tuple[MetadataState, Deltas]:
    """Put one metadata_update in its event-time place; return the new state and the weight
    changes it caused (its own weight, and those of later updates it re-weighed)."""
    names = tuple(sorted({f.strip().lower() for f in payload.fields if f.strip()}))
    frozen = -1 if payload.frozen is None else int(payload.frozen)
    e = MetaEvent(t, names, frozen, event_id)
    recent = state.recent
    if state.settled is not None or recent:
        settled = state.settled if state.settled is not None else MetadataState()
    else:
        settled = _base(state)  # nothing kept yet: what is known so far is settled
    key = _event_key(e)
    if not recent or key >= _event_key(recent[-1]):
        new, w = _step(_base(state) if recent else settled, e, minted_at)
        recent = (*recent, MetaEvent(t, names, frozen, event_id, w))
        return _with(new, settled, recent, minted_at), [(t, w)]
    i = len(recent)
    while i > 0 and key < _event_key(recent[i - 1]):
        i -= 1
    new, recent, deltas = _refold(settled, (*recent[:i], e, *recent[i:]), minted_at)
    deltas.append((t, 0.0))  # the collection's sum counts this update's time even at weight 0
    return _with(new, settled, recent, minted_at), deltas


def remint(state: MetadataState, minted_at: int | None) -> tuple[MetadataState, Deltas]:
    """The mint time changed (a late mint): re-weigh the kept updates (the reveal grace)."""
    if not state.recent:
        return state, []
    settled = state.settled if state.settled is not None else MetadataState()
    new, recent, deltas = _refold(settled, state.recent, minted_at)
    if not deltas and new.changes == state.changes:
        return state, []
    return _with(new, settled, recent, minted_at), deltas


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


def collection_update(
    state: CollectionMetadata, deltas: Deltas, updates: int = 1
) -> CollectionMetadata:
    mass = state.mass
    for t, w in deltas:
        mass = add(mass, w, t, METADATA_HALF_LIFE)
    return CollectionMetadata(mass, state.updates + updates)


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

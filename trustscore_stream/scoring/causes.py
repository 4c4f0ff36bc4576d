"""Which events changed an entity since it was last scored (pure).

Deltas are conflated: several events inside one conflation window make one version. The
last event is the version's `cause_event_id` (CONTRACT §3/§4); the others are kept too, at
most MAX_CAUSES per entity and window (the newest), so a delta can name them
(`cause_event_ids`, docs/operations.md "Logging") and one event can be followed from its
ingest to the delta and the notifications it contributed to.
"""

from __future__ import annotations

MAX_CAUSES = 10

Causes = dict[str, list[str]]  # entity -> ids of the events that changed it, oldest first


def add_cause(causes: Causes, key: str, event_id: str) -> bool:
    """Record that `event_id` changed `key`; True when `key` had unscored changes already
    (the new change is conflated with them)."""
    ids = causes.get(key)
    if ids is None:
        causes[key] = [event_id]
        return False
    if ids[-1] != event_id:  # one event reaching a key twice (through links) counts once
        ids.append(event_id)
        if len(ids) > MAX_CAUSES:
            del ids[0]
    return True

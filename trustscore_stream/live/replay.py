"""The replay buffer: what a reconnecting client missed, for at least `retention_s`.

One buffer per worker holds every record it dispatched in the last `retention_s` seconds
(by arrival: a worker that starts reads the last `retention_s` back from the broker), at
most `max_entries` of them, oldest evicted first: memory is bounded by the count whatever
the rate (docs/architecture.md gives the per-entry cost).
Each slot (topic partition) keeps its offsets in order so a resume position is found by
bisection, not by a scan of the whole buffer. A resume position below what a slot still
holds (evicted, or before this worker started following) cannot be replayed exactly: the
caller tells the client to reset.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

import msgspec


class Entry(msgspec.Struct, frozen=True, gc=False):
    # gc=False: up to 300,000 of these live for minutes; tracked, every full collection of
    # the worker would walk them all (its fields hold no reference cycles).
    seq: int  # dispatch order in this worker
    slot: int
    offset: int
    received: float  # when this worker dispatched it (seconds, time.time())
    channels: tuple[str, ...]
    event: str
    data: bytes
    position: tuple[int, ...]  # the stream position right after this record


class ReplayGap(Exception):
    """The client missed records that this buffer no longer (or never) held."""


class ReplayBuffer:
    def __init__(self, floors: Iterable[int], retention_s: float, max_entries: int) -> None:
        # Below floor[slot] nothing is held: where following started, then what was evicted.
        self.floors = list(floors)
        self.retention_s = retention_s
        self.max_entries = max_entries
        self._entries: list[Entry] = []
        self._head = 0  # evicted entries before this index (compacted in steps)
        self._offsets: list[list[int]] = [[] for _ in self.floors]
        self._seqs: list[list[int]] = [[] for _ in self.floors]
        self._slot_heads = [0] * len(self.floors)

    def __len__(self) -> int:
        return len(self._entries) - self._head

    def append(self, entry: Entry) -> None:
        self._entries.append(entry)
        self._offsets[entry.slot].append(entry.offset)
        self._seqs[entry.slot].append(entry.seq)

    def evict(self, now: float) -> int:
        """Drop entries older than the retention or beyond the count; returns how many."""
        entries, head = self._entries, self._head
        oldest_kept = now - self.retention_s
        excess = len(entries) - head - self.max_entries
        dropped = 0
        while head < len(entries) and (dropped < excess or entries[head].received < oldest_kept):
            entry = entries[head]
            self.floors[entry.slot] = entry.offset + 1
            self._slot_heads[entry.slot] += 1
            head += 1
            dropped += 1
        self._head = head
        if head > 4096 and head * 2 > len(entries):
            self._compact()
        return dropped

    def _compact(self) -> None:
        del self._entries[: self._head]
        self._head = 0
        for slot, cut in enumerate(self._slot_heads):
            del self._offsets[slot][:cut]
            del self._seqs[slot][:cut]
            self._slot_heads[slot] = 0

    def since(
        self,
        position: tuple[int, ...],
        wanted: frozenset[str],
        slots: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """Entries of the `wanted` channels at or after `position`, in dispatch order, at
        most `limit` + 1 of them (so the caller can tell it was cut). `slots`: the only
        slots the channels can be on (default all). Raises ReplayGap if some of what the
        client missed is no longer held."""
        slots = range(len(position)) if slots is None else slots
        if any(position[slot] < self.floors[slot] for slot in slots):
            raise ReplayGap("the client missed more than the replay buffer holds")
        start_seq: int | None = None
        for slot in slots:
            p = position[slot]
            offsets = self._offsets[slot]
            i = bisect_left(offsets, p, self._slot_heads[slot])
            if i < len(offsets):
                seq = self._seqs[slot][i]
                start_seq = seq if start_seq is None else min(start_seq, seq)
        if start_seq is None or len(self) == 0:
            return []
        first_seq = self._entries[self._head].seq
        out: list[Entry] = []
        for index in range(self._head + start_seq - first_seq, len(self._entries)):
            entry = self._entries[index]
            if entry.offset >= position[entry.slot] and not wanted.isdisjoint(entry.channels):
                out.append(entry)
                if limit is not None and len(out) > limit:
                    break
        return out

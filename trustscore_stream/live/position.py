"""Resumable stream positions: the opaque `id:` of every SSE frame (CONTRACT §4).

A worker follows every partition of the deltas and notifications topics (a broadcast,
outside the consumer group), in offset order per partition. A position is, for each of
those partitions ("slots"), the next offset not yet dispatched. A client that has seen the
frame with position P has seen every record of its channels with offset < P[slot] in every
slot, whichever worker it came from, because offsets are the same for every reader. So a
reconnect with `Last-Event-ID: P` on any worker replays exactly the records at or after P.
"""

from __future__ import annotations

PREFIX = "p1."  # format version: a client's id from an incompatible layout is not misread


class InvalidPosition(ValueError):
    """A Last-Event-ID or `since` that is not a position of this deployment."""


def encode(offsets: list[int] | tuple[int, ...]) -> str:
    return PREFIX + ".".join(map(str, offsets))


def decode(raw: str, slots: int) -> tuple[int, ...]:
    if not raw.startswith(PREFIX):
        raise InvalidPosition("not a stream position")
    parts = raw[len(PREFIX) :].split(".")
    if len(parts) != slots:
        raise InvalidPosition(f"position has {len(parts)} partitions, the stream has {slots}")
    try:
        offsets = tuple(int(part) for part in parts)
    except ValueError:
        raise InvalidPosition("position offsets are integers") from None
    if any(offset < 0 for offset in offsets):
        raise InvalidPosition("position offsets are >= 0")
    return offsets


def ahead(of: tuple[int, ...] | list[int], position: tuple[int, ...] | list[int]) -> bool:
    """True if `position` is past `of` in any slot."""
    return any(p > o for p, o in zip(position, of, strict=True))


def merged(a: tuple[int, ...] | list[int], b: tuple[int, ...] | list[int]) -> list[int]:
    return [max(x, y) for x, y in zip(a, b, strict=True)]

"""Which lane's work goes next (pure): strict priority with aging.

Critical before normal before bulk, except that work which has waited longer than
`max_wait_s` goes first (oldest first), so a flood of critical or normal work can delay
bulk by at most `max_wait_s` plus one batch, and never starve it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from trustscore_stream.events.classification import LANES, Lane

T = TypeVar("T")


@dataclass(slots=True)
class _Queued(Generic[T]):
    item: T
    enqueued_at: float


@dataclass(slots=True)
class LaneScheduler(Generic[T]):
    max_wait_s: float
    _queues: dict[Lane, deque[_Queued[T]]] = field(
        default_factory=lambda: {lane: deque() for lane in LANES}
    )

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def depth(self, lane: Lane) -> int:
        return len(self._queues[lane])

    def queued(self, lane: Lane) -> list[T]:
        """The items waiting in `lane`, oldest first (a copy)."""
        return [queued.item for queued in self._queues[lane]]

    def push(self, lane: Lane, item: T, now: float) -> None:
        self._queues[lane].append(_Queued(item, now))

    def pop(self, now: float) -> tuple[Lane, T, float] | None:
        """The next (lane, item, waited seconds), or None when every lane is empty."""
        overdue: tuple[float, Lane] | None = None
        for lane in LANES:
            queue = self._queues[lane]
            if queue and now - queue[0].enqueued_at > self.max_wait_s:
                candidate = (queue[0].enqueued_at, lane)
                if overdue is None or candidate < overdue:
                    overdue = candidate
        if overdue is not None:
            return self._take(overdue[1], now)
        for lane in LANES:
            if self._queues[lane]:
                return self._take(lane, now)
        return None

    def _take(self, lane: Lane, now: float) -> tuple[Lane, T, float]:
        queued = self._queues[lane].popleft()
        return lane, queued.item, now - queued.enqueued_at

from __future__ import annotations

import random

from trustscore_stream.events.retry import backoff_delay
from trustscore_stream.events.scheduling import LaneScheduler


def test_strict_priority_when_nothing_is_overdue() -> None:
    s: LaneScheduler[str] = LaneScheduler(max_wait_s=5.0)
    s.push("bulk", "b1", 0.0)
    s.push("normal", "n1", 0.1)
    s.push("critical", "c1", 0.2)
    assert [s.pop(0.3)[1] for _ in range(3)] == ["c1", "n1", "b1"]  # type: ignore[index]
    assert s.pop(0.4) is None


def test_bulk_flood_never_delays_critical() -> None:
    s: LaneScheduler[str] = LaneScheduler(max_wait_s=2.0)
    for i in range(10_000):
        s.push("bulk", f"b{i}", 0.0)
    s.push("critical", "c", 0.5)
    popped = s.pop(0.5)
    assert popped is not None and popped[1] == "c"


def test_bulk_is_not_starved_by_a_critical_flood() -> None:
    s: LaneScheduler[str] = LaneScheduler(max_wait_s=2.0)
    s.push("bulk", "b", 0.0)
    now = 0.0
    served_at = None
    for i in range(1000):  # a new critical batch arrives every 10 ms, forever
        s.push("critical", f"c{i}", now)
        _lane, item, waited = s.pop(now)  # type: ignore[misc]
        if item == "b":
            served_at = now
            assert waited <= 2.0 + 0.01
            break
        now += 0.01
    assert served_at is not None and served_at <= 2.01


def test_overdue_work_goes_oldest_first() -> None:
    s: LaneScheduler[str] = LaneScheduler(max_wait_s=1.0)
    s.push("normal", "n", 0.5)
    s.push("bulk", "b", 0.0)
    s.push("critical", "c", 1.9)
    assert s.pop(2.0)[1] == "b"  # type: ignore[index]
    assert s.pop(2.0)[1] == "n"  # type: ignore[index]


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 8.0, rng) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(8.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling

"""Plausibility check of market data (pure): a value far off the recent median is flagged.

Per key (a collection) the guard keeps the last `window` accepted values. A new value more
than `factor` times above or below their median is an anomaly: the caller dead-letters it
instead of feeding it to scores, and it does not enter the window (so one bad value cannot
drag the median). A real, lasting level change (a collapse after a rug pull) must not be
rejected forever: after `confirm_after` consecutive anomalies that agree with each other
(within `factor` of their own median), the guard adopts them as the new level.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str = ""


@dataclass
class AnomalyGuard:
    factor: float = 100.0
    window: int = 20
    min_samples: int = 3
    confirm_after: int = 3
    _accepted: dict[str, deque[Decimal]] = field(default_factory=dict)
    _suspect: dict[str, list[Decimal]] = field(default_factory=dict)

    def check(self, key: str, value: Decimal) -> Verdict:
        history = self._accepted.setdefault(key, deque(maxlen=self.window))
        if len(history) < self.min_samples:
            history.append(value)
            return Verdict(True)
        median = statistics.median(history)
        if self._within(value, median):
            history.append(value)
            self._suspect.pop(key, None)
            return Verdict(True)
        suspects = self._suspect.setdefault(key, [])
        suspects.append(value)
        if len(suspects) >= self.confirm_after:
            level = statistics.median(suspects)
            if all(self._within(v, level) for v in suspects):
                history.clear()
                history.extend(suspects)
                del self._suspect[key]
                return Verdict(True, f"new level adopted after {len(suspects)} agreeing values")
            del suspects[: len(suspects) - self.confirm_after + 1]
        return Verdict(
            False, f"{value} is more than {self.factor:g}x off the recent median {median}"
        )

    def _within(self, value: Decimal, median: Decimal) -> bool:
        if median == 0:
            return value == 0
        factor = Decimal(str(self.factor))
        return median / factor <= value <= median * factor

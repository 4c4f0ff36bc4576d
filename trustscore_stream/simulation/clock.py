"""Simulated time: integer milliseconds since the Unix epoch, formatted as RFC 3339.

The simulator never reads the wall clock: every timestamp is derived from the configured
start and seeded gaps, so the same configuration gives the same bytes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# The default start of file output: fixed, so a file is reproducible byte for byte.
DEFAULT_START = "2026-01-01T00:00:00Z"


def parse_time(text: str) -> int:
    """RFC 3339 with a zone (a trailing `Z` accepted) → epoch milliseconds."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r} is not RFC 3339 (e.g. 2026-01-01T00:00:00Z)") from None
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone (e.g. 2026-01-01T00:00:00Z)")
    return round(value.timestamp() * 1000)


class TimeFormatter:
    """Epoch ms → `YYYY-MM-DDTHH:MM:SS.mmmZ`, reusing the formatted second (most events of
    a busy stream share it)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        second, millis = divmod(ms, 1000)
        if second != self._second:
            t = time.gmtime(second)
            self._prefix = (
                f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
                f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            )
            self._second = second
        return f"{self._prefix}.{millis:03d}Z"


def format_time(ms: int) -> str:
    return TimeFormatter()(ms)


def describe_duration(ms: int) -> str:
    """A short human duration: `45 min`, `3.5 h`, `2.1 days`."""
    if ms < HOUR_MS:
        return f"{max(1, round(ms / MINUTE_MS))} min"
    if ms < 2 * DAY_MS:
        return f"{ms / HOUR_MS:.1f} h"
    return f"{ms / DAY_MS:.1f} days"


def now_ms() -> int:
    """Wall-clock now, whole seconds: only the runner's default start uses it."""
    return int(datetime.now(UTC).timestamp()) * 1000

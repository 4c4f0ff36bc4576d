"""Retry records and backoff (pure): exponential with equal jitter, capped."""

from __future__ import annotations

import random

import msgspec

from trustscore_stream.events.routed import Routed


class RetryEnvelope(msgspec.Struct, kw_only=True):
    lane: str
    attempt: int  # attempts made so far
    not_before: float  # unix seconds: do not retry before this
    reason: str  # last error
    items: list[Routed]


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with equal jitter: uniform in [c/2, c], c = min(max, base·2^(n-1)).

    Half the delay is kept so retries still back off; the random half spreads a burst of
    failures so they do not retry in lock-step."""
    ceiling = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)

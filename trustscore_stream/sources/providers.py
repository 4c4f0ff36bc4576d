"""Which RPC provider to use (pure): the active one while it is healthy and keeps up,
otherwise the first healthy one (in configured order) that is within `max_lag` blocks of
the best head seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class ProviderState:
    url: str
    label: str
    head: int | None = None  # last head block number it reported
    healthy: bool = True
    lagging: bool = False
    last_error: str = ""
    # After a failed read the provider is skipped until then, even if its head answers.
    cooldown_until: float = 0.0

    def failed(self, reason: str, now: float, cooldown_s: float) -> None:
        self.healthy = False
        self.last_error = reason
        self.cooldown_until = now + cooldown_s


def provider_label(url: str) -> str:
    """A metric/log label for a provider URL: host and port only, since paths and query
    strings of hosted providers often carry the API key."""
    parts = urlsplit(url)
    host = parts.hostname or "unknown"
    return f"{host}:{parts.port}" if parts.port else host


def best_head(states: Sequence[ProviderState]) -> int | None:
    heads = [s.head for s in states if s.healthy and s.head is not None]
    return max(heads) if heads else None


def is_lagging(state: ProviderState, best: int | None, max_lag: int) -> bool:
    return best is not None and state.head is not None and best - state.head > max_lag


def choose(
    states: Sequence[ProviderState], active: int | None, max_lag: int, now: float
) -> int | None:
    """Index of the provider to use, or None when none is usable."""
    best = best_head(states)

    def usable(state: ProviderState) -> bool:
        return (
            state.healthy
            and state.head is not None
            and now >= state.cooldown_until
            and not is_lagging(state, best, max_lag)
        )

    if active is not None and usable(states[active]):
        return active
    for index, state in enumerate(states):
        if usable(state):
            return index
    return None

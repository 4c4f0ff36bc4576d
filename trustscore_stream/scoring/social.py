"""social_sentiment: mention-weighted EMA of sentiment (docs/scoring.md §5.7)."""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from trustscore_stream.scoring.common import DAY, clamp, decay, sat
from trustscore_stream.scoring.model import FactorValue, no_data

# Social attention is short-lived: a week-old buzz says little about today.
SOCIAL_HALF_LIFE = 7 * DAY
# Mentions that give 63 % confidence: fewer is a handful of posts, easy to fake.
MENTIONS_SCALE = 50.0
# Talk about the collection is partly talk about each of its tokens.
COLLECTION_SOCIAL_SHARE = 0.5


class SocialState(Struct, frozen=True, array_like=True, gc=False):
    mentions: float = 0.0  # decayed Σ m_i
    weighted: float = 0.0  # decayed Σ m_i · s_i
    t: int = 0  # reference time of both sums
    signals: int = 0


def update(state: SocialState, sentiment: float, mentions: int, t: int) -> SocialState:
    """Add one signal; a signal with 0 mentions carries no weight but is counted."""
    m = float(mentions)
    s = max(-1.0, min(1.0, float(sentiment)))
    if t >= state.t:
        d = decay(t - state.t, SOCIAL_HALF_LIFE)
        return SocialState(state.mentions * d + m, state.weighted * d + m * s, t, state.signals + 1)
    d = decay(state.t - t, SOCIAL_HALF_LIFE)
    return SocialState(
        state.mentions + m * d, state.weighted + m * s * d, state.t, state.signals + 1
    )


def is_empty(state: SocialState) -> bool:
    """No signal and no mass: a part that adds exactly nothing to `value`."""
    return not state.signals and not state.mentions and not state.weighted


def value(parts: Sequence[tuple[SocialState, float]], now: int) -> FactorValue:
    """Pool (state, share) parts: e.g. the NFT at 1.0 and its collection at 0.5."""
    mentions = 0.0
    weighted = 0.0
    signals = 0
    for state, share in parts:
        if is_empty(state):
            continue  # adds exactly nothing (the sums start at +0.0)
        d = decay(now - state.t, SOCIAL_HALF_LIFE) * share
        mentions += state.mentions * d
        weighted += state.weighted * d
        signals += state.signals
    if mentions <= 1e-9:
        return no_data()
    s = max(-1.0, min(1.0, weighted / mentions))
    return FactorValue(
        clamp(50.0 + 50.0 * s),
        sat(mentions, MENTIONS_SCALE),
        (f"sentiment {s:+.2f} over ≈{mentions:.0f} recent mentions ({signals} signals)",),
    )

"""Shared primitives of the scoring model: event time, decayed sums, saturation, money.

Everything here is pure and deterministic (docs/scoring.md §4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import compress, repeat
from operator import eq
from typing import TypeVar

from msgspec import Struct

MINUTE = 60
HOUR = 3600
DAY = 86400
LN2 = math.log(2.0)

# WETH is redeemable 1:1 for ETH, so prices in either are comparable.
CURRENCY_ALIASES: dict[str, str] = {"WETH": "ETH"}


def ts(moment: datetime) -> int:
    """Event time as whole epoch seconds (sub-second order carries no trust signal)."""
    return math.floor(moment.timestamp())


K = TypeVar("K", bound=str)


def lowest_key_with(keys: Iterable[K], values: Iterable[object], wanted: object) -> K:
    """The lowest of `keys` whose paired value equals `wanted` (an eviction tie-break).
    C-level iterators: a key function over a few hundred entries costs several times more."""
    return min(compress(keys, map(eq, values, repeat(wanted))))


def decay(dt: float, half_life: float) -> float:
    """Weight left after `dt` seconds; a negative `dt` (reading before an event) decays nothing."""
    if dt <= 0:
        return 1.0
    return math.exp(-LN2 * dt / half_life)


def sat(x: float, scale: float) -> float:
    """1 − e^(−x/scale): how much `x` observations back a conclusion (0–1)."""
    if x <= 0:
        return 0.0
    return 1.0 - math.exp(-x / scale)


def clamp(x: float, lo: float = 0.0, hi: float = 100.0) -> float:
    if x != x:  # NaN never reaches a score: treat it as the low end
        return lo
    return lo if x < lo else hi if x > hi else x


class Decayed(Struct, frozen=True, array_like=True, gc=False):
    """Σ a_i · 2^(−(t − t_i)/h) held at reference time `t` (seconds)."""

    v: float = 0.0
    t: int = 0


ZERO = Decayed()


def add(d: Decayed, amount: float, t: int, half_life: float) -> Decayed:
    """Add `amount` at time `t`; order-independent because decayed sums are linear.

    The reference time becomes the latest time ever added, also for an amount of 0: so it is
    the same for any order of the same additions (a re-check may turn an amount into 0 after
    the fact), and so is a read at a `now` before it, which decays nothing."""
    if amount == 0:
        if t <= d.t:
            return d
        return Decayed(d.v * decay(t - d.t, half_life), t)
    if t >= d.t:
        return Decayed(d.v * decay(t - d.t, half_life) + amount, t)
    return Decayed(d.v + amount * decay(d.t - t, half_life), d.t)


def at(d: Decayed, now: int, half_life: float) -> float:
    """The sum at `now`; never below 0 (the model adds non-negative amounts, and a re-check
    that takes one back may leave a float residue of −1e-17, which would print as -0.0)."""
    v = d.v * decay(now - d.t, half_life)
    return v if v > 0.0 else 0.0


def money(value: str | None) -> float:
    """A CONTRACT decimal string as float, parsed exactly first (docs/scoring.md §1)."""
    if value is None:
        return 0.0
    try:
        return float(Decimal(value))
    except (InvalidOperation, ValueError):  # pragma: no cover - the envelope validates the pattern
        return 0.0


def currency(code: str | None) -> str:
    if not code:
        return ""
    upper = code.strip().upper()
    return CURRENCY_ALIASES.get(upper, upper)


def duration(seconds: float) -> str:
    """Compact human duration, rounded up: 'within 2h' must not understate the span."""
    s = max(0.0, seconds)
    if s < MINUTE:
        return f"{math.ceil(s)}s"
    if s < HOUR:
        return f"{math.ceil(s / MINUTE)}m"
    if s < 2 * DAY:
        return f"{math.ceil(s / HOUR)}h"
    return f"{math.ceil(s / DAY)}d"


def tx_tag(tx_hash: str | None) -> str:
    """A short, comparable tag of a transaction hash: its last 64 bits (hashes are uniform)."""
    if not tx_hash:
        return ""
    return tx_hash.lower()[-16:]

"""collection_health: holder concentration, floor stability and trend, audit (§5.5).

Holders are counted exactly up to `HOLDER_CAP`; beyond it the smallest holders are folded
into an `other` count (docs/scoring.md §5.5 "Approximation beyond the cap").
"""

from __future__ import annotations

import math

from msgspec import Struct
from msgspec.structs import replace

from trustscore_stream.scoring.common import DAY, HOUR, clamp, decay, lowest_key_with, sat
from trustscore_stream.scoring.model import FactorValue, no_data

# Exact holders kept: top-10 share needs only the largest; 256 × ~50 B ≈ 13 KB of state.
HOLDER_CAP = 256
# What 10 holders hold when ownership is spread out; below ~67 tokens 10/tokens is higher.
CONC_BASE = 0.15
# Observed tokens that give 63 % confidence in the concentration figure.
CONC_CONFIDENCE_SCALE = 25.0
# Minute-level floor quotes are microstructure noise: sample returns at most hourly.
FLOOR_SAMPLE_SECONDS = HOUR
# Volatility a month ago matters half as much as today's.
FLOOR_HALF_LIFE = 30 * DAY
# 20 %/day log volatility → 37.
VOL_SCALE = 0.2
# −5 %/day drift → 37; rises are not rewarded (pumps rise too).
TREND_SCALE = 0.05
# Effective samples for 63 % confidence in floor statistics.
FLOOR_CONFIDENCE_SCALE = 5.0
# Component weights: who holds the supply matters most, then how the price behaves.
W_CONCENTRATION = 0.4
W_STABILITY = 0.3
W_TREND = 0.2
W_AUDIT = 0.1
TOP_N = 10


class HolderBook(Struct, frozen=True, array_like=True, gc=False):
    counts: dict[str, int] = {}
    other: int = 0  # tokens held by holders evicted from `counts`

    @property
    def tokens(self) -> int:
        return sum(self.counts.values()) + self.other

    @property
    def holders(self) -> int:
        # Each untracked token ≈ one holder: evicted holders are the smallest ones.
        return len(self.counts) + self.other


def move(book: HolderBook, old_owner: str | None, new_owner: str | None) -> HolderBook:
    """A token leaves `old_owner` (if it was counted there) and reaches `new_owner`."""
    counts = dict(book.counts)
    other = book.other
    if old_owner:
        held = counts.get(old_owner)
        if held is not None:
            if held <= 1:
                del counts[old_owner]
            else:
                counts[old_owner] = held - 1
        elif other > 0:
            other -= 1
    if new_owner:
        counts[new_owner] = counts.get(new_owner, 0) + 1
        if len(counts) > HOLDER_CAP:
            # The smallest holder goes; among equals, the lowest address.
            held = min(counts.values())
            victim = lowest_key_with(counts, counts.values(), held)
            del counts[victim]
            other += held
    return HolderBook(counts, other)


class FloorStats(Struct, frozen=True, array_like=True, gc=False):
    floor: float = 0.0  # last floor seen (by event time)
    currency: str = ""
    t: int = 0
    sample_t: int = 0  # last sampled point
    sample_log: float = 0.0
    sample_currency: str = ""
    weight: float = 0.0  # forgotten weight W
    mean: float = 0.0  # weighted mean of daily-normalised log returns
    m2: float = 0.0  # weighted Σ squared deviations
    drift: float = 0.0  # weighted mean of daily log drift
    returns: int = 0
    observations: int = 0


def record_floor(fs: FloorStats, floor: float, cur: str, t: int) -> FloorStats:
    """Fold one market_data floor (weighted Welford, West 1979)."""
    fs = replace(fs, observations=fs.observations + 1)
    if fs.observations == 1 or t >= fs.t:
        fs = replace(fs, floor=floor, currency=cur, t=t)
    if floor <= 0:
        return fs  # no listings: nothing to take a log of
    log_floor = math.log(floor)
    if not fs.sample_currency or cur != fs.sample_currency:
        # First point, or a new quote currency: restart sampling, keep the moments.
        return replace(fs, sample_t=t, sample_log=log_floor, sample_currency=cur)
    dt = t - fs.sample_t
    if dt < FLOOR_SAMPLE_SECONDS:
        return fs  # too close to the last sample, or late
    days = dt / DAY
    dlog = log_floor - fs.sample_log
    r = dlog / math.sqrt(days)  # √t scaling makes irregular intervals comparable
    d = dlog / days
    forget = decay(dt, FLOOR_HALF_LIFE)
    weight = fs.weight * forget + 1.0
    delta = r - fs.mean
    mean = fs.mean + delta / weight
    m2 = fs.m2 * forget + delta * (r - mean)
    drift = fs.drift + (d - fs.drift) / weight
    return replace(
        fs,
        sample_t=t,
        sample_log=log_floor,
        weight=weight,
        mean=mean,
        m2=m2,
        drift=drift,
        returns=fs.returns + 1,
    )


# Floor observations kept in event-time order (the ordering horizon, docs/scoring.md §7): a
# late one is put in its place and the statistics recomputed; older ones are settled.
FLOOR_POINTS = 8


class FloorPoint(Struct, frozen=True, array_like=True, gc=False):
    t: int
    floor: float
    currency: str


def _point_key(p: FloorPoint) -> tuple[int, float, str]:
    return p.t, p.floor, p.currency


def record_floor_point(
    fs: FloorStats, settled: FloorStats | None, points: tuple[FloorPoint, ...], point: FloorPoint
) -> tuple[FloorStats, FloorStats, tuple[FloorPoint, ...]]:
    """Put a floor observation in its event-time place. Returns (statistics over every
    observation, the settled part, the kept points); the statistics are the settled part
    with the kept points folded in order, so they do not depend on the arrival order."""
    if settled is None:
        settled = fs if not points else FloorStats()
    key = _point_key(point)
    if not points or key >= _point_key(points[-1]):
        points = (*points, point)
        fs = record_floor(fs if len(points) > 1 else settled, point.floor, point.currency, point.t)
    else:
        i = len(points)
        while i > 0 and key < _point_key(points[i - 1]):
            i -= 1
        points = (*points[:i], point, *points[i:])
        fs = settled
        for x in points:
            fs = record_floor(fs, x.floor, x.currency, x.t)
    if len(points) > FLOOR_POINTS:
        first = points[0]
        settled = record_floor(settled, first.floor, first.currency, first.t)
        points = points[1:]
    return fs, settled, points


def volatility(fs: FloorStats) -> float:
    if fs.weight <= 0:
        return 0.0
    return math.sqrt(max(0.0, fs.m2 / fs.weight))


class HealthState(
    Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    rename={
        "book": "h",
        "floor": "f",
        "audit": "a",
        "reported_holders": "rh",
        "holders_at": "ht",
        "floor_points": "fp",
        "floor_settled": "fz",
    },
):
    book: HolderBook = HolderBook()
    floor: FloorStats = FloorStats()
    audit: float | None = None
    reported_holders: int | None = None  # the latest market_data `holders` (by event time)
    holders_at: int | None = None
    floor_points: tuple[FloorPoint, ...] = ()  # the last FLOOR_POINTS floors, by event time
    floor_settled: FloorStats | None = None  # `floor` before them


def floor_at(state: HealthState, t: int) -> tuple[float, str, int] | None:
    """The latest floor observation before the second `t`, as (floor, currency, time): a quote
    in the same second as a sale is not known to precede it."""
    for p in reversed(state.floor_points):
        if p.t < t:
            return p.floor, p.currency, p.t
    known = state.floor_settled if state.floor_points else state.floor
    if known is not None and known.observations and known.t < t:
        return known.floor, known.currency, known.t
    return None


def value(state: HealthState, now: int) -> FactorValue:
    parts: list[tuple[float, float, float]] = []  # (weight, value, confidence)
    evidence: list[str] = []
    book = state.book
    tokens = book.tokens
    if tokens > 0:
        holders = state.reported_holders or book.holders
        top = sum(sorted(book.counts.values(), reverse=True)[:TOP_N])
        share = min(1.0, top / tokens)
        # The lowest top-10 share possible is 10/tokens (one token each): judge the excess.
        base = max(CONC_BASE, min(1.0, TOP_N / tokens))
        excess = 0.0 if base >= 1.0 else clamp((share - base) / (1.0 - base), 0.0, 1.0)
        parts.append((W_CONCENTRATION, 100.0 * (1.0 - excess), sat(tokens, CONC_CONFIDENCE_SCALE)))
        evidence.append(
            f"top {TOP_N} holders own {share:.0%} of {tokens} observed tokens (≈{holders} holders)"
        )
    fs = state.floor
    if fs.returns > 0:
        conf = sat(fs.weight * decay(now - fs.sample_t, FLOOR_HALF_LIFE), FLOOR_CONFIDENCE_SCALE)
        sigma = volatility(fs)
        parts.append((W_STABILITY, 100.0 * math.exp(-sigma / VOL_SCALE), conf))
        parts.append((W_TREND, 100.0 * math.exp(min(0.0, fs.drift) / TREND_SCALE), conf))
        evidence.append(f"floor volatility {sigma:.0%}/day over {fs.returns} samples")
        direction = "falling" if fs.drift < 0 else "rising"
        evidence.append(f"floor {direction} {abs(fs.drift):.1%}/day")
    if state.audit is not None:
        parts.append((W_AUDIT, clamp(state.audit), 1.0))
        evidence.append(f"audit score {state.audit:.0f}")
    total = sum(w * c for w, _, c in parts)
    if total <= 0:
        return no_data()
    v = sum(w * c * x for w, x, c in parts) / total
    return FactorValue(clamp(v), clamp(total, 0.0, 1.0), tuple(evidence))

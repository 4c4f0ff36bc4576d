"""liquidity: sales rate, listing-to-sale, market aggregates (docs/scoring.md §5.6)."""

from __future__ import annotations

from msgspec import Struct
from msgspec.structs import replace

from trustscore_stream.scoring.common import DAY, LN2, ZERO, Decayed, add, at, clamp, decay, sat
from trustscore_stream.scoring.model import FactorValue, no_data

# A week of trading describes today's exit; older volume may be gone.
LIQ_HALF_LIFE = 7 * DAY
# Periodic market aggregates are smoothed over the same horizon.
MD_HALF_LIFE = 7 * DAY
# Single tokens trade rarely: a sale within a quarter still says the token can be sold.
NFT_SALES_HALF_LIFE = 90 * DAY
NFT_LISTINGS_HALF_LIFE = 30 * DAY
# 5 sales a day → 63: a buyer can usually exit within hours.
LIQ_SCALE = 5.0
# Listing pile-up: with ≥ 3 recent listings and < 0.2 sales per listing, exits are weak.
LISTINGS_MIN = 3.0
LISTING_RATIO = 0.2
LISTING_FLOOR_FACTOR = 0.6
# An NFT's exit is mostly its collection's market.
COLLECTION_SHARE = 0.7
NFT_SHARE = 0.3
# Observations for 63 % confidence.
COLLECTION_CONFIDENCE_SCALE = 5.0
NFT_CONFIDENCE_SCALE = 2.0
# One own sale in the last quarter → 63.
NFT_SALES_SCALE = 1.0


# Market aggregates kept in event-time order (the ordering horizon, docs/scoring.md §7): a late
# one is put in its place and the EMAs recomputed; older ones are settled.
MD_POINTS = 8


class MarketPoint(Struct, frozen=True, array_like=True, gc=False):
    t: int
    sales: float | None
    volume: float | None


def _point_key(p: MarketPoint) -> tuple[int, float, float]:
    return (
        p.t,
        -1.0 if p.sales is None else p.sales,
        -1.0 if p.volume is None else p.volume,
    )


class MarketEma(Struct, frozen=True, array_like=True, gc=False):
    """The aggregates' EMAs after a prefix of them, folded in event-time order."""

    sales: float | None = None
    volume: float | None = None
    t: int = 0


class CollectionLiquidity(Struct, frozen=True, array_like=True, gc=False):
    sales: Decayed = ZERO  # wash-discounted
    listings: Decayed = ZERO
    md_sales: float | None = None  # EMA of market_data.sales_24h
    md_volume: float | None = None  # EMA of market_data.volume_24h (floor currency)
    md_t: int = 0
    n_sales: int = 0
    n_listings: int = 0
    n_md: int = 0
    md_points: tuple[MarketPoint, ...] = ()  # the last MD_POINTS aggregates, by event time
    md_settled: MarketEma | None = None  # the EMAs before them


class NftLiquidity(Struct, frozen=True, array_like=True, gc=False):
    sales: Decayed = ZERO  # wash-discounted
    listings: Decayed = ZERO
    n_sales: int = 0
    n_listings: int = 0


def _ema(old: float | None, x: float | None, dt: int) -> float | None:
    if x is None:
        return old
    if old is None:
        return x
    return old + (x - old) * (1.0 - decay(dt, MD_HALF_LIFE))


def record_sale(state: CollectionLiquidity, weight: float, t: int) -> CollectionLiquidity:
    """`weight` = 1 − flagged mass of the sale: wash trades do not make a market liquid."""
    return replace(
        state, sales=add(state.sales, weight, t, LIQ_HALF_LIFE), n_sales=state.n_sales + 1
    )


def reweigh_sale(state: CollectionLiquidity, delta: float, t: int) -> CollectionLiquidity:
    """A re-check changed a sale's clean weight by `delta` (decayed sums are linear)."""
    if not delta:
        return state
    return replace(state, sales=add(state.sales, delta, t, LIQ_HALF_LIFE))


def record_listing(state: CollectionLiquidity, t: int) -> CollectionLiquidity:
    return replace(
        state,
        listings=add(state.listings, 1.0, t, LIQ_HALF_LIFE),
        n_listings=state.n_listings + 1,
    )


def _ema_step(m: MarketEma, p: MarketPoint) -> MarketEma:
    dt = p.t - m.t  # < 0 only for a point older than the settled part: it weighs nothing
    return MarketEma(_ema(m.sales, p.sales, dt), _ema(m.volume, p.volume, dt), max(p.t, m.t))


def record_market_data(
    state: CollectionLiquidity, sales_24h: int | None, volume_24h: float | None, t: int
) -> CollectionLiquidity:
    """Put an aggregate in its event-time place; the EMAs are the settled part with the kept
    aggregates folded in order, so they do not depend on the arrival order."""
    point = MarketPoint(t, None if sales_24h is None else float(sales_24h), volume_24h)
    points = state.md_points
    current = MarketEma(state.md_sales, state.md_volume, state.md_t)
    if state.md_settled is not None or points:
        settled = state.md_settled if state.md_settled is not None else MarketEma()
    else:
        settled = current  # nothing kept yet: what is known so far is settled
    key = _point_key(point)
    if not points or key >= _point_key(points[-1]):
        points = (*points, point)
        ema = _ema_step(current if len(points) > 1 else settled, point)
    else:
        i = len(points)
        while i > 0 and key < _point_key(points[i - 1]):
            i -= 1
        points = (*points[:i], point, *points[i:])
        ema = settled
        for x in points:
            ema = _ema_step(ema, x)
    if len(points) > MD_POINTS:
        settled = _ema_step(settled, points[0])
        points = points[1:]
    return replace(
        state,
        md_sales=ema.sales,
        md_volume=ema.volume,
        md_t=ema.t,
        n_md=state.n_md + 1,
        md_points=points,
        md_settled=settled,
    )


def nft_record_sale(state: NftLiquidity, weight: float, t: int) -> NftLiquidity:
    return replace(
        state, sales=add(state.sales, weight, t, NFT_SALES_HALF_LIFE), n_sales=state.n_sales + 1
    )


def nft_reweigh_sale(state: NftLiquidity, delta: float, t: int) -> NftLiquidity:
    if not delta:
        return state
    return replace(state, sales=add(state.sales, delta, t, NFT_SALES_HALF_LIFE))


def nft_record_listing(state: NftLiquidity, t: int) -> NftLiquidity:
    return replace(
        state,
        listings=add(state.listings, 1.0, t, NFT_LISTINGS_HALF_LIFE),
        n_listings=state.n_listings + 1,
    )


def collection_value(state: CollectionLiquidity, now: int) -> FactorValue:
    observations = state.n_sales + state.n_md + 0.5 * state.n_listings
    if observations <= 0:
        return no_data()
    sales = at(state.sales, now, LIQ_HALF_LIFE)
    # A decayed sum with half-life h settles at rate·h/ln2.
    rate_events = sales * LN2 / (LIQ_HALF_LIFE / DAY)
    md = 0.0
    evidence: list[str] = []
    if state.md_sales is not None:
        md = state.md_sales * decay(now - state.md_t, MD_HALF_LIFE)  # stale aggregates fade
    rate = max(rate_events, md)
    v = 100.0 * sat(rate, LIQ_SCALE)
    evidence.append(f"≈{rate:.1f} sales/day in the collection (wash trades excluded)")
    listings = at(state.listings, now, LIQ_HALF_LIFE)
    if listings >= LISTINGS_MIN:
        ratio = min(1.0, sales / listings)
        if ratio < LISTING_RATIO:
            v *= LISTING_FLOOR_FACTOR + (1.0 - LISTING_FLOOR_FACTOR) * ratio / LISTING_RATIO
            evidence.append(f"{listings:.0f} listings vs {sales:.0f} sales recently")
    return FactorValue(clamp(v), sat(observations, COLLECTION_CONFIDENCE_SCALE), tuple(evidence))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def nft_value(state: NftLiquidity, collection: FactorValue | None, now: int) -> FactorValue:
    own_conf = sat(state.n_sales + state.n_listings, NFT_CONFIDENCE_SCALE)
    own_sales = at(state.sales, now, NFT_SALES_HALF_LIFE)
    own_v = 100.0 * sat(own_sales, NFT_SALES_SCALE)
    coll_conf = collection.confidence if collection is not None else 0.0
    e_coll = COLLECTION_SHARE * coll_conf
    e_own = NFT_SHARE * own_conf
    if e_coll + e_own <= 0:
        return no_data()
    coll_v = collection.value if collection is not None else 0.0
    v = (e_coll * coll_v + e_own * own_v) / (e_coll + e_own)
    evidence: list[str] = []
    if own_conf > 0:
        evidence.append(
            f"token sold {_times(state.n_sales)}, listed {_times(state.n_listings)} "
            f"(≈{own_sales:.1f} recent sales)"
        )
    if collection is not None and coll_conf > 0:
        evidence.extend(collection.evidence)
    return FactorValue(clamp(v), max(coll_conf, own_conf), tuple(evidence))

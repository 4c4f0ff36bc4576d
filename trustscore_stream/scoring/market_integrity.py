"""market_integrity: wash-trading detectors over bounded trade memories (§5.1).

Per NFT: a window of its last trades (≤ 32, ≤ 7 days). Per collection: a graph of its last
sales (≤ 64, ≤ 7 days) for rings spread over tokens, and a memory of wallet pairs that moved
NFTs to each other for free. Each sale is checked against the state *before* it; what a check
finds becomes an `Incident` (weight + evidence naming the wallets and the event).
"""

from __future__ import annotations

import hashlib
import math
from operator import attrgetter
from typing import NamedTuple, Protocol, TypeVar

from msgspec import Struct

from trustscore_stream.scoring.collection_health import FloorStats
from trustscore_stream.scoring.common import (
    DAY,
    ZERO,
    Decayed,
    add,
    at,
    clamp,
    decay,
    duration,
    lowest_key_with,
    sat,
)
from trustscore_stream.scoring.model import FactorValue, no_data

# Trade memory: a week holds most wash loops (they close within hours to days) and 32 trades
# bound an NFT's state to a few KB.
WINDOW_TRADES = 32
WINDOW_SECONDS = 7 * DAY
# Collection sale graph for cross-token rings: last 64 sales (≈ 6.5 KB).
GRAPH_SALES = 64
# Wallet pairs remembered per collection (≈ 16 KB); oldest forgotten first.
PAIR_CAP = 256
# "A small wallet set": flagged loops alternate between a few addresses (von Wachter 2022).
MAX_RING = 5
# Resale within a day of acquiring.
FLIP_SECONDS = DAY
# 5× the floor: far beyond the spread of ordinary rarity premiums for most tokens.
FAR_ABOVE_FLOOR = 5.0
# A floor older than this no longer describes the market at the sale.
FLOOR_MAX_AGE = 3 * DAY
# A transfer this close to a sale between the same wallets is that sale's on-chain leg.
LEG_SECONDS = 600

# Incident weights (docs/scoring.md §5.1): how strongly each pattern indicates a wash trade.
W_SELF = 1.0
W_ROUND_TRIP = 0.8
W_RING = 0.7
W_FUNDED = 0.5
W_ABOVE_FLOOR = 0.4
W_FLIP = 0.2

# An NFT's wash record fades over a quarter: long enough to outlast a pump-and-dump.
SUSPICION_HALF_LIFE = 90 * DAY
# One self-trade → 37, one round trip → 45.
SUSPICION_SCALE = 1.0
# Collection flagged-sale ratio over about a month.
RATIO_HALF_LIFE = 30 * DAY
# 10 % of sales flagged → 67, 25 % → 37 (≈2 % is typical of large collections).
RATIO_SCALE = 0.25
# A wash-traded collection taints each token's prices, half as much as its own record would.
SPILLOVER = 0.5
NFT_CONFIDENCE_SCALE = 3.0
COLLECTION_CONFIDENCE_SCALE = 10.0
MAX_INCIDENTS = 5
# Incidents whose decayed weight falls below this are no longer shown as evidence.
EVIDENCE_MIN = 0.05
# A collection ratio worth mentioning, and the collection value it corresponds to.
RATIO_EVIDENCE_MIN = 0.05
RATIO_EVIDENCE_VALUE = 100.0 * math.exp(-RATIO_EVIDENCE_MIN / RATIO_SCALE)


class Trade(Struct, frozen=True, array_like=True, gc=False):
    t: int
    sale: bool
    frm: str
    to: str
    price: float = 0.0
    tag: str = ""  # short tx tag, to recognise a sale's transfer leg


class Incident(Struct, frozen=True, array_like=True, gc=False):
    t: int
    weight: float
    text: str


class Edge(Struct, frozen=True, array_like=True, gc=False):
    t: int
    seller: str
    buyer: str


class PairMark(Struct, frozen=True, array_like=True, gc=False):
    t: int
    tag: str


class _Timed(Protocol):
    @property
    def t(self) -> int: ...


T = TypeVar("T", bound=_Timed)  # Trade or Edge


class NftMarket(
    Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    rename={
        "window": "w",
        "sales": "s",
        "transfers": "x",
        "suspicion": "z",
        "incidents": "i",
    },
):
    window: tuple[Trade, ...] = ()
    sales: int = 0
    transfers: int = 0
    suspicion: Decayed = ZERO
    incidents: tuple[Incident, ...] = ()


class CollectionMarket(
    Struct,
    frozen=True,
    gc=False,
    omit_defaults=True,
    rename={
        "graph": "g",
        "pairs": "p",
        "sales": "s",
        "flagged": "f",
        "n_sales": "n",
        "incidents": "i",
    },
):
    graph: tuple[Edge, ...] = ()
    pairs: dict[str, PairMark] = {}
    sales: Decayed = ZERO
    flagged: Decayed = ZERO
    n_sales: int = 0
    incidents: tuple[Incident, ...] = ()


def pair_key(a: str, b: str) -> str:
    """Order-free key of a wallet pair: a 96-bit hash (prefixes collide on vanity addresses)."""
    x, y = (a, b) if a <= b else (b, a)
    return hashlib.blake2b(f"{x}|{y}".encode(), digest_size=12).hexdigest()


class SaleCheck(NamedTuple):
    incidents: tuple[Incident, ...]
    leg_index: int | None  # window index of this sale's transfer leg, if it came first
    pair_was_leg: bool  # the pair memory entry was this sale's own leg
    pair: str = ""  # pair_key(seller, buyer), when the pair memory was consulted


def _leg_index(window: tuple[Trade, ...], seller: str, buyer: str, tag: str, t: int) -> int | None:
    if seller not in [e.frm for e in window]:  # cheap pre-check: mostly nothing to find
        return None
    for i in range(len(window) - 1, -1, -1):
        e = window[i]
        if e.sale or e.frm != seller or e.to != buyer:
            continue
        if (tag and e.tag == tag) or abs(e.t - t) <= LEG_SECONDS:
            return i
    return None


def _dedupe(wallets: list[str]) -> list[str]:
    seen: list[str] = []
    for w in wallets:
        if w not in seen:
            seen.append(w)
    return seen


def token_cycle(
    window: tuple[Trade, ...], skip: int | None, seller: str, buyer: str, t: int
) -> tuple[list[str], int] | None:
    """The loop this sale closes on the same token: the buyer gave it away earlier."""
    if buyer not in [e.frm for e in window]:
        return None
    for i in range(len(window) - 1, -1, -1):
        e = window[i]
        if i == skip or e.t > t or t - e.t > WINDOW_SECONDS:
            continue
        if e.frm != buyer:
            continue
        segment = [window[j] for j in range(i, len(window)) if j != skip and window[j].t <= t]
        wallets = _dedupe([x.frm for x in segment] + [seller])
        if 2 <= len(wallets) <= MAX_RING:
            return wallets, t - e.t
        return None  # the latest return gives the shortest loop; earlier ones are longer
    return None


def graph_cycle(
    graph: tuple[Edge, ...], seller: str, buyer: str, t: int
) -> tuple[list[str], int] | None:
    """A time-ordered path of ≤ MAX_RING − 1 sales buyer → … → seller (any tokens)."""
    # A path leaves the buyer on some sale and reaches the seller on some sale.
    if buyer not in [e.seller for e in graph] or seller not in [e.buyer for e in graph]:
        return None
    # wallet → (arrival time, path, time of the path's first sale); earliest arrival dominates.
    frontier: dict[str, tuple[int, list[str], int]] = {buyer: (-(2**62), [buyer], -1)}
    edges = [e for e in graph if e.t <= t and t - e.t <= WINDOW_SECONDS]
    for _ in range(MAX_RING - 1):
        nxt: dict[str, tuple[int, list[str], int]] = {}
        for e in edges:
            node = frontier.get(e.seller)
            if node is None or e.t < node[0]:
                continue
            _, path, first = node
            start = e.t if first < 0 else first
            if e.buyer == seller:
                return [*path, seller], t - start
            if e.buyer in path:
                continue
            old = nxt.get(e.buyer)
            if old is None or e.t < old[0]:
                nxt[e.buyer] = (e.t, [*path, e.buyer], start)
        if not nxt:
            return None
        frontier = nxt
    return None


def _ring_text(wallets: list[str], span: int, event_id: str, across: bool) -> str:
    where = " across tokens" if across else ""
    if len(wallets) == 2:
        kind = "reciprocal trades" if across else "round trip"
        return (
            f"{kind}{where} between {wallets[0]} and {wallets[1]} within {duration(span)} "
            f"(event {event_id})"
        )
    return (
        f"circular trade{where} among {len(wallets)} wallets ({', '.join(wallets)}) "
        f"within {duration(span)} (event {event_id})"
    )


def check_sale(
    nft: NftMarket,
    coll: CollectionMarket,
    floor: FloorStats,
    *,
    seller: str,
    buyer: str,
    price: float,
    currency: str,
    tag: str,
    t: int,
    event_id: str,
) -> SaleCheck:
    """Run every detector on one sale against the state before it."""
    found: list[Incident] = []
    senders = [e.frm for e in nft.window]  # the scans below need one of these to match
    leg = _leg_index(nft.window, seller, buyer, tag, t) if seller in senders else None
    looped = False
    if seller == buyer:
        found.append(Incident(t, W_SELF, f"self-trade by {seller} (event {event_id})"))
        looped = True
    else:
        cycle = token_cycle(nft.window, leg, seller, buyer, t) if buyer in senders else None
        if cycle is not None:
            wallets, span = cycle
            weight = W_ROUND_TRIP if len(wallets) == 2 else W_RING
            found.append(Incident(t, weight, _ring_text(wallets, span, event_id, across=False)))
            looped = True
        else:
            cycle = graph_cycle(coll.graph, seller, buyer, t)
            if cycle is not None:
                wallets, span = cycle
                found.append(Incident(t, W_RING, _ring_text(wallets, span, event_id, across=True)))
                looped = True
    pair_was_leg = False
    pair = ""
    if seller != buyer:
        pair = pair_key(seller, buyer)
        mark = coll.pairs.get(pair)
        if mark is not None:
            if (tag and mark.tag == tag) or abs(mark.t - t) <= LEG_SECONDS:
                pair_was_leg = True
            elif mark.t <= t:
                found.append(
                    Incident(
                        t,
                        W_FUNDED,
                        "sale between wallets that transferred NFTs to each other without a "
                        f"sale: {seller}, {buyer} (event {event_id})",
                    )
                )
    if (
        price > 0
        and floor.floor > 0
        and currency
        and currency == floor.currency
        and abs(t - floor.t) <= FLOOR_MAX_AGE
        and price >= FAR_ABOVE_FLOOR * floor.floor
    ):
        found.append(
            Incident(
                t,
                W_ABOVE_FLOOR,
                f"sale at {price / floor.floor:.1f}x the collection floor "
                f"({price:g} vs {floor.floor:g} {currency}) (event {event_id})",
            )
        )
    if not looped and seller in [e.to for e in nft.window]:
        for i in range(len(nft.window) - 1, -1, -1):
            e = nft.window[i]
            if i == leg or e.to != seller or e.t > t:
                continue
            if t - e.t <= FLIP_SECONDS:
                found.append(
                    Incident(
                        t,
                        W_FLIP,
                        f"rapid flip: resold {duration(t - e.t)} after acquiring "
                        f"(event {event_id})",
                    )
                )
            break
    return SaleCheck(tuple(found), leg, pair_was_leg, pair)


def flagged_mass(incidents: tuple[Incident, ...]) -> float:
    """How much of one sale counts as a wash trade (0–1)."""
    if not incidents:
        return 0  # what min(1.0, sum(())) gives: the int 0
    return min(1.0, sum(i.weight for i in incidents))


_time_of = attrgetter("t")


def _trim(items: list[T], cap: int) -> tuple[T, ...]:
    """Keep items within WINDOW_SECONDS of the newest one, then the last `cap` of them."""
    times = list(map(_time_of, items))
    newest = max(times)
    if newest - min(times) > WINDOW_SECONDS:
        items = [e for e, te in zip(items, times, strict=True) if newest - te <= WINDOW_SECONDS]
    return tuple(items[-cap:])


def _append(items: tuple[T, ...], new: T, cap: int) -> tuple[T, ...]:
    """_trim([*items, new], cap), without building the list when nothing is too old."""
    if not items:
        return (new,)
    times = list(map(_time_of, items))
    newest = max(times)
    oldest = min(times)
    if new.t > newest:
        newest = new.t
    if new.t < oldest:
        oldest = new.t
    if newest - oldest > WINDOW_SECONDS:
        return _trim([*items, new], cap)
    if len(items) >= cap:
        return (*items[len(items) + 1 - cap :], new)
    return (*items, new)


def _last(old: tuple[Incident, ...], new: tuple[Incident, ...]) -> tuple[Incident, ...]:
    if not new and len(old) <= MAX_INCIDENTS:
        return old
    return (*old, *new)[-MAX_INCIDENTS:]


def record_trade(
    state: NftMarket,
    trade: Trade,
    incidents: tuple[Incident, ...] = (),
    replace_index: int | None = None,
) -> NftMarket:
    """Add a trade to the NFT window (or upgrade its transfer leg into the sale)."""
    if replace_index is not None and 0 <= replace_index < len(state.window):
        window = list(state.window)
        window[replace_index] = trade
        trimmed = _trim(window, WINDOW_TRADES)
    else:
        trimmed = _append(state.window, trade, WINDOW_TRADES)
    suspicion = state.suspicion
    if incidents:
        suspicion = add(suspicion, sum(i.weight for i in incidents), trade.t, SUSPICION_HALF_LIFE)
    return NftMarket(
        window=trimmed,
        sales=state.sales + (1 if trade.sale else 0),
        transfers=state.transfers + (0 if trade.sale else 1),
        suspicion=suspicion,
        incidents=_last(state.incidents, incidents),
    )


def record_collection_sale(
    state: CollectionMarket,
    edge: Edge,
    incidents: tuple[Incident, ...],
    forget_pair: bool,
    pair: str = "",
) -> CollectionMarket:
    """`pair`: pair_key(edge.seller, edge.buyer) if the caller has it already."""
    pairs = state.pairs
    if forget_pair:  # the remembered "free" transfer was this sale's own leg
        pairs = dict(pairs)
        pairs.pop(pair or pair_key(edge.seller, edge.buyer), None)
    return CollectionMarket(
        graph=_append(state.graph, edge, GRAPH_SALES),
        pairs=pairs,
        sales=add(state.sales, 1.0, edge.t, RATIO_HALF_LIFE),
        flagged=add(state.flagged, flagged_mass(incidents), edge.t, RATIO_HALF_LIFE),
        n_sales=state.n_sales + 1,
        incidents=_last(state.incidents, incidents),
    )


def record_free_transfer(
    state: CollectionMarket, frm: str, to: str, tag: str, t: int
) -> CollectionMarket:
    """Remember that two wallets moved an NFT between them without (yet) a sale.

    The earliest such transfer is kept: the relationship is what matters, and a later mark
    could be a sale's own leg that the sale then clears.
    """
    if frm == to:
        return state
    key = pair_key(frm, to)
    old = state.pairs.get(key)
    if old is not None and old.t <= t:
        return state
    pairs = dict(state.pairs)
    pairs[key] = PairMark(t, tag)
    if len(pairs) > PAIR_CAP:
        # The oldest mark goes; among equally old ones, the lowest key.
        times = list(map(_time_of, pairs.values()))
        oldest = min(times)
        del pairs[lowest_key_with(pairs, times, oldest)]
    return CollectionMarket(
        graph=state.graph,
        pairs=pairs,
        sales=state.sales,
        flagged=state.flagged,
        n_sales=state.n_sales,
        incidents=state.incidents,
    )


def _live(incidents: tuple[Incident, ...], now: int) -> list[str]:
    return [
        i.text
        for i in reversed(incidents)
        if i.weight * decay(now - i.t, SUSPICION_HALF_LIFE) >= EVIDENCE_MIN
    ]


def collection_value(state: CollectionMarket, now: int) -> FactorValue:
    if state.n_sales == 0:
        return no_data()
    sales = at(state.sales, now, RATIO_HALF_LIFE)
    flagged = at(state.flagged, now, RATIO_HALF_LIFE)
    ratio = min(1.0, flagged / sales) if sales > 1e-9 else 0.0
    evidence: list[str] = []
    if ratio >= RATIO_EVIDENCE_MIN:
        evidence.append(f"{ratio:.0%} of the collection's recent sales flagged as suspicious")
        evidence.extend(_live(state.incidents, now))
    else:
        evidence.append(f"no wash-trading patterns in most of {state.n_sales} collection sales")
    return FactorValue(
        clamp(100.0 * math.exp(-ratio / RATIO_SCALE)),
        sat(sales, COLLECTION_CONFIDENCE_SCALE),
        tuple(evidence),
    )


def nft_value(state: NftMarket, collection: FactorValue | None, now: int) -> FactorValue:
    suspicion = at(state.suspicion, now, SUSPICION_HALF_LIFE)
    value = 100.0 * math.exp(-suspicion / SUSPICION_SCALE)
    confidence = max(
        sat(state.sales + 0.5 * state.transfers, NFT_CONFIDENCE_SCALE), min(1.0, suspicion)
    )
    evidence = _live(state.incidents, now)
    if collection is not None and collection.confidence > 0:
        bound = 100.0 - SPILLOVER * (100.0 - collection.value)
        if bound < value:
            value = bound
            if collection.value <= RATIO_EVIDENCE_VALUE and collection.evidence:
                evidence.append(f"collection: {collection.evidence[0]}")
        confidence = max(confidence, SPILLOVER * collection.confidence)
    if confidence <= 0:
        return no_data()
    if not evidence:
        evidence.append(f"no wash-trading patterns in {state.sales} sales of this token")
    return FactorValue(clamp(value), clamp(confidence, 0.0, 1.0), tuple(evidence))

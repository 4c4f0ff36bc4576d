"""market_integrity: wash-trading detectors over bounded trade memories (§5.1).

Per NFT: a window of its last trades (≤ 32, ≤ 7 days). Per collection: a graph of its last
sales (≤ 64, ≤ 7 days) for rings spread over tokens, and a memory of wallet pairs that moved
NFTs to each other for free. Each sale is checked against the state *before* it; what a check
finds becomes an `Incident` (weight + evidence naming the wallets and the event).
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import NamedTuple, Protocol, TypeVar

from msgspec import Struct
from msgspec.structs import replace

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
# Rapid flips are common among honest traders of a busy token: together they add at most
# this much to a token's suspicion (its value stays >= 100·e^-0.5 ≈ 61 on flips alone).
FLIP_CAP = 0.5

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
    w: float = 0.0  # a sale's incident weight (sum of its detectors), as last checked
    cur: str = ""  # a sale's currency
    eid: str = ""  # a sale's event id: its incidents name it; "" for transfers
    f: float = 0.0  # the part of `w` from the rapid-flip detector (capped per token)


def trade_key(x: Trade) -> tuple[int, bool, str, str, float, str, str]:
    """Event-time order of the window; ties by content, never by arrival."""
    return x.t, x.sale, x.frm, x.to, x.price, x.tag, x.eid


class Incident(Struct, frozen=True, array_like=True, gc=False):
    t: int
    weight: float
    text: str


class Edge(Struct, frozen=True, array_like=True, gc=False):
    t: int
    seller: str
    buyer: str
    token: str = ""  # the token sold (its NFT key is the collection's key + token)
    n: int = 0  # sale_tag(event id): tells apart sales alike in everything else


def edge_key(e: Edge) -> tuple[int, str, str, str, int]:
    return e.t, e.seller, e.buyer, e.token, e.n


def sale_tag(event_id: str) -> int:
    """A 32-bit tag of a sale's event id, linking its graph edge to its window trade."""
    return zlib.crc32(event_id.encode())


class PairMark(Struct, frozen=True, array_like=True, gc=False):
    """The two earliest free transfers between a pair (t2 < 0: only one): if a sale shows
    the earliest to be its own leg, the second still says the pair funded itself."""

    t: int
    tag: str
    t2: int = -1
    tag2: str = ""

    def marks(self) -> tuple[tuple[int, str], ...]:
        if self.t2 < 0:
            return ((self.t, self.tag),)
        return (self.t, self.tag), (self.t2, self.tag2)


def _pair_mark(marks: list[tuple[int, str]]) -> PairMark | None:
    marks = sorted(set(marks))[:2]
    if not marks:
        return None
    if len(marks) == 1:
        return PairMark(marks[0][0], marks[0][1])
    return PairMark(marks[0][0], marks[0][1], marks[1][0], marks[1][1])


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
        "flips": "f",
    },
):
    window: tuple[Trade, ...] = ()
    sales: int = 0
    transfers: int = 0
    suspicion: Decayed = ZERO  # every detector but the rapid flip, uncapped
    incidents: tuple[Incident, ...] = ()
    flips: Decayed = ZERO  # the rapid-flip detector's weights, capped at FLIP_CAP when read


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
    weight: float  # the sum of their weights (uncapped: the NFT's suspicion adds it all)
    flip: float = 0.0  # the rapid-flip detector's part of `weight`


# A floor observation as a sale sees it: (floor, currency, time).
FloorRef = tuple[float, str, int]


def is_leg_of(x: Trade, frm: str, to: str, tag: str, t: int) -> bool:
    """Whether transfer `x` is the on-chain leg of a sale frm → to at t with tx tag `tag`."""
    return (
        not x.sale
        and x.frm == frm
        and x.to == to
        and ((tag != "" and x.tag == tag) or abs(x.t - t) <= LEG_SECONDS)
    )


def is_sale_leg(window: tuple[Trade, ...], frm: str, to: str, tag: str, t: int) -> bool:
    """Whether a transfer is the leg of a sale already in the window (either may come first)."""
    if to not in [x.to for x in window]:  # C-level: mostly nothing to find
        return False
    for x in window:
        if (
            x.sale
            and x.frm == frm
            and x.to == to
            and ((tag != "" and x.tag == tag) or abs(x.t - t) <= LEG_SECONDS)
        ):
            return True
    return False


def _own_leg(mark_t: int, mark_tag: str, tag: str, t: int) -> bool:
    return (tag != "" and mark_tag == tag) or abs(mark_t - t) <= LEG_SECONDS


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
    before: Sequence[Trade],
    graph: Sequence[Edge],
    pairs: dict[str, PairMark],
    floor: FloorRef | None,
    *,
    seller: str,
    buyer: str,
    price: float,
    currency: str,
    tag: str,
    t: int,
    event_id: str,
) -> SaleCheck:
    """Run every detector on one sale against what came before it in event time: `before`,
    the token's trades before it; `graph`, the collection's sales before it; `floor`, the
    latest floor observation at or before it. The same inputs give the same result in
    whatever order the events arrived."""
    found: list[Incident] = []
    window = before if isinstance(before, tuple) else tuple(before)
    looped = False
    flip = 0.0
    if seller == buyer:
        found.append(Incident(t, W_SELF, f"self-trade by {seller} (event {event_id})"))
        looped = True
    else:
        cycle = token_cycle(window, None, seller, buyer, t)
        if cycle is not None:
            wallets, span = cycle
            weight = W_ROUND_TRIP if len(wallets) == 2 else W_RING
            found.append(Incident(t, weight, _ring_text(wallets, span, event_id, across=False)))
            looped = True
        else:
            cycle = graph_cycle(
                graph if isinstance(graph, tuple) else tuple(graph), seller, buyer, t
            )
            if cycle is not None:
                wallets, span = cycle
                found.append(Incident(t, W_RING, _ring_text(wallets, span, event_id, across=True)))
                looped = True
    if seller != buyer:
        mark = pairs.get(pair_key(seller, buyer))
        if mark is not None:
            for mark_t, mark_tag in mark.marks():
                if _own_leg(mark_t, mark_tag, tag, t):
                    continue  # this sale's own leg (of any token): not funding
                if mark_t <= t:
                    found.append(
                        Incident(
                            t,
                            W_FUNDED,
                            "sale between wallets that transferred NFTs to each other without "
                            f"a sale: {seller}, {buyer} (event {event_id})",
                        )
                    )
                break
    if floor is not None:
        floor_price, floor_currency, floor_t = floor
        if (
            price > 0
            and floor_price > 0
            and currency
            and currency == floor_currency
            and t - floor_t <= FLOOR_MAX_AGE
            and price >= FAR_ABOVE_FLOOR * floor_price
        ):
            found.append(
                Incident(
                    t,
                    W_ABOVE_FLOOR,
                    f"sale at {price / floor_price:.1f}x the collection floor "
                    f"({price:g} vs {floor_price:g} {currency}) (event {event_id})",
                )
            )
    if not looped:
        for i in range(len(window) - 1, -1, -1):
            e = window[i]
            if e.to != seller:
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
                flip = W_FLIP
            break
    return SaleCheck(tuple(found), sum((i.weight for i in found), 0.0), flip)


def capped(weight: float) -> float:
    """How much of one sale counts as a wash trade (0–1)."""
    return min(1.0, weight) if weight else 0.0


def flagged_mass(incidents: tuple[Incident, ...]) -> float:
    """How much of one sale counts as a wash trade (0–1)."""
    if not incidents:
        return 0  # what min(1.0, sum(())) gives: the int 0
    return min(1.0, sum(i.weight for i in incidents))


K = TypeVar("K")
_time_of = attrgetter("t")


def insert_sorted(
    items: tuple[T, ...], item: T, key: Callable[[T], K], cap: int
) -> tuple[tuple[T, ...], int]:
    """Put `item` in its event-time place (after equal keys); drop the oldest beyond `cap`.
    Returns the new tuple and the item's index in it (-1: it was the one dropped)."""
    n = len(items)
    if not n or not item.t < items[-1].t:  # at or after the newest second: mostly appended
        k = key(item)
        if not n or not k < key(items[-1]):  # type: ignore[operator]
            if n >= cap:
                return (*items[n + 1 - cap :], item), cap - 1
            return (*items, item), n
    k = key(item)
    i = n
    while i > 0 and k < key(items[i - 1]):  # type: ignore[operator]
        i -= 1
    out = (*items[:i], item, *items[i:])
    if len(out) > cap:
        drop = len(out) - cap
        return out[drop:], i - drop
    return out, i


def prefix_before(items: tuple[T, ...], k: K, key: Callable[[T], K]) -> tuple[T, ...]:
    """The items whose key is below `k` (items sorted by `key`): a scan from the end, so a
    key at or after the last item (the usual case) costs one comparison."""
    i = len(items)
    while i > 0 and not key(items[i - 1]) < k:  # type: ignore[operator]
        i -= 1
    return items if i == len(items) else items[:i]


def _event_of(incident: Incident) -> str:
    return incident.text.rpartition("(event ")[2]


def _incident_key(incident: Incident) -> tuple[int, str]:
    return incident.t, _event_of(incident)


def merge_incidents(
    old: tuple[Incident, ...], new: tuple[Incident, ...], replaces: str = ""
) -> tuple[Incident, ...]:
    """The latest MAX_INCIDENTS by (time, event); `replaces`: the event id whose incidents
    `new` supersede (a re-check). A sale's own incidents keep their detector order."""
    if not new and not replaces and len(old) <= MAX_INCIDENTS:
        return old
    kept = list(old)
    if replaces:
        suffix = f"(event {replaces})"
        kept = [i for i in kept if not i.text.endswith(suffix)]
    if not new and len(kept) == len(old):
        return old
    kept.extend(new)
    kept.sort(key=_incident_key)
    return tuple(kept[-MAX_INCIDENTS:])


def add_transfer(state: NftMarket, trade: Trade) -> tuple[NftMarket, int]:
    """A free transfer (not a sale's leg) joins the window; returns its index."""
    window, i = insert_sorted(state.window, trade, trade_key, WINDOW_TRADES)
    return replace(state, window=window, transfers=state.transfers + 1), i


def add_sale(
    state: NftMarket, trade: Trade, check: SaleCheck
) -> tuple[NftMarket, tuple[Trade, ...], int]:
    """A sale joins the window, carrying its `check`'s weights, and replaces its legs
    (transfers of the same wallets with the same tx tag or within LEG_SECONDS: a leg never
    counts as a transfer, whichever came first). Returns the new state, the legs removed and
    the sale's index."""
    trade = replace(trade, w=check.weight, f=check.flip)
    window = state.window
    legs: tuple[Trade, ...] = ()
    if trade.frm in [x.frm for x in window]:  # C-level: mostly nothing to find
        legs = tuple(x for x in window if is_leg_of(x, trade.frm, trade.to, trade.tag, trade.t))
    if legs:
        window = tuple(x for x in window if x not in legs)
    window, i = insert_sorted(window, trade, trade_key, WINDOW_TRADES)
    # Every sale moves the reference time, flagged or not (see `common.add`).
    suspicion = add(state.suspicion, check.weight - check.flip, trade.t, SUSPICION_HALF_LIFE)
    return (
        NftMarket(
            window=window,
            sales=state.sales + 1,
            transfers=state.transfers - len(legs),
            suspicion=suspicion,
            incidents=merge_incidents(state.incidents, check.incidents),
            flips=add(state.flips, check.flip, trade.t, SUSPICION_HALF_LIFE),
        ),
        legs,
        i,
    )


def reweigh_sale(state: NftMarket, index: int, check: SaleCheck) -> NftMarket:
    """A re-check of the sale at `index` found `check`: swap its weight and incidents."""
    trade = state.window[index]
    window = list(state.window)
    window[index] = replace(trade, w=check.weight, f=check.flip)
    suspicion, flips = state.suspicion, state.flips
    strong = (check.weight - check.flip) - (trade.w - trade.f)
    if strong:
        suspicion = add(suspicion, strong, trade.t, SUSPICION_HALF_LIFE)
    if check.flip != trade.f:
        flips = add(flips, check.flip - trade.f, trade.t, SUSPICION_HALF_LIFE)
    return replace(
        state,
        window=tuple(window),
        suspicion=suspicion,
        flips=flips,
        incidents=merge_incidents(state.incidents, check.incidents, trade.eid),
    )


def add_collection_sale(
    state: CollectionMarket, edge: Edge, check: SaleCheck, event_id: str
) -> tuple[CollectionMarket, int]:
    graph, i = insert_sorted(state.graph, edge, edge_key, GRAPH_SALES)
    return (
        CollectionMarket(
            graph=graph,
            pairs=state.pairs,
            sales=add(state.sales, 1.0, edge.t, RATIO_HALF_LIFE),
            flagged=add(state.flagged, capped(check.weight), edge.t, RATIO_HALF_LIFE),
            n_sales=state.n_sales + 1,
            incidents=merge_incidents(state.incidents, check.incidents),
        ),
        i,
    )


def reweigh_collection_sale(
    state: CollectionMarket, t: int, old: float, check: SaleCheck, event_id: str
) -> CollectionMarket:
    delta = capped(check.weight) - capped(old)
    return replace(
        state,
        flagged=add(state.flagged, delta, t, RATIO_HALF_LIFE) if delta else state.flagged,
        incidents=merge_incidents(state.incidents, check.incidents, event_id),
    )


def record_free_transfer(
    state: CollectionMarket, frm: str, to: str, tag: str, t: int
) -> tuple[CollectionMarket, str]:
    """Remember that two wallets moved an NFT between them without a sale (the two earliest
    such transfers). Returns the new state and the pair key if the memory changed, else ""."""
    if frm == to:
        return state, ""
    key = pair_key(frm, to)
    old = state.pairs.get(key)
    if old is None:
        mark: PairMark | None = PairMark(t, tag)
    elif (t, tag) == (old.t, old.tag) or (old.t2 >= 0 and (t, tag) >= (old.t2, old.tag2)):
        return state, ""  # the usual case: the pair's two earliest are known already
    else:
        mark = _pair_mark([*old.marks(), (t, tag)])
    pairs = dict(state.pairs)
    pairs[key] = mark  # type: ignore[assignment]
    if len(pairs) > PAIR_CAP:
        # The oldest mark goes; among equally old ones, the lowest key.
        times = list(map(_time_of, pairs.values()))
        oldest = min(times)
        del pairs[lowest_key_with(pairs, times, oldest)]
    return replace(state, pairs=pairs), key


def forget_legs(
    state: CollectionMarket, seller: str, buyer: str, legs: tuple[Trade, ...]
) -> tuple[CollectionMarket, str]:
    """A sale showed these remembered free transfers to be its own legs: forget them."""
    if not legs:
        return state, ""
    key = pair_key(seller, buyer)
    old = state.pairs.get(key)
    if old is None:
        return state, ""
    gone = {(x.t, x.tag) for x in legs}
    left = [m for m in old.marks() if m not in gone]
    if len(left) == len(old.marks()):
        return state, ""
    pairs = dict(state.pairs)
    mark = _pair_mark(left)
    if mark is None:
        del pairs[key]
    else:
        pairs[key] = mark
    return replace(state, pairs=pairs), key


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
    suspicion = at(state.suspicion, now, SUSPICION_HALF_LIFE) + min(
        FLIP_CAP, at(state.flips, now, SUSPICION_HALF_LIFE)
    )
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

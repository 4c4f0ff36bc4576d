"""Per-entity state containers and the event fold (docs/scoring.md §2).

`apply(states, event)` reads the keys an event touches from a mapping and returns their new
states; nothing is mutated. `apply_all` folds a sequence, so any batch split of the same
events gives identical state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import msgspec
from msgspec import Struct
from msgspec.structs import replace

from trustscore_stream.events.envelope import (
    Burn,
    CollectionVerified,
    Envelope,
    FraudFinding,
    Listing,
    MarketData,
    MetadataUpdate,
    Mint,
    Sale,
    SocialSignal,
    Transfer,
)
from trustscore_stream.events.ids import collection_id, parse_entity_id
from trustscore_stream.scoring import (
    collection_health,
    fraud,
    liquidity,
    market_integrity,
    metadata,
    provenance,
    social,
)
from trustscore_stream.scoring.collection_health import HealthState
from trustscore_stream.scoring.common import currency, money, ts, tx_tag
from trustscore_stream.scoring.creator import CollectionReport, WalletSummary, upsert_report
from trustscore_stream.scoring.fraud import FindingRecord
from trustscore_stream.scoring.liquidity import CollectionLiquidity, NftLiquidity
from trustscore_stream.scoring.market_integrity import (
    CollectionMarket,
    Edge,
    NftMarket,
    Trade,
)
from trustscore_stream.scoring.metadata import CollectionMetadata, MetadataState
from trustscore_stream.scoring.provenance import OwnerChange, Provenance
from trustscore_stream.scoring.social import SocialState


class NftState(
    Struct,
    frozen=True,
    gc=False,
    tag="nft",
    tag_field="k",
    omit_defaults=True,
    rename={
        "provenance": "p",
        "market": "m",
        "liquidity": "l",
        "metadata": "md",
        "social": "so",
        "findings": "f",
    },
):
    id: str
    provenance: Provenance = Provenance()
    market: NftMarket = NftMarket()
    liquidity: NftLiquidity = NftLiquidity()
    metadata: MetadataState = MetadataState()
    social: SocialState = SocialState()
    findings: dict[str, FindingRecord] = {}


class CollectionState(
    Struct,
    frozen=True,
    gc=False,
    tag="collection",
    tag_field="k",
    omit_defaults=True,
    rename={
        "verified": "v",
        "verified_at": "vt",
        "creator": "cr",
        "creator_verified": "cv",
        "health": "h",
        "market": "m",
        "liquidity": "l",
        "metadata": "md",
        "social": "so",
        "findings": "f",
        "mints": "mn",
        "named_at": "na",
        "mint_creator": "mc",
        "mint_creator_at": "mca",
        "audit_at": "aa",
    },
):
    id: str
    verified: bool | None = None
    verified_at: int = 0
    # Address: named by the latest collection_verified naming one, else by the earliest mint
    # naming one (by event time; ties by content, so the arrival order never decides).
    creator: str = ""
    creator_verified: bool = False  # the creator was named by a positive verification
    health: HealthState = HealthState()
    market: CollectionMarket = CollectionMarket()
    liquidity: CollectionLiquidity = CollectionLiquidity()
    metadata: CollectionMetadata = CollectionMetadata()
    social: SocialState = SocialState()
    findings: dict[str, FindingRecord] = {}
    mints: int = 0
    named_at: int | None = None  # time of the verification that named `creator`
    mint_creator: str = ""  # the creator named by the earliest mint naming one
    mint_creator_at: int = 0
    audit_at: int | None = None  # time of the verification that gave health.audit


class WalletState(
    Struct,
    frozen=True,
    gc=False,
    tag="wallet",
    tag_field="k",
    omit_defaults=True,
    rename={
        "findings": "f",
        "social": "so",
        "collections": "c",
    },
):
    id: str
    findings: dict[str, FindingRecord] = {}
    social: SocialState = SocialState()
    collections: dict[str, CollectionReport] = {}  # as a creator


State = NftState | CollectionState | WalletState
S = TypeVar("S", NftState, CollectionState, WalletState)

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[State] = msgspec.json.Decoder(State)  # type: ignore[arg-type]


def encode_state(state: State) -> bytes:
    return _encoder.encode(state)


def decode_state(raw: bytes | str) -> State:
    return _decoder.decode(raw)


_NFT_EVENTS = (Mint, Transfer, Sale, Listing, Burn, MetadataUpdate)


def keys_for(event: Envelope) -> tuple[str, ...]:
    """The state keys `apply` reads and writes for this event."""
    if isinstance(event, _NFT_EVENTS):
        return (event.entity, collection_id(event.chain, event.contract))
    return (event.entity,)


def _get(states: Mapping[str, State], key: str, kind: type[S]) -> S:
    found = states.get(key)
    if found is None:
        return kind(id=key)
    if not isinstance(found, kind):
        raise TypeError(f"state for {key} is a {type(found).__name__}, not {kind.__name__}")
    return found


def _health(coll: CollectionState, change: OwnerChange | None) -> HealthState:
    """The collection's health part, its holder book moved by an ownership change."""
    if change is None:
        return coll.health
    book = collection_health.move(coll.health.book, change[0], change[1])
    return replace(coll.health, book=book)


# Re-checks: a sale is checked against what came before it in event time. An event that
# arrives after later sales (a late trade, sale, free transfer or floor) re-checks those sales
# (docs/scoring.md §7); they may belong to other NFTs of the collection (same partition),
# which `apply` then reads from its mapping and returns too.


class _Siblings:
    """The other NFTs of one collection that re-checks touched, read lazily."""

    __slots__ = ("_coll_id", "_states", "changed")

    def __init__(self, states: Mapping[str, State], coll_id: str) -> None:
        self._states = states
        self._coll_id = coll_id
        self.changed: dict[str, NftState] = {}

    def get(self, token: str) -> NftState | None:
        key = "nft:" + self._coll_id[11:] + ":" + token  # 11 = len("collection:")
        found = self.changed.get(key)
        if found is not None:
            return found
        stored = self._states.get(key)
        return stored if isinstance(stored, NftState) else None

    def put(self, nft: NftState) -> None:
        self.changed[nft.id] = nft


def _sale_index(window: tuple[Trade, ...], e: Edge) -> int | None:
    for i in range(len(window) - 1, -1, -1):
        x = window[i]
        if (
            x.sale
            and x.t == e.t
            and x.frm == e.seller
            and x.to == e.buyer
            and x.eid
            and market_integrity.sale_tag(x.eid) == e.n
        ):
            return i
    return None


def _recheck(coll: CollectionState, nfts: _Siblings, indices: Iterable[int]) -> CollectionState:
    """Check the collection's sales at these graph indices again, against what is known now
    before each of them; move their weights and incidents by the difference."""
    graph = coll.market.graph
    for j in sorted(set(indices)):
        e = graph[j]
        nft = nfts.get(e.token)
        if nft is None:
            continue
        window = nft.market.window
        i = _sale_index(window, e)
        if i is None:
            continue  # left the token's window: outside the horizon, kept as checked
        trade = window[i]
        check = market_integrity.check_sale(
            window[:i],
            graph[:j],
            coll.market.pairs,
            collection_health.floor_at(coll.health, e.t),
            seller=e.seller,
            buyer=e.buyer,
            price=trade.price,
            currency=trade.cur,
            tag=trade.tag,
            t=e.t,
            event_id=trade.eid,
        )
        clean_delta = market_integrity.capped(trade.w) - market_integrity.capped(check.weight)
        market = market_integrity.reweigh_sale(nft.market, i, check)
        if market == nft.market:
            continue  # the same result: nothing to write (nor to publish)
        nfts.put(
            replace(
                nft,
                market=market,
                liquidity=liquidity.nft_reweigh_sale(nft.liquidity, clean_delta, e.t),
            )
        )
        coll = replace(
            coll,
            market=market_integrity.reweigh_collection_sale(
                coll.market, e.t, trade.w, check, trade.eid
            ),
            liquidity=liquidity.reweigh_sale(coll.liquidity, clean_delta, e.t),
        )
    return coll


def _later_sales(
    graph: tuple[Edge, ...],
    t0: int,
    *,
    token: str | None = None,
    pair: tuple[str, str] | None = None,
    skip: int = -1,
) -> list[int]:
    """Graph indices of sales at or after `t0` (of one token, or between two wallets)."""
    if not graph or graph[-1].t < t0:
        return []  # the usual case: nothing later is known
    out: list[int] = []
    for j in range(len(graph) - 1, -1, -1):
        e = graph[j]
        if e.t < t0:
            break
        if j == skip or (token is not None and e.token != token):
            continue
        if pair is not None and not (
            (e.seller == pair[0] and e.buyer == pair[1])
            or (e.seller == pair[1] and e.buyer == pair[0])
        ):
            continue
        out.append(j)
    return out


# One handler per NFT event type: (nft, its collection, event, event time, siblings) → both
# new states. Each builds every new struct in one `replace`, not a chain of them.


def _mint(
    nft: NftState, coll: CollectionState, event: Mint, t: int, nfts: _Siblings
) -> tuple[NftState, CollectionState]:
    pay = event.payload
    p, change = provenance.record_mint(nft.provenance, pay.to, pay.creator, t)
    coll = replace(coll, mints=coll.mints + 1, health=_health(coll, change))
    if p.minted_at != nft.provenance.minted_at and nft.metadata.recent:
        # Updates seen before their (earlier) mint: the reveal grace now applies to them.
        md, deltas = metadata.remint(nft.metadata, p.minted_at)
        nft = replace(nft, metadata=md)
        coll = replace(coll, metadata=metadata.collection_update(coll.metadata, deltas, 0))
    if pay.creator and (
        not coll.mint_creator or (t, pay.creator) < (coll.mint_creator_at, coll.mint_creator)
    ):
        coll = replace(coll, mint_creator=pay.creator, mint_creator_at=t)
        # A verification's creator wins; a creator from before these fields is kept.
        if coll.named_at is None and (coll.mint_creator == pay.creator or not coll.creator):
            coll = replace(coll, creator=pay.creator)
    return replace(nft, provenance=p), coll


def _transfer(
    nft: NftState, coll: CollectionState, event: Transfer, t: int, nfts: _Siblings
) -> tuple[NftState, CollectionState]:
    pay = event.payload
    p, change = provenance.record_move(nft.provenance, pay.from_, pay.to, t)
    health = _health(coll, change)
    tag = tx_tag(pay.tx_hash)
    if market_integrity.is_sale_leg(nft.market.window, pay.from_, pay.to, tag, t):
        # The on-chain leg of a sale already known: not a trade of its own, not funding.
        return replace(nft, provenance=p), replace(coll, health=health)
    market, _ = market_integrity.add_transfer(
        nft.market, Trade(t, False, pay.from_, pay.to, 0.0, tag)
    )
    cm, pair = market_integrity.record_free_transfer(coll.market, pay.from_, pay.to, tag, t)
    nft = replace(nft, provenance=p, market=market)
    coll = replace(coll, market=cm, health=health)
    graph = cm.graph
    later = _later_sales(graph, t, token=event.token_id)
    if pair:
        later += _later_sales(graph, t, pair=(pay.from_, pay.to))
    if later:
        nfts.put(nft)
        coll = _recheck(coll, nfts, later)
        nft = nfts.changed.pop(nft.id)
    return nft, coll


def _sale(
    nft: NftState, coll: CollectionState, event: Sale, t: int, nfts: _Siblings
) -> tuple[NftState, CollectionState]:
    pay = event.payload
    price = money(pay.price)
    tag = tx_tag(pay.tx_hash)
    cur = currency(pay.currency)
    seller, buyer = pay.seller, pay.buyer
    trade = Trade(t, True, seller, buyer, price, tag, 0.0, cur, event.event_id)
    key = market_integrity.trade_key(trade)
    window = nft.market.window
    # The usual case, a sale after everything known and no leg of it in the window, needs no
    # filtering (a C-level membership test rules legs out).
    before: Sequence[Trade] = market_integrity.prefix_before(
        window, key, market_integrity.trade_key
    )
    if seller in [x.frm for x in before]:
        before = [x for x in before if not market_integrity.is_leg_of(x, seller, buyer, tag, t)]
    edge = Edge(t, seller, buyer, event.token_id, market_integrity.sale_tag(event.event_id))
    graph = coll.market.graph
    graph_before = market_integrity.prefix_before(
        graph, market_integrity.edge_key(edge), market_integrity.edge_key
    )
    check = market_integrity.check_sale(
        before,
        graph_before,
        coll.market.pairs,
        collection_health.floor_at(coll.health, t),
        seller=seller,
        buyer=buyer,
        price=price,
        currency=cur,
        tag=tag,
        t=t,
        event_id=event.event_id,
    )
    clean = 1.0 - market_integrity.capped(check.weight)
    p, change = provenance.record_move(nft.provenance, seller, buyer, t)
    market, legs, i = market_integrity.add_sale(nft.market, trade, check)
    nft = replace(
        nft,
        provenance=p,
        market=market,
        liquidity=liquidity.nft_record_sale(nft.liquidity, clean, t),
    )
    cm, j = market_integrity.add_collection_sale(coll.market, edge, check, event.event_id)
    cm, pair = market_integrity.forget_legs(cm, seller, buyer, legs)
    coll = replace(
        coll,
        market=cm,
        liquidity=liquidity.record_sale(coll.liquidity, clean, t),
        health=_health(coll, change),
    )
    graph = cm.graph
    later: list[int] = []
    if 0 <= j < len(graph) - 1:
        # Sales after it (often just a tie in the same second): its own token's see a new
        # trade; another token's can change only through a ring using this sale, which
        # needs a path from their buyer to this seller and from this buyer to their seller.
        seller_reached = seller in [e.buyer for e in graph]
        buyer_leaves = buyer in [e.seller for e in graph]
        token = event.token_id
        later += [
            k
            for k in range(j + 1, len(graph))
            if graph[k].token == token
            or (
                (seller_reached or graph[k].buyer == seller)
                and (buyer_leaves or graph[k].seller == buyer)
            )
        ]
    elif i < len(market.window) - 1:
        later += _later_sales(graph, t, token=event.token_id, skip=j)
    if legs:
        first = min(x.t for x in legs)
        later += _later_sales(graph, first, token=event.token_id, skip=j)
        if pair:
            later += _later_sales(graph, first, pair=(seller, buyer), skip=j)
    if later:
        nfts.put(nft)
        coll = _recheck(coll, nfts, later)
        nft = nfts.changed.pop(nft.id)
    return nft, coll


def _listing(
    nft: NftState, coll: CollectionState, event: Listing, t: int, nfts: _Siblings
) -> tuple[NftState, CollectionState]:
    return (
        replace(nft, liquidity=liquidity.nft_record_listing(nft.liquidity, t)),
        replace(coll, liquidity=liquidity.record_listing(coll.liquidity, t)),
    )


def _burn(
    nft: NftState, coll: CollectionState, event: Burn, t: int, nfts: _Siblings
) -> tuple[NftState, CollectionState]:
    p, change = provenance.record_burn(nft.provenance, event.payload.from_, t)
    return replace(nft, provenance=p), replace(coll, health=_health(coll, change))


def _metadata_update(
    nft: NftState, coll: CollectionState, event: MetadataUpdate, t: int, nfts: _Siblings
) -> tuple[NftState, CollectionState]:
    md, deltas = metadata.update(
        nft.metadata, event.payload, t, nft.provenance.minted_at, event.event_id
    )
    return (
        replace(nft, metadata=md),
        replace(coll, metadata=metadata.collection_update(coll.metadata, deltas)),
    )


NftHandler = Callable[
    [NftState, CollectionState, Any, int, _Siblings], tuple[NftState, CollectionState]
]
_NFT_HANDLERS: dict[type, NftHandler] = {
    Mint: _mint,
    Transfer: _transfer,
    Sale: _sale,
    Listing: _listing,
    Burn: _burn,
    MetadataUpdate: _metadata_update,
}


def _apply_nft_event(
    nft: NftState, coll: CollectionState, event: Envelope, t: int, nfts: _Siblings
) -> tuple[NftState, CollectionState]:
    for kind, handler in _NFT_HANDLERS.items():
        if isinstance(event, kind):
            return handler(nft, coll, event, t, nfts)
    raise TypeError(f"not an NFT event: {event.type}")  # pragma: no cover


def _market_data(
    coll: CollectionState, event: MarketData, t: int, nfts: _Siblings
) -> CollectionState:
    pay = event.payload
    health = coll.health
    holders, holders_at = health.reported_holders, health.holders_at
    if pay.holders is not None and (
        holders is None or holders_at is None or (t, pay.holders) >= (holders_at, holders)
    ):
        holders, holders_at = pay.holders, t
    floor, settled, points = collection_health.record_floor_point(
        health.floor,
        health.floor_settled,
        health.floor_points,
        collection_health.FloorPoint(t, money(pay.floor_price), currency(pay.currency)),
    )
    volume = None if pay.volume_24h is None else money(pay.volume_24h)
    coll = replace(
        coll,
        health=replace(
            health,
            reported_holders=holders,
            holders_at=holders_at,
            floor=floor,
            floor_points=points,
            floor_settled=settled,
        ),
        liquidity=liquidity.record_market_data(coll.liquidity, pay.sales_24h, volume, t),
    )
    later = _later_sales(coll.market.graph, t + 1)
    if later:  # a floor from before sales already checked: those it is now the floor of
        graph = coll.market.graph
        later = [
            j
            for j in later
            if collection_health.floor_at(health, graph[j].t)
            != collection_health.floor_at(coll.health, graph[j].t)
        ]
        coll = _recheck(coll, nfts, later)
    return coll


def _collection_verified(
    coll: CollectionState, event: CollectionVerified, t: int
) -> CollectionState:
    """Each part is last writer by event time; ties are broken by content, not arrival."""
    pay = event.payload
    if pay.audit_score is not None:
        audit = float(pay.audit_score)
        known = coll.health.audit
        if coll.audit_at is None or known is None or (t, audit) >= (coll.audit_at, known):
            coll = replace(coll, health=replace(coll.health, audit=audit), audit_at=t)
    if coll.verified is None or (t, pay.verified) >= (coll.verified_at, coll.verified):
        coll = replace(coll, verified=pay.verified, verified_at=t)
    if pay.creator and (
        coll.named_at is None
        or (t, pay.creator, pay.verified) >= (coll.named_at, coll.creator, coll.creator_verified)
    ):
        coll = replace(coll, creator=pay.creator, creator_verified=pay.verified, named_at=t)
    return coll


def _apply_collection_event(
    coll: CollectionState, event: Envelope, t: int, nfts: _Siblings
) -> CollectionState:
    if isinstance(event, MarketData):
        return _market_data(coll, event, t, nfts)
    if isinstance(event, CollectionVerified):
        return _collection_verified(coll, event, t)
    raise TypeError(f"not a collection event: {event.type}")  # pragma: no cover


def _annotate(state: S, event: FraudFinding | SocialSignal, t: int) -> S:
    if isinstance(event, FraudFinding):
        findings = fraud.update(state.findings, event.payload, t, event.event_id)
        return replace(state, findings=findings)
    pay = event.payload
    return replace(state, social=social.update(state.social, pay.sentiment, pay.mentions, t))


def _entity_kind(key: str) -> str:
    """The kind of a normalised entity id (payload entities are normalised on decode)."""
    kind = key[: key.find(":")]
    return kind if kind in _KINDS else parse_entity_id(key).kind


_KINDS = frozenset(("nft", "collection", "wallet"))


def apply(states: Mapping[str, State], event: Envelope) -> dict[str, State]:
    """Apply one event; return the new states of the keys it touched (see `keys_for`)."""
    t = ts(event.occurred_at)
    if isinstance(event, _NFT_EVENTS):
        nft = _get(states, event.entity, NftState)
        cid = collection_id(event.chain, event.contract)
        coll = _get(states, cid, CollectionState)
        handler = _NFT_HANDLERS.get(type(event), _apply_nft_event)
        nfts = _Siblings(states, cid)
        new_nft, new_coll = handler(nft, coll, event, t, nfts)
        if nfts.changed:
            return {**nfts.changed, nft.id: new_nft, cid: new_coll}
        return {nft.id: new_nft, cid: new_coll}
    if isinstance(event, MarketData | CollectionVerified):
        coll = _get(states, event.entity, CollectionState)
        nfts = _Siblings(states, coll.id)
        new_coll = _apply_collection_event(coll, event, t, nfts)
        if nfts.changed:
            return {**nfts.changed, coll.id: new_coll}
        return {coll.id: new_coll}
    if isinstance(event, FraudFinding | SocialSignal):
        key = event.entity
        kind = _entity_kind(key)
        if kind == "nft":
            return {key: _annotate(_get(states, key, NftState), event, t)}
        if kind == "collection":
            return {key: _annotate(_get(states, key, CollectionState), event, t)}
        return {key: _annotate(_get(states, key, WalletState), event, t)}
    raise TypeError(f"unknown event type {type(event).__name__}")  # pragma: no cover


class _Overlay(Mapping[str, State]):
    """Read `top` first, then `base`, without copying either."""

    def __init__(self, top: Mapping[str, State], base: Mapping[str, State]) -> None:
        self._top = top
        self._base = base

    def __getitem__(self, key: str) -> State:
        if key in self._top:
            return self._top[key]
        return self._base[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._top
        for key in self._base:
            if key not in self._top:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def apply_all(states: Mapping[str, State], events: Iterable[Envelope]) -> dict[str, State]:
    """Fold events over `states`; return the final state of every key that was touched."""
    changed: dict[str, State] = {}
    view = _Overlay(changed, states)
    for event in events:
        changed.update(apply(view, event))
    return changed


def apply_report(
    wallet: WalletState | None, wallet_key: str, report: CollectionReport
) -> WalletState:
    """Upsert a creator's collection report into the creator's wallet state."""
    state = wallet if wallet is not None else WalletState(id=wallet_key)
    return replace(state, collections=upsert_report(state.collections, report))


def summarize_wallet(wallet: WalletState) -> WalletSummary | None:
    """What other partitions need of a wallet; None when it has nothing to say."""
    findings = {k: r for k, r in wallet.findings.items() if not r.resolved}
    if not findings and not wallet.collections:
        return None
    return WalletSummary(id=wallet.id, findings=findings, collections=dict(wallet.collections))

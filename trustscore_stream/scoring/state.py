"""Per-entity state containers and the event fold (docs/scoring.md §2).

`apply(states, event)` reads the keys an event touches from a mapping and returns their new
states; nothing is mutated. `apply_all` folds a sequence, so any batch split of the same
events gives identical state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
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
    },
):
    id: str
    verified: bool | None = None
    verified_at: int = 0
    creator: str = ""  # address: from collection_verified, else from the first mint naming one
    creator_verified: bool = False  # the creator was named by a positive verification
    health: HealthState = HealthState()
    market: CollectionMarket = CollectionMarket()
    liquidity: CollectionLiquidity = CollectionLiquidity()
    metadata: CollectionMetadata = CollectionMetadata()
    social: SocialState = SocialState()
    findings: dict[str, FindingRecord] = {}
    mints: int = 0


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


# One handler per NFT event type: (nft, its collection, event, event time) → both new states.
# Each builds every new struct in one `replace`, not a chain of them.


def _mint(
    nft: NftState, coll: CollectionState, event: Mint, t: int
) -> tuple[NftState, CollectionState]:
    pay = event.payload
    p, change = provenance.record_mint(nft.provenance, pay.to, pay.creator, t)
    creator = pay.creator if pay.creator and not coll.creator else coll.creator
    coll = replace(coll, mints=coll.mints + 1, creator=creator, health=_health(coll, change))
    return replace(nft, provenance=p), coll


def _transfer(
    nft: NftState, coll: CollectionState, event: Transfer, t: int
) -> tuple[NftState, CollectionState]:
    pay = event.payload
    p, change = provenance.record_move(nft.provenance, pay.to, t)
    if change is None:
        return nft, coll  # already there: a sale's on-chain leg, or a replay
    tag = tx_tag(pay.tx_hash)
    trade = Trade(t, False, pay.from_, pay.to, 0.0, tag)
    nft = replace(nft, provenance=p, market=market_integrity.record_trade(nft.market, trade))
    market = market_integrity.record_free_transfer(coll.market, pay.from_, pay.to, tag, t)
    return nft, replace(coll, market=market, health=_health(coll, change))


def _sale(
    nft: NftState, coll: CollectionState, event: Sale, t: int
) -> tuple[NftState, CollectionState]:
    pay = event.payload
    price = money(pay.price)
    tag = tx_tag(pay.tx_hash)
    check = market_integrity.check_sale(
        nft.market,
        coll.market,
        coll.health.floor,
        seller=pay.seller,
        buyer=pay.buyer,
        price=price,
        currency=currency(pay.currency),
        tag=tag,
        t=t,
        event_id=event.event_id,
    )
    wash = market_integrity.flagged_mass(check.incidents)
    p, change = provenance.record_move(nft.provenance, pay.buyer, t)
    trade = Trade(t, True, pay.seller, pay.buyer, price, tag)
    nft = replace(
        nft,
        provenance=p,
        market=market_integrity.record_trade(nft.market, trade, check.incidents, check.leg_index),
        liquidity=liquidity.nft_record_sale(nft.liquidity, 1.0 - wash, t),
    )
    coll = replace(
        coll,
        market=market_integrity.record_collection_sale(
            coll.market,
            Edge(t, pay.seller, pay.buyer),
            check.incidents,
            check.pair_was_leg,
            check.pair,
        ),
        liquidity=liquidity.record_sale(coll.liquidity, 1.0 - wash, t),
        health=_health(coll, change),
    )
    return nft, coll


def _listing(
    nft: NftState, coll: CollectionState, event: Listing, t: int
) -> tuple[NftState, CollectionState]:
    return (
        replace(nft, liquidity=liquidity.nft_record_listing(nft.liquidity, t)),
        replace(coll, liquidity=liquidity.record_listing(coll.liquidity, t)),
    )


def _burn(
    nft: NftState, coll: CollectionState, event: Burn, t: int
) -> tuple[NftState, CollectionState]:
    p, change = provenance.record_burn(nft.provenance, t)
    return replace(nft, provenance=p), replace(coll, health=_health(coll, change))


def _metadata_update(
    nft: NftState, coll: CollectionState, event: MetadataUpdate, t: int
) -> tuple[NftState, CollectionState]:
    md, weight = metadata.update(
        nft.metadata, event.payload, t, nft.provenance.minted_at, event.event_id
    )
    return (
        replace(nft, metadata=md),
        replace(coll, metadata=metadata.collection_update(coll.metadata, weight, t)),
    )


NftHandler = Callable[[NftState, CollectionState, Any, int], tuple[NftState, CollectionState]]
_NFT_HANDLERS: dict[type, NftHandler] = {
    Mint: _mint,
    Transfer: _transfer,
    Sale: _sale,
    Listing: _listing,
    Burn: _burn,
    MetadataUpdate: _metadata_update,
}


def _apply_nft_event(
    nft: NftState, coll: CollectionState, event: Envelope, t: int
) -> tuple[NftState, CollectionState]:
    for kind, handler in _NFT_HANDLERS.items():
        if isinstance(event, kind):
            return handler(nft, coll, event, t)
    raise TypeError(f"not an NFT event: {event.type}")  # pragma: no cover


def _market_data(coll: CollectionState, event: MarketData, t: int) -> CollectionState:
    pay = event.payload
    health = coll.health
    holders = health.reported_holders
    if pay.holders is not None and (health.floor.observations == 0 or t >= health.floor.t):
        holders = pay.holders
    floor = collection_health.record_floor(
        health.floor, money(pay.floor_price), currency(pay.currency), t
    )
    volume = None if pay.volume_24h is None else money(pay.volume_24h)
    return replace(
        coll,
        health=replace(health, reported_holders=holders, floor=floor),
        liquidity=liquidity.record_market_data(coll.liquidity, pay.sales_24h, volume, t),
    )


def _collection_verified(
    coll: CollectionState, event: CollectionVerified, t: int
) -> CollectionState:
    pay = event.payload
    if pay.audit_score is not None:
        coll = replace(coll, health=replace(coll.health, audit=float(pay.audit_score)))
    if coll.verified is not None and t < coll.verified_at:
        return coll  # a newer verification decision is already known
    if pay.creator:
        return replace(
            coll,
            verified=pay.verified,
            verified_at=t,
            creator=pay.creator,
            creator_verified=pay.verified,
        )
    return replace(coll, verified=pay.verified, verified_at=t)


def _apply_collection_event(coll: CollectionState, event: Envelope, t: int) -> CollectionState:
    if isinstance(event, MarketData):
        return _market_data(coll, event, t)
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
        new_nft, new_coll = handler(nft, coll, event, t)
        return {nft.id: new_nft, cid: new_coll}
    if isinstance(event, MarketData | CollectionVerified):
        coll = _get(states, event.entity, CollectionState)
        return {coll.id: _apply_collection_event(coll, event, t)}
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

"""Per-entity state containers and the event fold (docs/scoring.md §2).

`apply(states, event)` reads the keys an event touches from a mapping and returns their new
states; nothing is mutated. `apply_all` folds a sequence, so any batch split of the same
events gives identical state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

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


def _move(coll: CollectionState, change: OwnerChange | None) -> CollectionState:
    if change is None:
        return coll
    book = collection_health.move(coll.health.book, change[0], change[1])
    return replace(coll, health=replace(coll.health, book=book))


def _apply_nft_event(
    nft: NftState, coll: CollectionState, event: Envelope, t: int
) -> tuple[NftState, CollectionState]:
    if isinstance(event, Mint):
        pay = event.payload
        p, change = provenance.record_mint(nft.provenance, pay.to, pay.creator, t)
        coll = replace(coll, mints=coll.mints + 1)
        if pay.creator and not coll.creator:
            coll = replace(coll, creator=pay.creator)
        return replace(nft, provenance=p), _move(coll, change)
    if isinstance(event, Transfer):
        pay_t = event.payload
        p, change = provenance.record_move(nft.provenance, pay_t.to, t)
        if change is None:
            return nft, coll  # already there: a sale's on-chain leg, or a replay
        tag = tx_tag(pay_t.tx_hash)
        trade = Trade(t, False, pay_t.from_, pay_t.to, 0.0, tag)
        nft = replace(nft, provenance=p, market=market_integrity.record_trade(nft.market, trade))
        cm = market_integrity.record_free_transfer(coll.market, pay_t.from_, pay_t.to, tag, t)
        return nft, _move(replace(coll, market=cm), change)
    if isinstance(event, Sale):
        pay_s = event.payload
        price = money(pay_s.price)
        tag = tx_tag(pay_s.tx_hash)
        check = market_integrity.check_sale(
            nft.market,
            coll.market,
            coll.health.floor,
            seller=pay_s.seller,
            buyer=pay_s.buyer,
            price=price,
            currency=currency(pay_s.currency),
            tag=tag,
            t=t,
            event_id=event.event_id,
        )
        wash = market_integrity.flagged_mass(check.incidents)
        p, change = provenance.record_move(nft.provenance, pay_s.buyer, t)
        trade = Trade(t, True, pay_s.seller, pay_s.buyer, price, tag)
        nft = replace(
            nft,
            provenance=p,
            market=market_integrity.record_trade(
                nft.market, trade, check.incidents, check.leg_index
            ),
            liquidity=liquidity.nft_record_sale(nft.liquidity, 1.0 - wash, t),
        )
        coll = replace(
            coll,
            market=market_integrity.record_collection_sale(
                coll.market,
                Edge(t, pay_s.seller, pay_s.buyer),
                check.incidents,
                check.pair_was_leg,
            ),
            liquidity=liquidity.record_sale(coll.liquidity, 1.0 - wash, t),
        )
        return nft, _move(coll, change)
    if isinstance(event, Listing):
        return (
            replace(nft, liquidity=liquidity.nft_record_listing(nft.liquidity, t)),
            replace(coll, liquidity=liquidity.record_listing(coll.liquidity, t)),
        )
    if isinstance(event, Burn):
        p, change = provenance.record_burn(nft.provenance, t)
        return replace(nft, provenance=p), _move(coll, change)
    if isinstance(event, MetadataUpdate):
        md, weight = metadata.update(
            nft.metadata, event.payload, t, nft.provenance.minted_at, event.event_id
        )
        return (
            replace(nft, metadata=md),
            replace(coll, metadata=metadata.collection_update(coll.metadata, weight, t)),
        )
    raise TypeError(f"not an NFT event: {event.type}")  # pragma: no cover


def _apply_collection_event(coll: CollectionState, event: Envelope, t: int) -> CollectionState:
    if isinstance(event, MarketData):
        pay = event.payload
        health = coll.health
        if pay.holders is not None and (health.floor.observations == 0 or t >= health.floor.t):
            health = replace(health, reported_holders=pay.holders)
        health = replace(
            health,
            floor=collection_health.record_floor(
                health.floor, money(pay.floor_price), currency(pay.currency), t
            ),
        )
        volume = None if pay.volume_24h is None else money(pay.volume_24h)
        return replace(
            coll,
            health=health,
            liquidity=liquidity.record_market_data(coll.liquidity, pay.sales_24h, volume, t),
        )
    if isinstance(event, CollectionVerified):
        pay_v = event.payload
        if pay_v.audit_score is not None:
            coll = replace(coll, health=replace(coll.health, audit=float(pay_v.audit_score)))
        if coll.verified is not None and t < coll.verified_at:
            return coll  # a newer verification decision is already known
        coll = replace(coll, verified=pay_v.verified, verified_at=t)
        if pay_v.creator:
            coll = replace(coll, creator=pay_v.creator, creator_verified=pay_v.verified)
        return coll
    raise TypeError(f"not a collection event: {event.type}")  # pragma: no cover


def _annotate(state: S, event: FraudFinding | SocialSignal, t: int) -> S:
    if isinstance(event, FraudFinding):
        findings = fraud.update(state.findings, event.payload, t, event.event_id)
        return replace(state, findings=findings)
    pay = event.payload
    return replace(state, social=social.update(state.social, pay.sentiment, pay.mentions, t))


def apply(states: Mapping[str, State], event: Envelope) -> dict[str, State]:
    """Apply one event; return the new states of the keys it touched (see `keys_for`)."""
    t = ts(event.occurred_at)
    if isinstance(event, _NFT_EVENTS):
        nft = _get(states, event.entity, NftState)
        cid = collection_id(event.chain, event.contract)
        coll = _get(states, cid, CollectionState)
        new_nft, new_coll = _apply_nft_event(nft, coll, event, t)
        return {nft.id: new_nft, cid: new_coll}
    if isinstance(event, MarketData | CollectionVerified):
        coll = _get(states, event.entity, CollectionState)
        return {coll.id: _apply_collection_event(coll, event, t)}
    if isinstance(event, FraudFinding | SocialSignal):
        key = event.entity
        kind = parse_entity_id(key).kind
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

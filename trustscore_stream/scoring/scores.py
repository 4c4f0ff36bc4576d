"""Reading scores: state (+ collection and wallet summaries) and `now` → ScoreResult."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from trustscore_stream.events.ids import parse_entity_id, wallet_id
from trustscore_stream.scoring import (
    collection_health,
    creator,
    fraud,
    liquidity,
    market_integrity,
    metadata,
    provenance,
    social,
)
from trustscore_stream.scoring.common import ts
from trustscore_stream.scoring.creator import CollectionReport, WalletSummary
from trustscore_stream.scoring.fraud import (
    SCOPE_COLLECTION,
    SCOPE_CREATOR,
    SCOPE_NFT,
    SCOPE_WALLET,
    SEVERITIES,
    Scoped,
)
from trustscore_stream.scoring.model import (
    COLLECTION_HEALTH,
    CREATOR_REPUTATION,
    FRAUD_RISK,
    LIQUIDITY,
    MARKET_INTEGRITY,
    METADATA_STABILITY,
    PROVENANCE,
    SOCIAL_SENTIMENT,
    Cap,
    FactorValue,
    ScoreResult,
    composite,
    no_data,
)
from trustscore_stream.scoring.state import CollectionState, NftState, WalletState

_last_read: tuple[datetime, int] | None = None


def _read_time(now: datetime) -> int:
    """ts(now), remembered for the last `now` object (a checkpoint reads many keys at one)."""
    global _last_read
    last = _last_read
    if last is not None and last[0] is now:
        return last[1]
    n = ts(now)
    _last_read = (now, n)
    return n


def _chain(entity: str) -> str:
    # State ids are normalised when their events are decoded: the second field is the chain.
    # A split, not parse_entity_id, since every NFT score asks for its creator's wallet id.
    return entity.split(":", 2)[1]


def _address(wallet_key: str | None) -> str:
    return "" if wallet_key is None else wallet_key.rsplit(":", 1)[-1]


def _creator_address(nft: NftState | None, collection: CollectionState | None) -> str:
    """A verification names the creator, else the mint, else the collection ("" if none)."""
    if collection is not None and collection.creator_verified and collection.creator:
        return collection.creator
    if nft is not None and nft.provenance.creator:
        return nft.provenance.creator
    if collection is not None and collection.creator:
        return collection.creator
    return ""


def creator_of(nft: NftState | None, collection: CollectionState | None) -> str | None:
    """The creator's wallet id: a verification names it, else the mint, else the collection."""
    address = _creator_address(nft, collection)
    owner = nft if nft is not None else collection
    if not address or owner is None:
        return None
    return wallet_id(_chain(owner.id), address)


class CollectionParts(NamedTuple):
    """Collection-level factor values: the same for every NFT of the collection at one time."""

    market: FactorValue  # market_integrity.collection_value
    health: FactorValue  # collection_health.value
    liquidity: FactorValue  # liquidity.collection_value
    social_share: FactorValue  # social_sentiment of an NFT without signals of its own


# Collections whose parts are remembered; a checkpoint scores the changed NFTs of a collection
# at one `now`, so a few hundred covers a partition's busy collections.
PARTS_CACHE_SIZE = 256
_parts_cache: dict[tuple[int, int], tuple[CollectionState, CollectionParts]] = {}


def collection_parts(coll: CollectionState, now: int) -> CollectionParts:
    """`CollectionParts` of a collection state at `now` (epoch seconds), memoised.

    States are immutable values, so the parts depend only on the state object and `now`.
    The memo holds the state itself, so its `id` cannot be reused while the entry lives, and a
    hit is checked by identity.
    """
    key = (id(coll), now)
    hit = _parts_cache.get(key)
    if hit is not None and hit[0] is coll:
        return hit[1]
    parts = CollectionParts(
        market_integrity.collection_value(coll.market, now),
        collection_health.value(coll.health, now),
        liquidity.collection_value(coll.liquidity, now),
        social.value([(coll.social, social.COLLECTION_SOCIAL_SHARE)], now),
    )
    if len(_parts_cache) >= PARTS_CACHE_SIZE:
        _parts_cache.clear()
    _parts_cache[key] = (coll, parts)
    return parts


def chain_wallets(nft: NftState) -> tuple[str, ...]:
    """Wallet ids whose summaries `score_nft(wallets=…)` may need (owners, newest first)."""
    chain = _chain(nft.id)
    return tuple(wallet_id(chain, a) for a in provenance.chain_wallets(nft.provenance))


def _flags(
    nft: NftState, wallets: Mapping[str, WalletSummary] | None
) -> dict[str, tuple[float, str]]:
    if not wallets:
        return {}
    chain = _chain(nft.id)
    out: dict[str, tuple[float, str]] = {}
    for address in provenance.chain_wallets(nft.provenance):
        summary = wallets.get(wallet_id(chain, address))
        if summary is None:
            continue
        hit = fraud.worst(summary.findings)
        if hit is None or hit[0] <= 0:
            continue
        weight, kind, rec = hit
        out[address] = (
            weight,
            f"{kind}, {SEVERITIES[rec.severity]}, confidence {rec.confidence:.2f}",
        )
    return out


def _with_caps(fr: FactorValue, caps: list[Cap]) -> FactorValue:
    if not caps:
        return fr
    lowest = min(caps, key=lambda c: (c.limit, c.reason))
    note = f"caps the score at {lowest.limit:g}: {lowest.reason}"
    return FactorValue(fr.value, fr.confidence, (note, *fr.evidence))


def _creator_scope(summary: WalletSummary | None, address: str) -> list[Scoped]:
    if summary is None:
        return []
    return [Scoped(f"its creator {address or summary.address}", SCOPE_CREATOR, summary.findings)]


def score_nft(
    nft: NftState,
    collection: CollectionState | None,
    creator_summary: WalletSummary | None,
    now: datetime,
    *,
    wallets: Mapping[str, WalletSummary] | None = None,
) -> ScoreResult:
    """Score an NFT from its state, its collection's state and its creator's summary.

    `wallets`: summaries of flagged wallets by wallet id (see `chain_wallets`); absent = clean.
    """
    n = _read_time(now)
    coll = collection or CollectionState(id=parse_entity_id(nft.id).collection or "")
    creator_address = _creator_address(nft, coll)
    if not creator_address and creator_summary is not None:
        creator_address = creator_summary.address
    scopes = [
        Scoped("this NFT", SCOPE_NFT, nft.findings),
        Scoped("its collection", SCOPE_COLLECTION, coll.findings),
        *_creator_scope(creator_summary, creator_address),
    ]
    fraud_value, caps = fraud.assess(scopes)
    verified_creator = coll.creator if coll.creator_verified and coll.verified else ""
    parts = collection_parts(coll, n)
    factors = {
        MARKET_INTEGRITY: market_integrity.nft_value(nft.market, parts.market, n),
        PROVENANCE: provenance.value(
            nft.provenance,
            verified=coll.verified,
            verified_creator=verified_creator,
            flags=_flags(nft, wallets),
            now=n,
        ),
        FRAUD_RISK: _with_caps(fraud_value, caps),
        CREATOR_REPUTATION: creator.value(
            creator_address,
            creator_summary,
            exclude=coll.id,
            verified_for_creator=bool(verified_creator) and verified_creator == creator_address,
        ),
        COLLECTION_HEALTH: parts.health,
        LIQUIDITY: liquidity.nft_value(nft.liquidity, parts.liquidity, n),
        SOCIAL_SENTIMENT: (
            parts.social_share  # what the NFT's own (empty) part adds is exactly nothing
            if social.is_empty(nft.social)
            else social.value([(nft.social, 1.0), (coll.social, social.COLLECTION_SOCIAL_SHARE)], n)
        ),
        METADATA_STABILITY: metadata.value(nft.metadata, nft.provenance.minted_at, n),
    }
    return composite(factors, caps)


def score_collection(
    collection: CollectionState, creator_summary: WalletSummary | None, now: datetime
) -> ScoreResult:
    n = _read_time(now)
    coll = collection
    creator_address = _creator_address(None, coll)
    if not creator_address and creator_summary is not None:
        creator_address = creator_summary.address
    scopes = [
        Scoped("this collection", SCOPE_COLLECTION, coll.findings),
        *_creator_scope(creator_summary, creator_address),
    ]
    fraud_value, caps = fraud.assess(scopes)
    verified_creator = coll.creator if coll.creator_verified and coll.verified else ""
    parts = collection_parts(coll, n)
    factors = {
        MARKET_INTEGRITY: parts.market,
        PROVENANCE: provenance.collection_value(
            verified=coll.verified,
            creator=coll.creator,
            creator_verified=coll.creator_verified,
            mints=coll.mints,
        ),
        FRAUD_RISK: _with_caps(fraud_value, caps),
        CREATOR_REPUTATION: creator.value(
            creator_address,
            creator_summary,
            exclude=coll.id,
            verified_for_creator=bool(verified_creator) and verified_creator == creator_address,
        ),
        COLLECTION_HEALTH: parts.health,
        LIQUIDITY: parts.liquidity,
        SOCIAL_SENTIMENT: social.value([(coll.social, 1.0)], n),
        METADATA_STABILITY: metadata.collection_value(coll.metadata, coll.health.book.tokens, n),
    }
    return composite(factors, caps)


def score_wallet(wallet: WalletState, now: datetime) -> ScoreResult:
    """A wallet's own findings and sentiment, and its record as a creator."""
    n = _read_time(now)
    scopes = [Scoped("this wallet", SCOPE_WALLET, wallet.findings)]
    fraud_value, caps = fraud.assess(scopes)
    address = _address(wallet.id)
    creator_factor = no_data()
    if wallet.collections:
        summary = WalletSummary(id=wallet.id, collections=dict(wallet.collections))
        creator_factor = creator.value(address, summary, exclude="", verified_for_creator=False)
    factors = {
        FRAUD_RISK: _with_caps(fraud_value, caps),
        SOCIAL_SENTIMENT: social.value([(wallet.social, 1.0)], n),
        CREATOR_REPUTATION: creator_factor,
    }
    return composite(factors, caps)


def collection_report(
    collection: CollectionState, now: datetime
) -> tuple[str, CollectionReport] | None:
    """The report to forward to the collection's creator wallet key, if the creator is known."""
    key = creator_of(None, collection)
    if key is None:
        return None
    health = collection_parts(collection, ts(now)).health
    worst = fraud.flagged(collection.findings)
    flagged = "" if worst is None else fraud.describe(worst[0], worst[1], "the collection")
    return key, CollectionReport(
        collection=collection.id,
        t=ts(now),
        health=round(health.value, 1),
        health_confidence=round(health.confidence, 3),
        verified=collection.verified,
        flagged=flagged,
    )

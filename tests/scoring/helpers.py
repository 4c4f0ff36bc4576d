"""Small helpers shared by the scoring tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tests.scoring.factories import coll_key, nft_key
from trustscore_stream.events.envelope import Envelope
from trustscore_stream.scoring import (
    CollectionState,
    NftState,
    ScoreResult,
    State,
    WalletSummary,
    apply_all,
    score_collection,
    score_nft,
)


def fold(events: Iterable[Envelope], states: dict[str, State] | None = None) -> dict[str, State]:
    base = dict(states or {})
    base.update(apply_all(base, events))
    return base


def nft_of(states: dict[str, State], token: str = "1") -> NftState:
    found = states[nft_key(token)]
    assert isinstance(found, NftState)
    return found


def coll_of(states: dict[str, State]) -> CollectionState:
    found = states.get(coll_key())
    if found is None:
        return CollectionState(id=coll_key())
    assert isinstance(found, CollectionState)
    return found


def nft_score(
    states: dict[str, State],
    now: datetime,
    token: str = "1",
    creator: WalletSummary | None = None,
    wallets: dict[str, WalletSummary] | None = None,
) -> ScoreResult:
    return score_nft(nft_of(states, token), coll_of(states), creator, now, wallets=wallets)


def coll_score(
    states: dict[str, State], now: datetime, creator: WalletSummary | None = None
) -> ScoreResult:
    return score_collection(coll_of(states), creator, now)


def factor(result: ScoreResult, fid: str) -> tuple[float, tuple[str, ...]]:
    f = result.factors[fid]
    return f.value, f.evidence

"""Trust-score model: pure factor state, update and value functions (docs/scoring.md).

No Faust, no I/O, no wall clock: event time drives every update and reads take `now`.

State (frozen msgspec structs, one per key; `encode_state` / `decode_state` give compact JSON):
    NftState         key `nft:…`         trade window, custody, metadata, liquidity, findings
    CollectionState  key `collection:…`  holders, floor stats, trade graph, pair memory, findings
    WalletState      key `wallet:…`      findings, sentiment, creator's collection reports

Folding events:
    keys_for(event) -> tuple[str, ...]                     keys an event always reads and writes
    apply(states: Mapping[str, State], event) -> dict[str, State]
        new states of the touched keys (an NFT event touches the NFT and its collection,
        which share a partition; a late one may also re-check sales of other NFTs of the
        collection, which it reads from `states` and returns); nothing is mutated
    apply_all(states, events) -> dict[str, State]          a left fold: batch-split invariant,
        and (within the ordering horizons) order-independent: docs/scoring.md §7

Reading:
    score_nft(nft, collection, creator_summary, now, *, wallets=None) -> ScoreResult
    score_collection(collection, creator_summary, now) -> ScoreResult
    score_wallet(wallet, now) -> ScoreResult
    ScoreResult.to_contract() -> the score fields of CONTRACT §3
    factors_changed(old, new) -> factor ids whose value changed
    creator_of(nft, collection) -> wallet id of the creator (whose summary to pass), or None
    chain_wallets(nft) -> wallet ids of its owners (pass the flagged ones' summaries)

Cross-partition (wallet keys live elsewhere):
    summarize_wallet(wallet_state) -> WalletSummary | None   replicate these (None = nothing
        to say); small: unresolved findings + creator reports
    collection_report(collection, now) -> (creator wallet id, CollectionReport) | None
    apply_report(wallet_state | None, wallet_id, report) -> WalletState

What the stream layer persists per key: the encoded NftState / CollectionState / WalletState
(≈0.4 KB for a fresh NFT, ≤ ~10 KB for a busy one, ≤ ~40 KB per collection; all bounded),
plus its own dedup memory of event ids (apply counts every event it is given) and, where it
replicates them, the WalletSummary of creators and flagged wallets. Cost (bench/model.py,
docs/benchmarks.md "Pure model cost"): apply ≈ 14 µs per event in model 1, ≈ 1.4× that in
model 2 (order independence), score_nft ≈ 22 µs when a checkpoint scores several NFTs of a
collection at one `now` (≈ 38 µs alone).

Reads memoise collection-level factor parts per (collection state object, `now`): states are
immutable values, and nothing may mutate their dicts in place.
"""

from trustscore_stream.scoring.creator import CollectionReport, WalletSummary
from trustscore_stream.scoring.model import (
    FACTOR_IDS,
    MODEL_VERSION,
    WEIGHTS,
    FactorScore,
    FactorValue,
    Level,
    ScoreResult,
    composite,
    factors_changed,
    level_for,
)
from trustscore_stream.scoring.scores import (
    chain_wallets,
    collection_report,
    creator_of,
    score_collection,
    score_nft,
    score_wallet,
)
from trustscore_stream.scoring.state import (
    CollectionState,
    NftState,
    State,
    WalletState,
    apply,
    apply_all,
    apply_report,
    decode_state,
    encode_state,
    keys_for,
    summarize_wallet,
)

__all__ = [
    "FACTOR_IDS",
    "MODEL_VERSION",
    "WEIGHTS",
    "CollectionReport",
    "CollectionState",
    "FactorScore",
    "FactorValue",
    "Level",
    "NftState",
    "ScoreResult",
    "State",
    "WalletState",
    "WalletSummary",
    "apply",
    "apply_all",
    "apply_report",
    "chain_wallets",
    "collection_report",
    "composite",
    "creator_of",
    "decode_state",
    "encode_state",
    "factors_changed",
    "keys_for",
    "level_for",
    "score_collection",
    "score_nft",
    "score_wallet",
    "summarize_wallet",
]

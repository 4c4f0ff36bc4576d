"""Provenance (origin, churn, flagged owners) and collection health (holders, floor)."""

from __future__ import annotations

from tests.scoring.factories import (
    CREATOR,
    A,
    B,
    C,
    at,
    coll_key,
    market,
    mint,
    sale,
    transfer,
    verified,
    wallet,
    wallet_key,
)
from tests.scoring.helpers import coll_of, coll_score, factor, fold, nft_of, nft_score
from trustscore_stream.scoring import WalletSummary, chain_wallets, creator_of
from trustscore_stream.scoring.collection_health import HOLDER_CAP
from trustscore_stream.scoring.fraud import FindingRecord
from trustscore_stream.scoring.model import COLLECTION_HEALTH, PROVENANCE


def _flagged(address: str, severity: int = 2, confidence: float = 0.9) -> WalletSummary:
    rec = FindingRecord(severity=severity, confidence=confidence, t=0, event_id="f-1")
    return WalletSummary(id=wallet_key(address), findings={"phishing": rec})


def test_flagged_wallet_in_ownership_chain() -> None:
    states = fold([mint(A, at(0)), sale(A, B, at(days=2)), sale(B, C, at(days=4))])
    clean, _ = factor(nft_score(states, at(days=5)), PROVENANCE)
    wallets = {wallet_key(B): _flagged(B)}
    value, evidence = factor(nft_score(states, at(days=5), wallets=wallets), PROVENANCE)
    assert value < clean - 20
    assert any(B in e and "phishing" in e and "flagged wallet" in e for e in evidence)
    # The current owner weighs more than an earlier one.
    owner_flag, _ = factor(
        nft_score(states, at(days=5), wallets={wallet_key(C): _flagged(C)}), PROVENANCE
    )
    assert owner_flag < value
    assert chain_wallets(nft_of(states)) == (wallet_key(C), wallet_key(B), wallet_key(A))


def test_origin_verified_creator_vs_mismatch() -> None:
    ok = fold([verified(True, at(0), creator=CREATOR), mint(A, at(1), creator=CREATOR)])
    bad = fold([verified(True, at(0), creator=CREATOR), mint(A, at(1), creator=B)])
    unknown = fold([sale(A, B, at(1))])
    v_ok, e_ok = factor(nft_score(ok, at(2)), PROVENANCE)
    v_bad, e_bad = factor(nft_score(bad, at(2)), PROVENANCE)
    v_unknown, e_unknown = factor(nft_score(unknown, at(2)), PROVENANCE)
    assert v_ok == 100.0 and "verified creator" in e_ok[0]
    assert v_bad <= 30.0 and B in e_bad[0] and CREATOR in e_bad[0]
    assert v_bad < v_unknown < v_ok and "no mint observed" in e_unknown[0]
    assert creator_of(nft_of(ok), coll_of(ok)) == wallet_key(CREATOR)


def test_short_holds_are_churn() -> None:
    hops = [mint(A, at(0))]
    owners = [A, B, C, wallet(1), wallet(2)]
    for i in range(1, len(owners)):
        hops.append(transfer(owners[i - 1], owners[i], at(i)))
    churned, evidence = factor(nft_score(fold(hops), at(10)), PROVENANCE)
    held = [mint(A, at(0)), transfer(A, B, at(days=60)), transfer(B, C, at(days=200))]
    steady, _ = factor(nft_score(fold(held), at(days=201)), PROVENANCE)
    assert churned < steady
    assert any(e == "4 of 4 holds shorter than 24h" for e in evidence)


def test_holder_concentration() -> None:
    whale = [mint(A, at(0), token=str(i)) for i in range(40)]
    spread = [mint(wallet(100 + i), at(0), token=str(i)) for i in range(40)]
    v_whale, e_whale = factor(coll_score(fold(whale), at(1)), COLLECTION_HEALTH)
    v_spread, _ = factor(coll_score(fold(spread), at(1)), COLLECTION_HEALTH)
    assert v_whale < 20.0 < 90.0 < v_spread
    assert "top 10 holders own 100% of 40 observed tokens" in e_whale[0]


def test_holder_book_is_bounded_and_keeps_the_largest() -> None:
    events = [mint(A, at(0), token=str(10_000 + i)) for i in range(30)]  # a whale with 30 tokens
    events += [mint(wallet(1000 + i), at(1), token=str(i)) for i in range(HOLDER_CAP + 50)]
    events += [transfer(wallet(1000), B, at(2), token="0")]  # an evicted holder sells on
    book = coll_of(fold(events)).health.book
    assert len(book.counts) <= HOLDER_CAP
    assert book.counts[A] == 30
    assert book.tokens == 30 + HOLDER_CAP + 50
    assert book.holders >= HOLDER_CAP


def test_floor_volatility_and_trend() -> None:
    stable = [market("1.0", at(h)) for h in range(0, 48, 2)]
    jumpy = [market("1.0" if h % 4 else "2.0", at(h)) for h in range(0, 48, 2)]
    falling = [market(f"{0.9**d:.6f}", at(days=d)) for d in range(12)]
    v_stable, _ = factor(coll_score(fold(stable), at(49)), COLLECTION_HEALTH)
    v_jumpy, e_jumpy = factor(coll_score(fold(jumpy), at(49)), COLLECTION_HEALTH)
    v_fall, e_fall = factor(coll_score(fold(falling), at(days=12)), COLLECTION_HEALTH)
    assert v_jumpy < v_stable - 40
    assert any(e.startswith("floor volatility") for e in e_jumpy)
    assert v_fall < v_stable
    assert any("floor falling" in e for e in e_fall)


def test_minute_quotes_are_not_sampled() -> None:
    minutes = [market("1.0" if m % 2 else "1.1", at(m / 60)) for m in range(50)]
    floor = coll_of(fold(minutes)).health.floor
    assert floor.returns == 0 and floor.observations == 50


def test_reported_holders_and_audit() -> None:
    states = fold(
        [
            market("1.0", at(0), holders=5000),
            verified(True, at(0), audit=72),
            *[mint(A, at(1), token=str(i)) for i in range(12)],
        ]
    )
    _, evidence = factor(coll_score(states, at(2)), COLLECTION_HEALTH)
    assert any("≈5000 holders" in e for e in evidence)
    assert "audit score 72" in evidence
    assert coll_key() in states

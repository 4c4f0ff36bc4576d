"""fraud_risk, hard caps, creator reputation flow, and the composite."""

from __future__ import annotations

import pytest

from tests.scoring.factories import (
    CREATOR,
    OTHER_CONTRACT,
    A,
    B,
    C,
    at,
    coll_key,
    finding,
    market,
    mint,
    nft_key,
    sale,
    signal,
    verified,
    wallet_key,
)
from tests.scoring.helpers import coll_of, coll_score, fold, nft_score
from trustscore_stream.scoring import (
    FACTOR_IDS,
    WEIGHTS,
    CollectionState,
    FactorValue,
    NftState,
    WalletState,
    apply_report,
    collection_report,
    composite,
    factors_changed,
    level_for,
    score_nft,
    score_wallet,
    summarize_wallet,
)
from trustscore_stream.scoring.model import (
    CREATOR_REPUTATION,
    CRITICAL_CAP,
    FRAUD_RISK,
    HIGH_CAP,
    MARKET_INTEGRITY,
    PRIOR_VALUE,
)


def _healthy() -> list:  # type: ignore[type-arg]
    events = [verified(True, at(0), creator=CREATOR, audit=90)]
    events += [mint(f"0x{i:040x}", at(1), token=str(i), creator=CREATOR) for i in range(1, 60)]
    events += [market("1.0", at(h)) for h in range(0, 72, 6)]
    events += [
        sale(f"0x{i:040x}", f"0x{i + 500:040x}", at(days=2 + i / 10), token=str(i))
        for i in range(1, 30)
    ]
    events += [signal(coll_key(), 0.6, 400, at(days=5))]
    return events


NOW = at(days=6)


def test_healthy_nft_is_trusted() -> None:
    result = nft_score(fold(_healthy()), NOW, token="3")
    assert result.level in ("high_trust", "moderate")
    assert result.score >= 70.0
    assert result.factors[FRAUD_RISK].value == 100.0


def test_finding_lowers_and_resolution_restores() -> None:
    base = fold(_healthy())
    before = nft_score(base, NOW, token="3")
    hit = fold([finding(nft_key("3"), "stolen", "medium", 0.7, at(days=5.5))], base)
    during = nft_score(hit, NOW, token="3")
    assert during.score < before.score
    assert any(
        "stolen (medium, confidence 0.70) on this NFT" in e
        for e in during.factors[FRAUD_RISK].evidence
    )
    resolved = fold(
        [finding(nft_key("3"), "stolen", "medium", 0.7, at(days=5.9), resolved=True)], hit
    )
    after = nft_score(resolved, NOW, token="3")
    assert after.score == before.score
    assert {k: f.value for k, f in after.factors.items()} == {
        k: f.value for k, f in before.factors.items()
    }


def test_late_old_report_does_not_revive_a_resolution() -> None:
    key = nft_key("3")
    states = fold(
        [
            *_healthy(),
            finding(key, "stolen", "high", 0.9, at(days=5), resolved=True),
            finding(key, "stolen", "high", 0.9, at(days=4)),  # older, arrives later
        ]
    )
    assert nft_score(states, NOW, token="3").factors[FRAUD_RISK].confidence == 0.0


def test_critical_rug_pull_on_collection_caps_every_nft() -> None:
    states = fold([*_healthy(), finding(coll_key(), "rug_pull", "critical", 0.9, at(days=5))])
    for token in ("1", "3", "20"):
        result = nft_score(states, NOW, token=token)
        assert result.level == "high_risk"
        assert result.score <= CRITICAL_CAP
        assert result.capped_by is not None and "rug_pull" in result.capped_by
        assert "caps the score at 30" in result.factors[FRAUD_RISK].evidence[0]
    assert coll_score(states, NOW).level == "high_risk"


def test_high_finding_caps_at_caution_and_low_confidence_does_not_cap() -> None:
    high = fold([*_healthy(), finding(coll_key(), "counterfeit", "high", 0.8, at(days=5))])
    assert nft_score(high, NOW, token="3").score <= HIGH_CAP
    weak = fold([*_healthy(), finding(coll_key(), "rug_pull", "critical", 0.3, at(days=5))])
    result = nft_score(weak, NOW, token="3")
    assert result.capped_by is None
    assert result.score < nft_score(fold(_healthy()), NOW, token="3").score


def test_creator_findings_count_through_the_summary() -> None:
    states = fold(_healthy())
    wallet = fold([finding(wallet_key(CREATOR), "sanctioned", "critical", 0.9, at(days=5))])[
        wallet_key(CREATOR)
    ]
    assert isinstance(wallet, WalletState)
    summary = summarize_wallet(wallet)
    assert summary is not None
    result = nft_score(states, NOW, token="3", creator=summary)
    assert result.level == "high_risk"
    assert any("its creator" in e for e in result.factors[FRAUD_RISK].evidence)
    assert score_wallet(wallet, NOW).level == "high_risk"


def test_creator_track_record_from_collection_reports() -> None:
    # The creator's other collection was rugged; the report reaches the creator's wallet key.
    other = CollectionState(id=coll_key(OTHER_CONTRACT), creator=CREATOR)
    rugged = fold(
        [finding(coll_key(OTHER_CONTRACT), "rug_pull", "critical", 0.95, at(0))],
        {other.id: other},
    )[other.id]
    assert isinstance(rugged, CollectionState)
    report = collection_report(rugged, at(1))
    assert report is not None and report[0] == wallet_key(CREATOR)
    wallet = apply_report(None, report[0], report[1])
    summary = summarize_wallet(wallet)
    assert summary is not None
    states = fold(_healthy())
    plain = nft_score(states, NOW, token="3")
    judged = nft_score(states, NOW, token="3", creator=summary)
    assert judged.factors[CREATOR_REPUTATION].value < plain.factors[CREATOR_REPUTATION].value
    assert any("1 with unresolved" in e for e in judged.factors[CREATOR_REPUTATION].evidence)
    assert judged.score < plain.score
    # The collection's own report is not part of its own creator's track record.
    own = collection_report(coll_of(states), NOW)
    assert own is not None
    self_summary = summarize_wallet(apply_report(None, own[0], own[1]))
    assert self_summary is not None
    assert nft_score(states, NOW, token="3", creator=self_summary).score == plain.score


def test_no_data_is_the_neutral_prior() -> None:
    result = score_nft(NftState(id=nft_key()), None, None, NOW)
    assert result.score == PRIOR_VALUE and result.level == "caution"
    assert result.confidence == 0.0
    assert set(result.factors) == set(FACTOR_IDS)


def test_levels() -> None:
    assert level_for(80.0) == "high_trust"
    assert level_for(79.9) == "moderate"
    assert level_for(60.0) == "moderate"
    assert level_for(59.9) == "caution"
    assert level_for(40.0) == "caution"
    assert level_for(39.9) == "high_risk"


def test_weights() -> None:
    assert set(WEIGHTS) == set(FACTOR_IDS)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_fraud_is_one_sided() -> None:
    low = {fid: FactorValue(20.0, 1.0) for fid in FACTOR_IDS if fid != FRAUD_RISK}
    without = composite({**low, FRAUD_RISK: FactorValue(100.0, 0.0)})
    weak_finding = composite({**low, FRAUD_RISK: FactorValue(97.0, 0.3)})
    assert weak_finding.score == without.score


def test_low_confidence_factor_pulls_little() -> None:
    strong = {fid: FactorValue(90.0, 1.0) for fid in FACTOR_IDS}
    shaky = composite({**strong, MARKET_INTEGRITY: FactorValue(0.0, 0.01)})
    assert shaky.score > 89.0


def test_contract_shape_and_factors_changed() -> None:
    states = fold(_healthy())
    result = nft_score(states, NOW, token="3")
    doc = result.to_contract()
    assert doc["model_version"] == "2"
    factors = doc["factors"]
    assert isinstance(factors, dict)
    assert set(factors) == set(FACTOR_IDS)
    for f in factors.values():
        assert (
            0.0 <= f["value"] <= 100.0
            and f["weight"] == WEIGHTS[next(k for k, v in factors.items() if v is f)]
        )
        assert isinstance(f["evidence"], list) and len(f["evidence"]) <= 5
    assert factors_changed(None, result) == FACTOR_IDS
    later = nft_score(fold([sale(A, A, at(days=5.9), token="3")], states), NOW, token="3")
    assert MARKET_INTEGRITY in factors_changed(result, later)
    assert factors_changed(result, result) == ()


def test_rounding_keeps_scores_stable_between_reads() -> None:
    states = fold(_healthy())
    a = nft_score(states, NOW, token="3")
    b = nft_score(states, at(days=6, hours=0.01), token="3")
    assert a.score == b.score
    assert round(a.score, 1) == a.score


def test_unknown_collection_for_nft_ok() -> None:
    states = fold([mint(A, at(0)), sale(A, B, at(1)), sale(B, C, at(2))])
    result = score_nft(states[nft_key()], None, None, at(3))  # type: ignore[arg-type]
    assert 0.0 <= result.score <= 100.0

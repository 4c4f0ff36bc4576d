"""metadata_stability and social_sentiment."""

from __future__ import annotations

import pytest

from tests.scoring.factories import A, at, coll_key, metadata, mint, nft_key, signal, wallet_key
from tests.scoring.helpers import coll_score, factor, fold, nft_score
from trustscore_stream.scoring import WalletState, apply_all, score_wallet
from trustscore_stream.scoring.model import METADATA_STABILITY, SOCIAL_SENTIMENT

MD = METADATA_STABILITY
SO = SOCIAL_SENTIMENT


def test_metadata_change_after_mint() -> None:
    base = [mint(A, at(0))]
    unchanged, evidence = factor(nft_score(fold(base), at(days=40)), MD)
    assert unchanged == 100.0 and evidence == ("no metadata changes after mint",)
    changed_events = [*base, metadata(["image", "name"], at(days=40), event_id="md-1")]
    changed, evidence = factor(nft_score(fold(changed_events), at(days=40)), MD)
    assert changed < 70.0
    assert "image, name changed 40d after mint (event md-1)" in evidence
    # A delayed reveal within the first week costs less, a description edit less still.
    reveal, _ = factor(nft_score(fold([*base, metadata(["image"], at(days=2))]), at(days=40)), MD)
    desc, _ = factor(
        nft_score(fold([*base, metadata(["description"], at(days=40))]), at(days=40)), MD
    )
    assert changed < desc < reveal < 100.0


def test_frozen_metadata() -> None:
    events = [mint(A, at(0)), metadata([], at(1), frozen=True)]
    result = nft_score(fold(events), at(2))
    assert result.factors[MD].confidence == 1.0
    assert "metadata frozen" in result.factors[MD].evidence
    after = [*events, metadata(["image"], at(days=30), event_id="md-2")]
    value, evidence = factor(nft_score(fold(after), at(days=30)), MD)
    assert value < 40.0
    assert any("changed after being frozen (event md-2)" in e for e in evidence)
    unfrozen = [*events, metadata([], at(days=30), frozen=False)]
    value_u, evidence_u = factor(nft_score(fold(unfrozen), at(days=30)), MD)
    assert value_u < 100.0 and any("unfrozen" in e for e in evidence_u)


def test_collection_metadata_rate() -> None:
    events = [mint(A, at(0), token=str(i)) for i in range(10)]
    events += [metadata(["image"], at(days=30), token=str(i)) for i in range(10)]
    value, _ = factor(coll_score(fold(events), at(days=31)), MD)
    assert value < 20.0


def test_sentiment_is_mention_weighted() -> None:
    nft = nft_key()
    events = [mint(A, at(0)), signal(nft, 1.0, 300, at(1)), signal(nft, -1.0, 100, at(1))]
    result = nft_score(fold(events), at(1))
    assert result.factors[SO].value == pytest.approx(75.0)
    # A signal with no mentions carries no weight.
    events.append(signal(nft, -1.0, 0, at(1)))
    assert nft_score(fold(events), at(1)).factors[SO].value == pytest.approx(75.0)


def test_sentiment_ema_decays_older_signals() -> None:
    nft = nft_key()
    events = [
        mint(A, at(0)),
        signal(nft, 1.0, 100, at(0)),
        signal(nft, -1.0, 100, at(days=7)),  # one half-life later
    ]
    value, evidence = factor(nft_score(fold(events), at(days=7)), SO)
    # weights 0.5 vs 1 → S = −1/3 → 33.3
    assert value == pytest.approx(33.3, abs=0.05)
    assert "sentiment -0.33" in evidence[0]
    # Order does not matter: the decayed sums are linear.
    value_rev, _ = factor(nft_score(fold([events[0], events[2], events[1]]), at(days=7)), SO)
    assert value_rev == value


def test_collection_talk_counts_half_for_its_tokens() -> None:
    events = [
        mint(A, at(0)),
        signal(coll_key(), -1.0, 200, at(1)),
        signal(nft_key(), 1.0, 100, at(1)),
    ]
    value, _ = factor(nft_score(fold(events), at(1)), SO)
    assert value == pytest.approx(50.0)


def test_wallet_sentiment() -> None:
    key = wallet_key(A)
    states = apply_all({}, [signal(key, 0.5, 80, at(0))])
    wallet = states[key]
    assert isinstance(wallet, WalletState)
    result = score_wallet(wallet, at(0))
    assert result.factors[SO].value == pytest.approx(75.0)
    assert 0.0 < result.factors[SO].confidence < 1.0

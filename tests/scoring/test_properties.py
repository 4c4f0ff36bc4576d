"""Property tests: bounds, batch-split determinism, monotone findings, resolution, caps."""

from __future__ import annotations

import itertools
import os
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.scoring.factories import CONTRACT, CREATOR, T0, coll_key, finding, nft_key, wallet_key
from tests.scoring.strategies import HORIZON_MINUTES, KINDS, SEVERITIES, event_lists
from trustscore_stream.events.envelope import Envelope, FraudFinding
from trustscore_stream.scoring import (
    FACTOR_IDS,
    CollectionState,
    NftState,
    ScoreResult,
    State,
    WalletState,
    WalletSummary,
    apply,
    apply_all,
    creator_of,
    decode_state,
    encode_state,
    level_for,
    score_collection,
    score_nft,
    score_wallet,
    summarize_wallet,
)
from trustscore_stream.scoring.fraud import SEVERITIES as SEV_ORDER
from trustscore_stream.scoring.fraud import FindingRecord

# SCORING_EXAMPLES=2000 for a deeper run; the default keeps the directory at a few seconds.
EXAMPLES = int(os.environ.get("SCORING_EXAMPLES", "40"))
# No example database: failures print their minimal example, and no stray directory is left.
FAST = settings(max_examples=EXAMPLES, deadline=None, database=None)
AFTER = T0 + timedelta(minutes=HORIZON_MINUTES + 60)
NOWS = (T0 - timedelta(days=1), T0 + timedelta(days=10), AFTER + timedelta(days=400))


def _fold(events: list[Envelope]) -> dict[str, State]:
    return dict(apply_all({}, events))


def _summaries(states: dict[str, State]) -> dict[str, WalletSummary]:
    out: dict[str, WalletSummary] = {}
    for key, s in states.items():
        if isinstance(s, WalletState):
            summary = summarize_wallet(s)
            if summary is not None:
                out[key] = summary
    return out


def _check(result: ScoreResult) -> None:
    assert 0.0 <= result.score <= 100.0
    assert result.level == level_for(result.score)
    assert 0.0 <= result.confidence <= 1.0
    assert set(result.factors) == set(FACTOR_IDS)
    for f in result.factors.values():
        assert 0.0 <= f.value <= 100.0
        assert 0.0 <= f.confidence <= 1.0
        assert 1 <= len(f.evidence) <= 5


@FAST
@given(event_lists)
def test_every_score_is_bounded(events: list[Envelope]) -> None:
    states = _fold(events)
    wallets = _summaries(states)
    for now in NOWS:
        for key, s in states.items():
            if isinstance(s, NftState):
                coll = states.get(coll_key(key.split(":")[2]))
                assert coll is None or isinstance(coll, CollectionState)
                creator_key = creator_of(s, coll)
                creator = wallets.get(creator_key) if creator_key else None
                _check(score_nft(s, coll, creator, now, wallets=wallets))
            elif isinstance(s, CollectionState):
                creator_key = creator_of(None, s)
                _check(score_collection(s, wallets.get(creator_key or ""), now))
            else:
                _check(score_wallet(s, now))


@FAST
@given(event_lists, st.lists(st.integers(0, 30), max_size=4))
def test_any_batch_split_gives_identical_state(events: list[Envelope], cuts: list[int]) -> None:
    whole = _fold(events)
    states: dict[str, State] = {}
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        states.update(apply_all(states, events[lo:hi]))
    assert states.keys() == whole.keys()
    for key in whole:
        assert encode_state(states[key]) == encode_state(whole[key])


@FAST
@given(event_lists)
def test_state_round_trips_through_json(events: list[Envelope]) -> None:
    before = _fold(events)
    frozen = {k: encode_state(v) for k, v in before.items()}
    for key, state in before.items():
        again = decode_state(frozen[key])
        assert again == state
        assert encode_state(again) == frozen[key]
    # apply never mutates its input mapping
    if events:
        copy = dict(before)
        apply(before, events[0])
        assert {k: encode_state(v) for k, v in before.items()} == frozen
        assert copy.keys() == before.keys()


TARGETS = ("nft", "collection", "creator")
NFT = nft_key("1", CONTRACT)
COLL = coll_key(CONTRACT)
CREATOR_KEY = wallet_key(CREATOR)


def _without(events: list[Envelope], entity: str, kind: str) -> list[Envelope]:
    return [
        e
        for e in events
        if not (
            isinstance(e, FraudFinding) and e.payload.entity == entity and e.payload.finding == kind
        )
    ]


def _score(states: dict[str, State], creator: WalletSummary | None) -> ScoreResult:
    nft = states.get(NFT) or NftState(id=NFT)
    coll = states.get(COLL)
    assert isinstance(nft, NftState)
    assert coll is None or isinstance(coll, CollectionState)
    return score_nft(nft, coll, creator, AFTER + timedelta(hours=2))


def _with_finding(
    events: list[Envelope], target: str, kind: str, severity: str, confidence: float
) -> ScoreResult:
    if target == "creator":
        rec = FindingRecord(SEV_ORDER.index(severity), confidence, 0, "f")
        return _score(_fold(events), WalletSummary(id=CREATOR_KEY, findings={kind: rec}))
    entity = NFT if target == "nft" else COLL
    return _score(_fold([*events, finding(entity, kind, severity, confidence, AFTER)]), None)


@settings(max_examples=EXAMPLES * 3 // 2, deadline=None, database=None)
@given(
    event_lists,
    st.sampled_from(TARGETS),
    st.sampled_from(KINDS),
    st.integers(0, 3),
    st.integers(0, 3),
    st.floats(0.0, 1.0, allow_nan=False),
    st.floats(0.0, 1.0, allow_nan=False),
)
def test_more_severe_or_confident_findings_never_raise_the_score(
    events: list[Envelope],
    target: str,
    kind: str,
    sev_a: int,
    sev_b: int,
    conf_a: float,
    conf_b: float,
) -> None:
    entity = {"nft": NFT, "collection": COLL, "creator": CREATOR_KEY}[target]
    base = _without(events, entity, kind)
    lo_sev, hi_sev = sorted((sev_a, sev_b))
    lo_conf, hi_conf = sorted((conf_a, conf_b))
    # The same inputs without the finding (for the creator: the same summary, no findings).
    clean_creator = WalletSummary(id=CREATOR_KEY) if target == "creator" else None
    none = _score(_fold(base), clean_creator).score
    weaker = _with_finding(base, target, kind, SEVERITIES[lo_sev], lo_conf).score
    stronger = _with_finding(base, target, kind, SEVERITIES[hi_sev], hi_conf).score
    assert none >= weaker >= stronger


@FAST
@given(
    event_lists,
    st.sampled_from(("nft", "collection")),
    st.sampled_from(KINDS),
    st.sampled_from(SEVERITIES),
    st.floats(0.0, 1.0, allow_nan=False),
)
def test_resolved_finding_stops_counting(
    events: list[Envelope], target: str, kind: str, severity: str, confidence: float
) -> None:
    entity = NFT if target == "nft" else COLL
    base = _without(events, entity, kind)
    before = _score(_fold(base), None)
    raised = finding(entity, kind, severity, confidence, AFTER)
    resolved = finding(
        entity, kind, severity, confidence, AFTER + timedelta(minutes=30), resolved=True
    )
    after = _score(_fold([*base, raised, resolved]), None)
    assert after.score == before.score
    assert {k: f.value for k, f in after.factors.items()} == {
        k: f.value for k, f in before.factors.items()
    }


@FAST
@given(event_lists, st.floats(0.5, 1.0, allow_nan=False))
def test_critical_rug_pull_makes_every_nft_high_risk(
    events: list[Envelope], confidence: float
) -> None:
    rug = finding(COLL, "rug_pull", "critical", confidence, AFTER)
    states = _fold([*events, rug])
    coll = states[COLL]
    assert isinstance(coll, CollectionState)
    for key, s in states.items():
        if isinstance(s, NftState) and key.startswith(f"nft:eth:{CONTRACT}:"):
            assert score_nft(s, coll, None, AFTER).level == "high_risk"
    assert score_nft(NftState(id=NFT), coll, None, AFTER).level == "high_risk"
    assert score_collection(coll, None, AFTER).level == "high_risk"

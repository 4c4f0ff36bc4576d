"""Order independence: the final scores depend on the set of events, not on the fold order.

The scoring stage folds lane batches in priority order (docs/architecture.md §5), so a worker
folds the same events in an order that differs from event time and varies with timing. The
guarantee (docs/scoring.md §7): folding any permutation of a set of events gives the same
`ScoreResult`s as folding them in event-time order, as long as no event arrives later than its
entity's ordering horizon (the bounded memories of §2 and §7). The generated sets are kept
inside every horizon (`_inside_horizons`), so every permutation must agree.

Two properties: the realistic one (each lane keeps its order, the lanes interleave
arbitrarily, which is what one worker can do) and the general one (any permutation).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st

from tests.scoring.factories import A, B, C, D, E, at, market, mint, sale, transfer
from tests.scoring.helpers import coll_of, coll_score, factor, fold, nft_of, nft_score
from tests.scoring.strategies import event_lists
from tests.scoring.test_properties import FAST, NOWS, _summaries
from trustscore_stream.events.classification import classify
from trustscore_stream.events.envelope import (
    Burn,
    Envelope,
    MarketData,
    MetadataUpdate,
    Mint,
    Sale,
    Transfer,
)
from trustscore_stream.scoring import (
    CollectionState,
    NftState,
    ScoreResult,
    State,
    apply_all,
    creator_of,
    decode_state,
    score_collection,
    score_nft,
    score_wallet,
)
from trustscore_stream.scoring.collection_health import FLOOR_POINTS
from trustscore_stream.scoring.metadata import UPDATES_KEPT
from trustscore_stream.scoring.provenance import MOVES_MAX

_OWNERSHIP = (Mint, Transfer, Sale, Burn)


def _inside_horizons(events: list[Envelope]) -> bool:
    """No token has more ownership events or metadata updates, and no collection more floor
    observations, than their ordered memories keep (the trade window, 32, and the collection
    graph, 64, hold more than a generated list)."""
    moves = Counter(e.entity for e in events if isinstance(e, _OWNERSHIP))
    updates = Counter(e.entity for e in events if isinstance(e, MetadataUpdate))
    floors = Counter(e.entity for e in events if isinstance(e, MarketData))
    return (
        max(moves.values(), default=0) <= MOVES_MAX
        and max(updates.values(), default=0) <= UPDATES_KEPT
        and max(floors.values(), default=0) <= FLOOR_POINTS
    )


def _event_time_order(events: list[Envelope]) -> list[Envelope]:
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def _scores(states: dict[str, State], now: datetime) -> dict[str, ScoreResult]:
    wallets = _summaries(states)
    out: dict[str, ScoreResult] = {}
    for key, s in states.items():
        if isinstance(s, NftState):
            coll = states.get("collection:" + key.rsplit(":", 1)[0].split(":", 1)[1])
            assert coll is None or isinstance(coll, CollectionState)
            creator_key = creator_of(s, coll)
            creator = wallets.get(creator_key) if creator_key else None
            out[key] = score_nft(s, coll, creator, now, wallets=wallets)
        elif isinstance(s, CollectionState):
            out[key] = score_collection(s, wallets.get(creator_of(None, s) or ""), now)
        else:
            out[key] = score_wallet(s, now)
    return out


def _assert_same_scores(events: list[Envelope], permuted: list[Envelope]) -> None:
    expected = dict(apply_all({}, _event_time_order(events)))
    got = dict(apply_all({}, permuted))
    assert got.keys() == expected.keys()
    for now in NOWS:
        want = _scores(expected, now)
        have = _scores(got, now)
        for key in want:
            diff = {
                fid: (f, have[key].factors[fid])
                for fid, f in want[key].factors.items()
                if have[key].factors[fid] != f
            }
            assert have[key] == want[key], (key, diff)
    assert _summaries(got) == _summaries(expected)


@st.composite
def lane_interleavings(draw: st.DrawFn) -> tuple[list[Envelope], list[Envelope]]:
    """(events, the same events as a worker may fold them): per lane in event-time order,
    the lanes interleaved by draws (the scheduler's choice depends on timing)."""
    events = draw(event_lists)
    assume(_inside_horizons(events))
    ordered = _event_time_order(events)
    ingest_now = max((e.occurred_at for e in events), default=datetime.now().astimezone())
    ingest_now += timedelta(seconds=draw(st.integers(0, 2 * 86_400)))
    lanes: dict[str, list[Envelope]] = {}
    for e in ordered:
        lanes.setdefault(classify(e, ingest_now).lane, []).append(e)
    queues = [list(reversed(q)) for q in lanes.values()]
    folded: list[Envelope] = []
    while any(queues):
        ready = [q for q in queues if q]
        q = ready[draw(st.integers(0, len(ready) - 1))]
        # A lane batch: one or more events of that lane, in order.
        for _ in range(draw(st.integers(1, 4))):
            if q:
                folded.append(q.pop())
    return events, folded


@FAST
@given(lane_interleavings())
def test_lane_interleaving_gives_event_time_scores(
    case: tuple[list[Envelope], list[Envelope]],
) -> None:
    events, folded = case
    _assert_same_scores(events, folded)


@FAST
@given(event_lists, st.randoms(use_true_random=False))
def test_any_permutation_gives_event_time_scores(events: list[Envelope], rnd: object) -> None:
    assume(_inside_horizons(events))
    permuted = list(events)
    rnd.shuffle(permuted)  # type: ignore[attr-defined]
    _assert_same_scores(events, permuted)


def test_model_1_states_decode_and_keep_folding() -> None:
    """State stored by model 1 (golden/model_v1_states.json: a mint, a floor, two sales and a
    transfer folded by the model-1 code) decodes, scores as the same events folded now, and
    takes further events, in order and late."""
    stored = json.loads((Path(__file__).parent / "golden" / "model_v1_states.json").read_text())
    old = {key: decode_state(raw) for key, raw in stored.items()}
    events = [
        mint(A, at(0), creator=B),
        market("0.1", at(0)),
        sale(A, B, at(1), price="1.0", event_id="v1-s1"),
        transfer(B, C, at(2)),
        sale(C, D, at(3), price="0.2", event_id="v1-s2"),
    ]
    now = at(10)
    assert nft_score(old, now) == nft_score(fold(events), now)
    assert coll_score(old, now) == coll_score(fold(events), now)
    more = [sale(D, A, at(5), price="0.3", event_id="v2-s3"), transfer(A, E, at(4))]
    states = fold(more, old)
    value, evidence = factor(nft_score(states, now), "provenance")
    assert nft_of(states).provenance.owner == A
    assert 0.0 <= value <= 100.0 and evidence


def test_two_moves_in_one_second_follow_the_chain() -> None:
    """One block can move a token twice (A → C, then C → B); with both in one second the
    chain decides their order, not their content (B sorts before C) or their arrival."""
    for legs in (
        [transfer(A, C, at(1)), sale(C, B, at(1), event_id="same-second")],
        [sale(C, B, at(1), event_id="same-second"), transfer(A, C, at(1))],
    ):
        states = fold([mint(A, at(0)), *legs])
        p = nft_of(states).provenance
        assert (p.owner, p.chain, p.holds, p.changes) == (B, (A, C), 2, 2)
        book = coll_of(states).health.book
        assert book.counts == {B: 1}

"""The simulated market: reproducible, realistic in the ways the scoring model looks at,
every scenario labelled, every envelope valid for the strict decoder."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.simulation.helpers import SMALL, entities_of, jsonl, simulate
from trustscore_stream.events.decoding import decode_record
from trustscore_stream.events.envelope import EVENT_TYPES
from trustscore_stream.events.ids import parse_entity_id
from trustscore_stream.simulation import (
    SCENARIO_KINDS,
    MarketShape,
    Simulation,
    SimulationConfig,
    default_counts,
    parse_scenarios,
)


def test_same_seed_gives_the_same_bytes_and_labels() -> None:
    first, first_labels = simulate(seed=11)
    second, second_labels = simulate(seed=11)
    assert jsonl(first) == jsonl(second)
    assert orjson.dumps(first_labels) == orjson.dumps(second_labels)


def test_another_seed_gives_another_market() -> None:
    first, _ = simulate(seed=11, events=2_000)
    second, _ = simulate(seed=12, events=2_000)
    assert jsonl(first) != jsonl(second)
    assert {e["event_id"] for e in first}.isdisjoint({e["event_id"] for e in second})


def test_exact_count_time_order_and_unique_ids() -> None:
    envelopes, labels = simulate(events=5_000)
    assert len(envelopes) == 5_000 == labels["events"]
    times = [datetime.fromisoformat(e["occurred_at"]) for e in envelopes]
    assert times == sorted(times)
    assert len({e["event_id"] for e in envelopes}) == len(envelopes)
    assert labels["start"] == "2026-01-01T00:00:00.000Z"
    assert labels["end"] == envelopes[-1]["occurred_at"]


def test_every_envelope_passes_the_strict_decoder() -> None:
    envelopes, _ = simulate(events=6_000)
    for i in range(0, len(envelopes), 1000):
        decoded = decode_record(orjson.dumps(envelopes[i : i + 1000]))
        assert decoded.rejections == []
        assert len(decoded.envelopes) == len(envelopes[i : i + 1000])
    kinds = Counter(e["type"] for e in envelopes)
    # Every CONTRACT §2 type appears.
    assert set(kinds) == set(EVENT_TYPES)


def test_every_default_scenario_is_labelled_with_its_entities_and_events() -> None:
    envelopes, labels = simulate(events=6_000)
    by_id = {e["event_id"]: e for e in envelopes}
    named: set[str] = set().union(*(entities_of(e) for e in envelopes))
    scenarios = labels["scenarios"]
    expected = default_counts(6_000)
    assert Counter(s["kind"] for s in scenarios) == Counter(expected)
    assert len({s["id"] for s in scenarios}) == len(scenarios)
    for scenario in scenarios:
        assert scenario["kind"] in SCENARIO_KINDS
        assert scenario["summary"]
        assert scenario["start"] <= scenario["end"]
        assert scenario["entities"], scenario["id"]
        for entity in scenario["entities"]:
            assert str(parse_entity_id(entity["id"])) == entity["id"]  # CONTRACT §1, normalised
            assert entity["id"] in named, (scenario["id"], entity)  # it is in the stream
            assert entity["role"]
        assert scenario["significant_events"], scenario["id"]
        for item in scenario["significant_events"]:
            event = by_id[item["event_id"]]
            assert event["occurred_at"] == item["at"]
            assert scenario["start"] <= item["at"] <= scenario["end"]
            assert item["what"]
            assert item["entity"] in {e["id"] for e in scenario["entities"]}


def test_wash_trading_covers_the_three_patterns_at_inflated_prices() -> None:
    envelopes, labels = simulate(events=6_000)
    wash = [s for s in labels["scenarios"] if s["kind"] == "wash_trading"]
    assert {s["details"]["pattern"] for s in wash} == {"ring", "round_trip", "self_trade"}
    for scenario in wash:
        nft = next(e["id"] for e in scenario["entities"] if e["id"].startswith("nft:"))
        ring = {e["id"] for e in scenario["entities"] if e["role"] == "wash-trading wallet"}
        contract, token = nft.split(":")[2:]
        sales = [
            e
            for e in envelopes
            if e["type"] == "sale" and e.get("contract") == contract and e["token_id"] == token
        ]
        inside = [
            s
            for s in sales
            if f"wallet:eth:{s['payload']['seller']}" in ring
            and f"wallet:eth:{s['payload']['buyer']}" in ring
        ]
        assert len(inside) == scenario["details"]["wash_sales"]
        assert len(ring) == scenario["details"]["wallets"]
        # The floor the market quoted last before each wash sale: the late ones are ≥ 5× it.
        quotes = [
            (e["occurred_at"], float(e["payload"]["floor_price"]))
            for e in envelopes
            if e["type"] == "market_data" and e["contract"] == contract
        ]
        last = inside[-1]
        floor = max((q for q in quotes if q[0] <= last["occurred_at"]), default=None)
        assert floor is not None
        assert float(last["payload"]["price"]) >= 5 * floor[1]


def test_rug_pull_ends_in_a_critical_finding_on_its_collection() -> None:
    envelopes, labels = simulate(events=6_000, scenarios={"rug_pull": 1})
    (rug,) = labels["scenarios"]
    collection = next(e["id"] for e in rug["entities"] if e["role"] == "rug-pulled collection")
    findings = [
        e["payload"]
        for e in envelopes
        if e["type"] == "fraud_finding" and e["payload"]["entity"] == collection
    ]
    assert findings == [
        {
            "entity": collection,
            "finding": "rug_pull",
            "severity": "critical",
            "confidence": 0.9,
            "evidence": findings[0]["evidence"],
        }
    ]
    contract = collection.split(":")[2]
    floors = [
        float(e["payload"]["floor_price"])
        for e in envelopes
        if e["type"] == "market_data" and e["contract"] == contract
    ]
    assert floors[-1] < 0.1 * max(floors)  # the floor collapsed


def test_heavy_tail_of_collections_and_wallets() -> None:
    envelopes, _ = simulate(events=20_000, shape=MarketShape(100, 10_000, 3_000), scenarios={})
    per_collection = Counter(e["contract"] for e in envelopes if "token_id" in e)
    ranked = sorted(per_collection.values(), reverse=True)
    top = len(ranked) // 10
    assert sum(ranked[:top]) / sum(ranked) > 0.4  # 10 % of collections, > 40 % of activity
    buyers = Counter(e["payload"]["buyer"] for e in envelopes if e["type"] == "sale")
    ranked = sorted(buyers.values(), reverse=True)
    assert sum(ranked[: len(ranked) // 10]) / sum(ranked) > 0.4


def check_ownership(envelopes: list[dict[str, object]]) -> None:
    """A token only ever leaves the wallet that holds it (once its holder is known)."""
    owner: dict[str, str] = {}
    for e in envelopes:
        if "token_id" not in e:
            continue
        key = f"{e['contract']}:{e['token_id']}"
        payload = e["payload"]
        assert isinstance(payload, dict)
        kind = e["type"]
        if kind == "mint":
            assert key not in owner
            owner[key] = payload["to"]
        elif kind in ("sale", "transfer", "burn", "listing"):
            frm = payload["seller"] if kind in ("sale", "listing") else payload["from"]
            if key in owner:
                if kind == "transfer" and payload.get("tx_hash") and owner[key] == payload["to"]:
                    continue  # the on-chain leg of a sale already applied
                assert owner[key] == frm, (e["event_id"], owner[key], frm)
            if kind in ("sale", "transfer"):
                owner[key] = payload["buyer"] if kind == "sale" else payload["to"]
            elif kind == "burn":
                owner[key] = ""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    events=st.integers(2_000, 3_500),
    kinds=st.sets(st.sampled_from(SCENARIO_KINDS), min_size=0, max_size=len(SCENARIO_KINDS)),
    collections=st.integers(3, 12),
)
def test_any_run_is_valid_consistent_and_exact(
    seed: int, events: int, kinds: set[str], collections: int
) -> None:
    shape = MarketShape(collections=collections, nfts=collections * 40, wallets=200)
    counts = {k: 1 for k in kinds}
    envelopes, labels = simulate(seed, events, shape, counts)
    assert len(envelopes) == events
    decoded = [decode_record(orjson.dumps(envelopes[i : i + 1000])) for i in range(0, events, 1000)]
    assert all(d.rejections == [] for d in decoded)
    assert sorted(e["occurred_at"] for e in envelopes) == [e["occurred_at"] for e in envelopes]
    assert sorted(s["kind"] for s in labels["scenarios"]) == sorted(kinds)
    check_ownership(envelopes)


def test_scenario_selection() -> None:
    assert parse_scenarios("all", 100_000) == default_counts(100_000)
    assert parse_scenarios("none", 100_000) == {}
    assert parse_scenarios("wash_trading=2,rug_pull", 100_000) == {"wash_trading": 2, "rug_pull": 1}
    with pytest.raises(ValueError, match="unknown scenario 'rugpull'"):
        parse_scenarios("rugpull", 1_000)
    with pytest.raises(ValueError, match="whole number"):
        parse_scenarios("rug_pull=x", 1_000)
    assert default_counts(1_000) == {}  # too small a run for the default set
    with pytest.raises(ValueError, match=r"need \d+ events"):
        Simulation(SimulationConfig(events=100, shape=SMALL, scenarios={"rug_pull": 1}))
    with pytest.raises(ValueError, match="at least 10"):
        MarketShape(collections=10, nfts=50, wallets=100)


def test_an_unbounded_run_replays_scenarios_chapter_after_chapter() -> None:
    sim = Simulation(SimulationConfig(events=None, chapter=3_000, shape=SMALL))
    stream = sim.events()
    envelopes = [next(stream) for _ in range(7_000)]
    assert len({e["event_id"] for e in envelopes}) == 7_000
    ids = [label.id for label in sim.labels]
    assert len(ids) == len(set(ids))
    assert sum(1 for i in ids if i.startswith("rug_pull-")) == 3  # chapters 1, 2 and 3
    assert sim.busiest_collections(3) == [c.entity for c in sim.market.ranked()[:3]]

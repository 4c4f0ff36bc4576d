"""Wash-trading detectors: each lowers market_integrity and names wallets and event."""

from __future__ import annotations

from tests.scoring.factories import A, B, C, D, E, F, at, market, mint, sale, transfer, wallet
from tests.scoring.helpers import factor, fold, nft_of, nft_score
from trustscore_stream.scoring.model import MARKET_INTEGRITY

MI = MARKET_INTEGRITY


def _mi(events: list, now_h: float = 1000.0) -> tuple[float, tuple[str, ...]]:  # type: ignore[type-arg]
    return factor(nft_score(fold(events), at(now_h)), MI)


def _clean() -> float:
    # The same number of sales, spread over distinct wallets and weeks.
    value, evidence = _mi(
        [mint(A, at(0)), sale(A, B, at(days=10)), sale(B, C, at(days=20)), sale(C, D, at(days=30))]
    )
    assert "no wash-trading patterns" in evidence[0]
    return value


def test_clean_trading_scores_high() -> None:
    assert _clean() >= 95.0


def test_self_trade() -> None:
    value, evidence = _mi([mint(A, at(0)), sale(A, A, at(1), event_id="self-1")])
    assert value < 50.0
    assert any(A in e and "self-trade" in e and "self-1" in e for e in evidence)


def test_round_trip_a_b_a() -> None:
    value, evidence = _mi([mint(A, at(0)), sale(A, B, at(1)), sale(B, A, at(3), event_id="rt-1")])
    assert value < _clean() - 30
    text = next(e for e in evidence if "round trip" in e)
    assert A in text and B in text and "rt-1" in text and "within 2h" in text


def test_ring_a_b_c_a_names_ring_and_event() -> None:
    value, evidence = _mi(
        [
            mint(A, at(0)),
            sale(A, B, at(1)),
            sale(B, C, at(2)),
            sale(C, A, at(3), event_id="0x9f3c:57"),
        ]
    )
    assert value < _clean() - 30
    text = next(e for e in evidence if "circular trade among 3 wallets" in e)
    for w in (A, B, C):
        assert w in text
    assert "(event 0x9f3c:57)" in text and "within 2h" in text


def test_ring_of_five_detected_six_not() -> None:
    five = [mint(A, at(0))]
    ring = [A, B, C, D, E]
    for i, (s, b) in enumerate(zip(ring, [*ring[1:], A], strict=True)):
        five.append(sale(s, b, at(i * 30 + 1), event_id=f"r5-{i}"))
    _, evidence = _mi(five)
    assert any("among 5 wallets" in e and "r5-4" in e for e in evidence)

    six = [mint(A, at(0))]
    ring6 = [A, B, C, D, E, F]
    for i, (s, b) in enumerate(zip(ring6, [*ring6[1:], A], strict=True)):
        six.append(sale(s, b, at(i * 25 + 1)))
    _, evidence = _mi(six)
    assert not any("circular" in e or "round trip" in e for e in evidence)


def test_ring_outside_window_is_not_flagged() -> None:
    _, evidence = _mi([mint(A, at(0)), sale(A, B, at(1)), sale(B, A, at(days=9))])
    assert not any("round trip" in e for e in evidence)


def test_ring_across_tokens() -> None:
    events = [
        mint(A, at(0), token="1"),
        mint(B, at(0), token="2"),
        mint(C, at(0), token="3"),
        sale(A, B, at(1), token="1"),
        sale(B, C, at(2), token="2"),
        sale(C, A, at(3), token="3", event_id="x-ring"),
    ]
    states = fold(events)
    value, evidence = factor(nft_score(states, at(4), token="3"), MI)
    text = next(e for e in evidence if "across tokens" in e)
    assert all(w in text for w in (A, B, C)) and "x-ring" in text
    assert value < 60.0


def test_funded_each_other() -> None:
    events = [
        mint(A, at(0), token="1"),
        mint(B, at(0), token="2"),
        transfer(A, B, at(1), token="1", tx="0x" + "11" * 32),  # a free gift, no sale
        sale(B, A, at(days=8), token="2", event_id="funded-1", tx="0x" + "22" * 32),
    ]
    value, evidence = factor(nft_score(fold(events), at(days=9), token="2"), MI)
    text = next(e for e in evidence if "transferred NFTs to each other" in e)
    assert A in text and B in text and "funded-1" in text
    assert value < 70.0


def test_sale_leg_is_not_funding_and_counts_once() -> None:
    tx = "0x" + "33" * 32
    for order in ("transfer-first", "sale-first"):
        legs = [transfer(A, B, at(1), tx=tx), sale(A, B, at(1), tx=tx)]
        if order == "sale-first":
            legs.reverse()
        states = fold([mint(A, at(0)), *legs, sale(B, C, at(days=5), tx="0x" + "44" * 32)])
        value, evidence = factor(nft_score(states, at(days=6)), MI)
        assert not any("each other" in e for e in evidence), order
        assert value > 90.0, order
        nft = nft_of(states)
        assert nft.provenance.owner == C
        assert nft.market.sales == 2
        coll = states["collection:eth:" + "0x" + "c0" * 20]
        assert coll.health.book.tokens == 1  # type: ignore[union-attr]


def test_far_above_floor() -> None:
    events = [market("0.1", at(0)), mint(A, at(0)), sale(A, B, at(5), price="1.0", event_id="hi")]
    value, evidence = _mi(events, now_h=6)
    text = next(e for e in evidence if "collection floor" in e)
    assert "10.0x" in text and "hi" in text
    assert value < 75.0


def test_far_above_floor_needs_same_currency_and_fresh_floor() -> None:
    for events in (
        [market("0.1", at(0)), mint(A, at(0)), sale(A, B, at(5), price="1.0", currency="USDC")],
        [market("0.1", at(0)), mint(A, at(0)), sale(A, B, at(days=5), price="1.0")],
        [market("0.5", at(0)), mint(A, at(0)), sale(A, B, at(5), price="1.0")],
    ):
        _, evidence = _mi(events, now_h=200)
        assert not any("collection floor" in e for e in evidence)


def test_weth_counts_as_eth_for_the_floor() -> None:
    events = [market("0.1", at(0)), mint(A, at(0)), sale(A, B, at(5), price="1", currency="WETH")]
    _, evidence = _mi(events, now_h=6)
    assert any("collection floor" in e for e in evidence)


def test_rapid_flip() -> None:
    value, evidence = _mi([mint(A, at(0)), sale(A, B, at(1)), sale(B, C, at(4), event_id="flip")])
    assert any(e == "rapid flip: resold 3h after acquiring (event flip)" for e in evidence)
    assert value < _clean()
    _, evidence = _mi([mint(A, at(0)), sale(A, B, at(1)), sale(B, C, at(days=3))])
    assert not any("rapid flip" in e for e in evidence)


def _flips(n: int) -> list:  # type: ignore[type-arg]
    """A busy honest token: n resales, each a few hours after the last, to new wallets."""
    owners = [wallet(100 + i) for i in range(n + 2)]
    events = [mint(owners[0], at(0)), sale(owners[0], owners[1], at(1))]
    events += [sale(owners[i], owners[i + 1], at(1 + 4 * i)) for i in range(1, n + 1)]
    return events


def test_rapid_flips_alone_are_capped() -> None:
    # Ten rapid flips weigh what FLIP_CAP (0.5) allows, not 10 × 0.2: about 61, not 14.
    two, _ = _mi(_flips(2), now_h=50)
    ten, evidence = _mi(_flips(10), now_h=50)
    assert sum("rapid flip" in e for e in evidence) == 5  # the newest incidents are named
    assert ten < two < _clean()
    assert ten == 60.7


def test_rapid_flips_still_add_to_strong_evidence() -> None:
    ring = [mint(A, at(0)), sale(A, B, at(1)), sale(B, A, at(3))]
    looped, _ = _mi(ring, now_h=50)
    flipped = [*ring, sale(A, C, at(40)), sale(C, D, at(45))]  # the second is a rapid flip
    both, evidence = _mi(flipped, now_h=50)
    assert any("round trip" in e for e in evidence) and any("rapid flip" in e for e in evidence)
    assert both < looped


def test_suspicion_decays_with_time() -> None:
    events = [mint(A, at(0)), sale(A, A, at(1))]
    soon, _ = _mi(events, now_h=2)
    later, _ = _mi(events, now_h=24 * 365)
    assert soon < later


def test_collection_wash_ratio_spills_over_to_clean_tokens() -> None:
    wash = [mint(A, at(0), token=str(i)) for i in range(2, 8)]
    wash += [sale(A, A, at(1 + i), token=str(i)) for i in range(2, 8)]
    clean = [mint(C, at(0), token="1"), sale(C, D, at(days=2), token="1")]
    states = fold(wash + clean)
    value, evidence = factor(nft_score(states, at(days=3), token="1"), MI)
    assert value <= 60.0
    assert any(e.startswith("collection:") for e in evidence)


def test_pair_memory_does_not_confuse_pairs_sharing_prefixes() -> None:
    # The test wallets share 36 leading zeros, like vanity addresses do.
    events = [
        mint(A, at(0), token="1"),
        mint(C, at(0), token="2"),
        transfer(A, B, at(1), token="1"),
        sale(C, D, at(days=2), token="2"),
    ]
    _, evidence = factor(nft_score(fold(events), at(days=3), token="2"), MI)
    assert not any("each other" in e for e in evidence)


def test_earlier_gift_still_counts_when_a_sale_leg_arrives_first() -> None:
    tx = "0x" + "55" * 32
    events = [
        mint(A, at(0), token="1"),
        mint(A, at(0), token="2"),
        transfer(A, B, at(1), token="1"),  # a gift: funding
        transfer(A, B, at(days=3), token="2", tx=tx),  # the on-chain leg of the sale below
        sale(A, B, at(days=3), token="2", tx=tx, event_id="after-gift"),
    ]
    _, evidence = factor(nft_score(fold(events), at(days=4), token="2"), MI)
    assert any("each other" in e and "after-gift" in e for e in evidence)

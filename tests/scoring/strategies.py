"""Hypothesis strategies: valid envelopes over a small universe, so patterns collide often."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from tests.scoring.factories import (
    CONTRACT,
    CREATOR,
    OTHER_CONTRACT,
    T0,
    A,
    B,
    C,
    D,
    E,
    coll_key,
    envelope,
    nft_key,
    wallet_key,
)
from trustscore_stream.events.envelope import Envelope

WALLETS = [A, B, C, D, E, CREATOR]
TOKENS = ["1", "2", "3"]
CONTRACTS = [CONTRACT, OTHER_CONTRACT]
HORIZON_MINUTES = 20 * 24 * 60
KINDS = ["wash_trading", "stolen", "phishing", "counterfeit", "rug_pull", "sanctioned", "other"]
SEVERITIES = ["low", "medium", "high", "critical"]

wallets = st.sampled_from(WALLETS)
tokens = st.sampled_from(TOKENS)
contracts = st.sampled_from(CONTRACTS)
minutes = st.integers(0, HORIZON_MINUTES)
money = st.one_of(
    st.sampled_from(["0", "0.0001", "1", "2.5", "999999999999999999999999999999.999999"]),
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,6})?", fullmatch=True),
)
currencies = st.sampled_from(["ETH", "WETH", "USDC"])
tx_hashes = st.one_of(st.none(), st.sampled_from(["0x" + c * 64 for c in "abc"]))
entities = st.one_of(
    st.builds(nft_key, tokens, contracts),
    st.builds(coll_key, contracts),
    st.builds(wallet_key, wallets),
)
probability = st.floats(0.0, 1.0, allow_nan=False)


def _opt(d: dict[str, Any], **kw: Any) -> dict[str, Any]:
    d.update({k: v for k, v in kw.items() if v is not None})
    return d


@st.composite
def raw_events(draw: st.DrawFn) -> tuple[str, dict[str, Any], int, dict[str, Any]]:
    """(type, payload, minute, envelope extras)."""
    kind = draw(
        st.sampled_from(
            [
                "mint",
                "transfer",
                "sale",
                "sale",
                "sale",
                "listing",
                "burn",
                "metadata_update",
                "market_data",
                "collection_verified",
                "fraud_finding",
                "social_signal",
            ]
        )
    )
    minute = draw(minutes)
    nft = {"contract": draw(contracts), "token_id": draw(tokens)}
    if kind == "mint":
        payload = _opt({"to": draw(wallets)}, creator=draw(st.none() | wallets))
        return kind, payload, minute, nft
    if kind == "transfer":
        payload = _opt({"from": draw(wallets), "to": draw(wallets)}, tx_hash=draw(tx_hashes))
        return kind, payload, minute, nft
    if kind == "sale":
        payload = _opt(
            {
                "seller": draw(wallets),
                "buyer": draw(wallets),
                "price": draw(money),
                "currency": draw(currencies),
            },
            tx_hash=draw(tx_hashes),
        )
        return kind, payload, minute, nft
    if kind == "listing":
        payload = {"seller": draw(wallets), "price": draw(money), "currency": draw(currencies)}
        return kind, payload, minute, nft
    if kind == "burn":
        return kind, {"from": draw(wallets)}, minute, nft
    if kind == "metadata_update":
        fields = draw(
            st.lists(st.sampled_from(["image", "name", "description", "traits"]), max_size=3)
        )
        payload = _opt({"fields": fields}, frozen=draw(st.none() | st.booleans()))
        return kind, payload, minute, nft
    coll = {"contract": draw(contracts)}
    if kind == "market_data":
        payload = _opt(
            {"floor_price": draw(money), "currency": draw(currencies)},
            volume_24h=draw(st.none() | money),
            sales_24h=draw(st.none() | st.integers(0, 10_000)),
            holders=draw(st.none() | st.integers(0, 100_000)),
        )
        return kind, payload, minute, coll
    if kind == "collection_verified":
        payload = _opt(
            {"verified": draw(st.booleans())},
            creator=draw(st.none() | wallets),
            audit_score=draw(st.none() | st.floats(0, 100, allow_nan=False)),
        )
        return kind, payload, minute, coll
    if kind == "fraud_finding":
        payload = _opt(
            {
                "entity": draw(entities),
                "finding": draw(st.sampled_from(KINDS)),
                "severity": draw(st.sampled_from(SEVERITIES)),
                "confidence": draw(probability),
            },
            resolved=draw(st.none() | st.booleans()),
        )
        return kind, payload, minute, {}
    payload = {
        "entity": draw(entities),
        "sentiment": draw(st.floats(-1.0, 1.0, allow_nan=False)),
        "mentions": draw(st.integers(0, 10_000)),
    }
    return kind, payload, minute, {}


def build(raw: list[tuple[str, dict[str, Any], int, dict[str, Any]]]) -> list[Envelope]:
    return [
        envelope(kind, payload, T0 + timedelta(minutes=minute), event_id=f"e{i}", **extra)
        for i, (kind, payload, minute, extra) in enumerate(raw)
    ]


event_lists = st.lists(raw_events(), max_size=30).map(build)

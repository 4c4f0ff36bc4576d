"""Golden digests of the scoring model: every state and score, byte for byte.

Three seeded corpora are folded through `apply` and scored the way the stream layer does it:

- `traffic`: the first 20,000 events of the benchmark traffic (`trustscore_stream.traffic`,
  the market of bench/ingest.py, seed 1, a fixed start);
- `crowd`: 6,000 events of the same generator on 3 collections and 2,000 wallets, so holder
  books and wallet-pair memories overflow their caps and evict;
- `edge`: 4,000 events (plus the transfer legs of some sales) over a small universe (2
  collections, 6 tokens each, 8 wallets, 3 transaction hashes), about 10 % of them late, so
  loops, funded pairs, transfer legs, floor checks, findings on every kind of entity,
  resolutions and out-of-order paths all occur.

At every checkpoint (every `checkpoint` events) each touched key's encoded state and its score
at the checkpoint's event time go into a running sha256 (`trace`), and the collections'
reports are forwarded to their creators (`collection_report` → `apply_report`), whose
summaries then feed the NFT and collection scores. At the end, every entity's encoded state and
its scores at two read times (1 hour and 45 days after the last event) are digested (first 16
hex digits of sha256), states and scores apart, per collection, per collection's NFTs and per
wallet, so a failure names where the results changed. A last digest covers the unrounded
factor values (and caps) behind every score computed, in order.

Regenerate (only for an intended change of the model's results):

    .venv/bin/python -m tests.scoring.golden --write
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson

from trustscore_stream.events.envelope import Envelope, decode_envelopes
from trustscore_stream.scoring import (
    CollectionState,
    NftState,
    ScoreResult,
    State,
    WalletState,
    WalletSummary,
    apply,
    apply_report,
    chain_wallets,
    collection_report,
    creator_of,
    encode_state,
    score_collection,
    score_nft,
    score_wallet,
    scores,
    summarize_wallet,
)
from trustscore_stream.scoring.model import Cap, FactorValue
from trustscore_stream.traffic import Market, TrafficGenerator

GOLDEN = Path(__file__).parent / "golden" / "model_v2.json"
START = datetime(2026, 11, 1, tzinfo=UTC)
BENCH_MARKET = Market(collections=100, nfts=10_000, wallets=5_000, seed=1)
# Few collections, many wallets: holder books and pair memories overflow their caps.
CROWD_MARKET = Market(collections=3, nfts=3_000, wallets=2_000, seed=2)
READ_AFTER = (timedelta(hours=1), timedelta(days=45))

_score_encoder = msgspec.json.Encoder()
_raw_encoder = msgspec.json.Encoder(order="deterministic")


def traffic_events(count: int = 20_000, market: Market = BENCH_MARKET) -> list[Envelope]:
    generator = TrafficGenerator(market, start=START)
    return decode_envelopes(orjson.dumps(list(generator.events(count))))


def _address(n: int) -> str:
    return "0x" + f"{n:040x}"


def edge_events(count: int = 4_000, seed: int = 20261123) -> list[Envelope]:
    """A small universe where every detector and ordering path fires."""
    rng = random.Random(seed)
    contracts = [_address(0xC0), _address(0xC1)]
    wallets = [_address(0xA0 + i) for i in range(7)] + [_address(0xCAFE)]
    tokens = [str(i) for i in range(1, 7)]
    hashes = ["0x" + c * 64 for c in "abc"]
    clock = START
    raw: list[dict[str, Any]] = []
    kinds = [
        ("sale", 28),
        ("transfer", 20),
        ("listing", 8),
        ("mint", 6),
        ("burn", 1),
        ("metadata_update", 6),
        ("market_data", 10),
        ("collection_verified", 4),
        ("fraud_finding", 8),
        ("social_signal", 9),
    ]
    names, weights = zip(*kinds, strict=True)

    def money() -> str:
        return rng.choice(["0", "0.0001", "1", "2.5", "7.25", f"{rng.lognormvariate(0, 1.5):.4f}"])

    def entity() -> str:
        which = rng.random()
        contract = rng.choice(contracts)
        if which < 0.4:
            return f"nft:eth:{contract}:{rng.choice(tokens)}"
        if which < 0.7:
            return f"collection:eth:{contract}"
        return f"wallet:eth:{rng.choice(wallets)}"

    for i in range(count):
        clock += timedelta(seconds=rng.choice([1, 30, 300, 900, 3600, 4 * 3600, 20 * 3600]))
        when = clock
        if rng.random() < 0.1:  # late: up to two days behind the stream
            when = clock - timedelta(seconds=rng.randint(0, 2 * 86400))
        kind = rng.choices(names, weights)[0]
        base: dict[str, Any] = {
            "event_id": f"edge-{i}",
            "type": kind,
            "source": "chain",
            "occurred_at": when.isoformat(),
            "schema_version": 1,
            "chain": "eth",
        }
        contract = rng.choice(contracts)
        nft = {"contract": contract, "token_id": rng.choice(tokens)}
        a, b = rng.choice(wallets), rng.choice(wallets)
        tx = rng.choice([None, None, *hashes])
        payload: dict[str, Any]
        if kind == "mint":
            payload = {"to": a}
            if rng.random() < 0.7:
                payload["creator"] = rng.choice([wallets[-1], b])
            base.update(nft)
        elif kind == "transfer":
            payload = {"from": a, "to": b}
            if tx:
                payload["tx_hash"] = tx
            base.update(nft)
        elif kind == "sale":
            payload = {
                "seller": a,
                "buyer": b,
                "price": money(),
                "currency": rng.choice(["ETH", "ETH", "WETH", "USDC"]),
            }
            if tx:
                payload["tx_hash"] = tx
            base.update(nft, source="marketplace")
        elif kind == "listing":
            payload = {"seller": a, "price": money(), "currency": "ETH"}
            base.update(nft, source="marketplace")
        elif kind == "burn":
            payload = {"from": a}
            base.update(nft)
        elif kind == "metadata_update":
            fields = rng.sample(["image", "name", "description", "traits", " Image "], k=2)
            payload = {"fields": fields[: rng.randint(0, 2)]}
            if rng.random() < 0.6:
                payload["frozen"] = rng.random() < 0.5
            base.update(nft)
        elif kind == "market_data":
            payload = {"floor_price": money(), "currency": rng.choice(["ETH", "ETH", "USDC"])}
            if rng.random() < 0.5:
                payload["volume_24h"] = money()
            if rng.random() < 0.5:
                payload["sales_24h"] = rng.randint(0, 500)
            if rng.random() < 0.5:
                payload["holders"] = rng.randint(0, 5000)
            base.update(contract=contract, source="market")
        elif kind == "collection_verified":
            payload = {"verified": rng.random() < 0.7}
            if rng.random() < 0.8:
                payload["creator"] = rng.choice([wallets[-1], b])
            if rng.random() < 0.5:
                payload["audit_score"] = round(rng.uniform(0, 100), 1)
            base.update(contract=contract, source="internal")
        elif kind == "fraud_finding":
            payload = {
                "entity": entity(),
                "finding": rng.choice(["wash_trading", "stolen", "phishing", "rug_pull"]),
                "severity": rng.choice(["low", "medium", "high", "critical"]),
                "confidence": round(rng.uniform(0.0, 1.0), 2),
            }
            if rng.random() < 0.3:
                payload["resolved"] = rng.random() < 0.6
            base["source"] = "fraud"
        else:
            payload = {
                "entity": entity(),
                "sentiment": round(rng.uniform(-1, 1), 3),
                "mentions": rng.choice([0, 1, 5, 40, 300]),
            }
            base["source"] = "social"
        base["payload"] = payload
        raw.append(base)
        if kind == "sale" and rng.random() < 0.3:
            # The sale's on-chain transfer leg, just before or after it.
            leg = {**base, "event_id": f"edge-{i}-leg", "type": "transfer", "source": "chain"}
            leg["payload"] = {"from": a, "to": b}
            if tx or rng.random() < 0.5:
                leg["payload"]["tx_hash"] = tx or rng.choice(hashes)
            if rng.random() < 0.5:
                raw.insert(len(raw) - 1, leg)
            else:
                raw.append(leg)
    return decode_envelopes(orjson.dumps(raw))


def _group(key: str) -> str:
    """NFTs are digested per collection ("collection:… nfts"), other entities one by one."""
    if key.startswith("nft:"):
        return "collection:" + key.split(":", 1)[1].rsplit(":", 1)[0] + " nfts"
    return key


class _Scorer:
    """Scores keys the way the stream layer can: collection and creator summaries at hand."""

    def __init__(self, states: dict[str, State]) -> None:
        self.states = states
        self.wallets: dict[str, WalletState] = {}

    def forward_reports(self, collections: Iterable[CollectionState], now: datetime) -> None:
        for coll in collections:
            found = collection_report(coll, now)
            if found is not None:
                key, report = found
                base = self.wallets.get(key)
                if base is None:
                    own = self.states.get(key)
                    base = own if isinstance(own, WalletState) else None
                self.wallets[key] = apply_report(base, key, report)

    def wallet(self, key: str) -> WalletState | None:
        found = self.wallets.get(key)
        if found is not None:
            return found
        own = self.states.get(key)
        return own if isinstance(own, WalletState) else None

    def summary(self, key: str | None) -> WalletSummary | None:
        if key is None:
            return None
        wallet = self.wallet(key)
        return None if wallet is None else summarize_wallet(wallet)

    def score(self, state: State, now: datetime) -> ScoreResult:
        if isinstance(state, NftState):
            coll = self.states.get("collection:" + state.id.split(":", 1)[1].rsplit(":", 1)[0])
            assert coll is None or isinstance(coll, CollectionState)
            flagged = {}
            for key in chain_wallets(state):
                summary = self.summary(key)
                if summary is not None:
                    flagged[key] = summary
            return score_nft(
                state, coll, self.summary(creator_of(state, coll)), now, wallets=flagged
            )
        if isinstance(state, CollectionState):
            return score_collection(state, self.summary(creator_of(None, state)), now)
        return score_wallet(state, now)


@contextmanager
def _raw_factors(into: Any) -> Iterator[None]:
    """Also digest the unrounded factor values every score is composed from.

    Scores round values to 0.1 and confidences to 0.001; this catches changes below that
    (e.g. a reordered float sum) before they can cross a rounding boundary somewhere else.
    """
    original = scores.composite

    def recording(factors: Mapping[str, FactorValue], caps: Iterable[Cap] = ()) -> ScoreResult:
        caps = list(caps)
        into.update(_raw_encoder.encode([factors, caps]) + b"\0")
        return original(factors, caps)

    scores.composite = recording  # type: ignore[assignment]
    try:
        yield
    finally:
        scores.composite = original


def digest(events: list[Envelope], checkpoint: int) -> dict[str, Any]:
    raw = hashlib.sha256()
    with _raw_factors(raw):
        result = _digest(events, checkpoint)
    result["raw_factors"] = raw.hexdigest()
    return result


def _digest(events: list[Envelope], checkpoint: int) -> dict[str, Any]:
    states: dict[str, State] = {}
    scorer = _Scorer(states)
    trace = hashlib.sha256()
    touched: dict[str, None] = {}
    latest = events[0].occurred_at

    def flush(now: datetime) -> None:
        keys = sorted(touched)
        scorer.forward_reports(
            (s for k in keys if isinstance(s := states[k], CollectionState)), now
        )
        for key in keys:
            state = states[key]
            trace.update(key.encode() + b"\0" + encode_state(state) + b"\0")
            trace.update(_score_encoder.encode(scorer.score(state, now)) + b"\0")
        touched.clear()

    for i, event in enumerate(events, 1):
        latest = max(latest, event.occurred_at)
        for key, state in apply(states, event).items():
            states[key] = state
            touched[key] = None
        if i % checkpoint == 0:
            flush(event.occurred_at)
    flush(latest)

    last = latest.replace(microsecond=0)
    reads = [last + after for after in READ_AFTER]
    scorer.forward_reports(
        (s for _, s in sorted(states.items()) if isinstance(s, CollectionState)), reads[0]
    )
    entities = dict(states)
    for key, wallet in scorer.wallets.items():
        entities[key] = wallet
    states_by_group: dict[str, Any] = {}
    scores_by_group: dict[str, Any] = {}
    for key in sorted(entities):
        state = entities[key]
        group = _group(key)
        if group not in states_by_group:
            states_by_group[group] = hashlib.sha256()
            scores_by_group[group] = hashlib.sha256()
        states_by_group[group].update(key.encode() + b"\0" + encode_state(state) + b"\0")
        for now in reads:
            scores_by_group[group].update(_score_encoder.encode(scorer.score(state, now)) + b"\0")
    return {
        "events": len(events),
        "checkpoint": checkpoint,
        "entities": len(entities),
        "trace": trace.hexdigest(),
        "states": {g: h.hexdigest()[:16] for g, h in states_by_group.items()},
        "scores": {g: h.hexdigest()[:16] for g, h in scores_by_group.items()},
    }


def corpora() -> Iterator[tuple[str, list[Envelope], int]]:
    yield "traffic", traffic_events(), 2_500
    yield "crowd", traffic_events(6_000, CROWD_MARKET), 500
    yield "edge", edge_events(), 50


def compute() -> dict[str, Any]:
    return {name: digest(events, checkpoint) for name, events, checkpoint in corpora()}


def main(argv: list[str]) -> None:
    if argv != ["--write"]:
        raise SystemExit("usage: python -m tests.scoring.golden --write")
    GOLDEN.parent.mkdir(exist_ok=True)
    result = compute()
    GOLDEN.write_text(json.dumps(result, indent=0, sort_keys=True) + "\n")
    for name, d in result.items():
        print(f"{name}: {d['events']} events, {d['entities']} entities, trace {d['trace']}")


if __name__ == "__main__":
    main(sys.argv[1:])

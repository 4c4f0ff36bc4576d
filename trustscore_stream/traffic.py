"""A first, simple traffic generator (pure): contract envelopes for a small market.

The fixed input of the benchmarks and the scoring golden tests (so their figures stay
comparable); the demo and `trustscore-stream simulate` use the realistic market of
trustscore_stream/simulation/ instead.

Seeded and reproducible. Collections and wallets are drawn with a heavy tail (a few are
busy, most are quiet); the mix is mostly trades and transfers, with market data, social
signals, metadata updates and the occasional fraud finding.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# Share of each event type in the stream.
MIX: tuple[tuple[str, float], ...] = (
    ("sale", 0.30),
    ("transfer", 0.18),
    ("listing", 0.15),
    ("mint", 0.07),
    ("social_signal", 0.12),
    ("market_data", 0.08),
    ("metadata_update", 0.05),
    ("burn", 0.01),
    ("collection_verified", 0.01),
    ("fraud_finding", 0.03),
)


@dataclass(frozen=True, slots=True)
class Market:
    collections: int = 100
    nfts: int = 10_000
    wallets: int = 5_000
    seed: int = 7


def _address(rng: random.Random) -> str:
    return "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))


def _zipf_index(rng: random.Random, n: int, power: float = 2.5) -> int:
    # Heavy head: u**power crowds draws near index 0 (power 2.5: the top 10 % of
    # indexes get ~40 % of the draws).
    return min(n - 1, int(n * rng.random() ** power))


class TrafficGenerator:
    def __init__(self, market: Market, start: datetime | None = None) -> None:
        self.market = market
        self.rng = random.Random(market.seed)
        self.contracts = [_address(self.rng) for _ in range(market.collections)]
        self.wallets = [_address(self.rng) for _ in range(market.wallets)]
        self.clock = start or datetime.now(UTC)
        self.counter = 0
        types, weights = zip(*MIX, strict=True)
        self._types: list[str] = list(types)
        self._weights: list[float] = list(weights)

    def _envelope(self, kind: str) -> dict[str, Any]:
        rng = self.rng
        collection = _zipf_index(rng, self.market.collections)
        per_collection = max(1, self.market.nfts // self.market.collections)
        token = collection * per_collection + rng.randrange(per_collection)
        contract = self.contracts[collection]
        wallet_a = self.wallets[_zipf_index(rng, len(self.wallets))]
        wallet_b = self.wallets[rng.randrange(len(self.wallets))]
        price = f"{rng.lognormvariate(0, 1):.4f}"
        self.counter += 1
        self.clock += timedelta(milliseconds=rng.randint(0, 20))
        base: dict[str, Any] = {
            "event_id": f"sim-{self.market.seed}-{self.counter}",
            "type": kind,
            "source": "chain",
            "occurred_at": self.clock.isoformat().replace("+00:00", "Z"),
            "schema_version": 1,
            "chain": "eth",
            "contract": contract,
            "token_id": str(token),
        }
        payload: dict[str, Any]
        if kind == "sale":
            payload = {"seller": wallet_a, "buyer": wallet_b, "price": price, "currency": "ETH"}
            base["source"] = "marketplace"
        elif kind == "transfer":
            payload = {"from": wallet_a, "to": wallet_b}
        elif kind == "listing":
            payload = {"seller": wallet_a, "price": price, "currency": "ETH"}
            base["source"] = "marketplace"
        elif kind == "mint":
            payload = {"to": wallet_a, "creator": wallet_b}
        elif kind == "burn":
            payload = {"from": wallet_a}
        elif kind == "metadata_update":
            payload = {"fields": ["image"], "frozen": rng.random() < 0.3}
        elif kind == "market_data":
            base.pop("token_id")
            base["source"] = "market"
            payload = {"floor_price": price, "currency": "ETH", "holders": rng.randint(10, 9000)}
        elif kind == "collection_verified":
            base.pop("token_id")
            base["source"] = "internal"
            payload = {"verified": rng.random() < 0.8, "creator": wallet_b}
        elif kind == "social_signal":
            base.pop("token_id")
            base.pop("contract")
            base["source"] = "social"
            payload = {
                "entity": f"collection:eth:{contract}",
                "sentiment": round(rng.uniform(-1, 1), 3),
                "mentions": rng.randint(0, 500),
            }
        else:  # fraud_finding
            base.pop("token_id")
            base.pop("contract")
            base["source"] = "fraud"
            payload = {
                "entity": f"nft:eth:{contract}:{token}",
                "finding": rng.choice(["wash_trading", "stolen", "phishing", "other"]),
                "severity": rng.choice(["low", "medium", "high", "critical"]),
                "confidence": round(rng.uniform(0.3, 1.0), 2),
            }
        base["payload"] = payload
        return base

    def events(self, count: int | None = None) -> Iterator[dict[str, Any]]:
        produced = 0
        while count is None or produced < count:
            kind = self.rng.choices(self._types, self._weights)[0]
            yield self._envelope(kind)
            produced += 1

"""Shared helpers of the simulator tests: run a small simulation, read its events back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from trustscore_stream.simulation import MarketShape, Simulation, SimulationConfig

SMALL = MarketShape(collections=20, nfts=1_500, wallets=600)


def simulate(
    seed: int = 7,
    events: int = 4_000,
    shape: MarketShape = SMALL,
    scenarios: Mapping[str, int] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All envelopes and the labels document of one run."""
    sim = Simulation(SimulationConfig(seed=seed, events=events, shape=shape, scenarios=scenarios))
    envelopes = list(sim.events())
    return envelopes, sim.labels_document()


def jsonl(envelopes: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in envelopes)


def entities_of(envelope: dict[str, Any]) -> set[str]:
    """Every CONTRACT §1 id an envelope names (its NFT or collection, payload wallets,
    the payload's entity)."""
    found: set[str] = set()
    contract = envelope.get("contract")
    if contract:
        found.add(f"collection:eth:{contract}")
        if "token_id" in envelope:
            found.add(f"nft:eth:{contract}:{envelope['token_id']}")
    payload = envelope["payload"]
    for name in ("to", "from", "seller", "buyer", "creator"):
        if isinstance(payload.get(name), str):
            found.add(f"wallet:eth:{payload[name]}")
    if "entity" in payload:
        found.add(payload["entity"])
    return found

"""CONTRACT §2 envelopes as plain dicts, built from simulated facts.

Chain and marketplace events are named after their transaction (`<tx hash>:<log index>`, as
the chain source names them); events of the off-chain sources (market data, social, fraud,
verification) get `sim-<seed>-<source>-<serial>`. Money is a decimal string, never a float.
"""

from __future__ import annotations

import random
from typing import Any

from trustscore_stream.simulation.clock import TimeFormatter

CHAIN = "eth"
MARKETPLACES: tuple[str, ...] = ("opensea", "blur", "magiceden", "looksrare")
MARKETPLACE_CUM: tuple[float, ...] = (0.5, 0.85, 0.95, 1.0)  # shares 50, 35, 10, 5 %
PLATFORMS: tuple[str, ...] = ("x", "discord", "reddit", "telegram")

Envelope = dict[str, Any]


def money(amount: float) -> str:
    """A price as a decimal string: 4 decimals, at least 0.0001 (prices are positive)."""
    return f"{max(amount, 0.0001):.4f}"


def nft_entity(contract: str, token_id: str) -> str:
    return f"nft:{CHAIN}:{contract}:{token_id}"


def collection_entity(contract: str) -> str:
    return f"collection:{CHAIN}:{contract}"


def wallet_entity(address: str) -> str:
    return f"wallet:{CHAIN}:{address}"


class EnvelopeFactory:
    """Builds envelopes; owns the event-id serial and the transaction hashes."""

    def __init__(self, seed: int, rng: random.Random) -> None:
        self.seed = seed
        self.rng = rng
        self.serial = 0
        self.time = TimeFormatter()

    def tx_hash(self) -> str:
        return f"0x{self.rng.getrandbits(256):064x}"

    def _offchain_id(self, source: str) -> str:
        self.serial += 1
        return f"sim-{self.seed}-{source}-{self.serial}"

    def _base(self, event_id: str, kind: str, source: str, t: int) -> Envelope:
        return {
            "event_id": event_id,
            "type": kind,
            "source": source,
            "occurred_at": self.time(t),
            "schema_version": 1,
            "chain": CHAIN,
        }

    def _nft(
        self, kind: str, source: str, t: int, contract: str, token_id: str, tx: str, log: int
    ) -> Envelope:
        envelope = self._base(f"{tx}:{log}", kind, source, t)
        envelope["contract"] = contract
        envelope["token_id"] = token_id
        return envelope

    def marketplace(self) -> str:
        return self.rng.choices(MARKETPLACES, cum_weights=MARKETPLACE_CUM)[0]

    def mint(
        self, t: int, contract: str, token_id: str, to: str, creator: str, price: float
    ) -> Envelope:
        tx = self.tx_hash()
        envelope = self._nft("mint", "chain", t, contract, token_id, tx, self.rng.randrange(300))
        envelope["payload"] = {
            "to": to,
            "creator": creator,
            "price": money(price),
            "currency": "ETH",
            "tx_hash": tx,
        }
        return envelope

    def sale(
        self,
        t: int,
        contract: str,
        token_id: str,
        seller: str,
        buyer: str,
        price: float,
        *,
        currency: str = "ETH",
        marketplace: str | None = None,
        tx: str | None = None,
        log: int | None = None,
    ) -> Envelope:
        tx = tx or self.tx_hash()
        log = self.rng.randrange(300) if log is None else log
        envelope = self._nft("sale", "marketplace", t, contract, token_id, tx, log)
        envelope["payload"] = {
            "seller": seller,
            "buyer": buyer,
            "price": money(price),
            "currency": currency,
            "marketplace": marketplace or self.marketplace(),
            "tx_hash": tx,
        }
        return envelope

    def transfer(
        self,
        t: int,
        contract: str,
        token_id: str,
        frm: str,
        to: str,
        *,
        tx: str | None = None,
        log: int | None = None,
    ) -> Envelope:
        tx = tx or self.tx_hash()
        log = self.rng.randrange(300) if log is None else log
        envelope = self._nft("transfer", "chain", t, contract, token_id, tx, log)
        envelope["payload"] = {"from": frm, "to": to, "tx_hash": tx}
        return envelope

    def listing(
        self, t: int, contract: str, token_id: str, seller: str, price: float, marketplace: str
    ) -> Envelope:
        # A listing has no transaction: its id is the marketplace's order id.
        self.serial += 1
        envelope = self._base(
            f"{marketplace}-order-{self.seed}-{self.serial}", "listing", "marketplace", t
        )
        envelope["contract"] = contract
        envelope["token_id"] = token_id
        envelope["payload"] = {
            "seller": seller,
            "price": money(price),
            "currency": "ETH",
            "marketplace": marketplace,
        }
        return envelope

    def burn(self, t: int, contract: str, token_id: str, frm: str) -> Envelope:
        tx = self.tx_hash()
        envelope = self._nft("burn", "chain", t, contract, token_id, tx, self.rng.randrange(300))
        envelope["payload"] = {"from": frm}
        return envelope

    def metadata_update(
        self, t: int, contract: str, token_id: str, fields: list[str], frozen: bool | None
    ) -> Envelope:
        envelope = self._base(self._offchain_id("metadata"), "metadata_update", "chain", t)
        envelope["contract"] = contract
        envelope["token_id"] = token_id
        payload: dict[str, Any] = {"fields": fields}
        if frozen is not None:
            payload["frozen"] = frozen
        envelope["payload"] = payload
        return envelope

    def market_data(
        self,
        t: int,
        contract: str,
        floor: float,
        volume_24h: float,
        sales_24h: int,
        holders: int,
    ) -> Envelope:
        envelope = self._base(self._offchain_id("market"), "market_data", "market", t)
        envelope["contract"] = contract
        envelope["payload"] = {
            "floor_price": money(floor),
            "currency": "ETH",
            "volume_24h": f"{volume_24h:.4f}",
            "sales_24h": sales_24h,
            "holders": holders,
        }
        return envelope

    def collection_verified(
        self, t: int, contract: str, creator: str, audit_score: float
    ) -> Envelope:
        envelope = self._base(
            self._offchain_id("verification"), "collection_verified", "internal", t
        )
        envelope["contract"] = contract
        envelope["payload"] = {"verified": True, "creator": creator, "audit_score": audit_score}
        return envelope

    def fraud_finding(
        self,
        t: int,
        entity: str,
        finding: str,
        severity: str,
        confidence: float,
        evidence: str,
    ) -> Envelope:
        envelope = self._base(self._offchain_id("fraud"), "fraud_finding", "fraud", t)
        envelope["payload"] = {
            "entity": entity,
            "finding": finding,
            "severity": severity,
            "confidence": confidence,
            "evidence": evidence,
        }
        return envelope

    def social_signal(self, t: int, entity: str, sentiment: float, mentions: int) -> Envelope:
        envelope = self._base(self._offchain_id("social"), "social_signal", "social", t)
        envelope["payload"] = {
            "entity": entity,
            "sentiment": round(max(-1.0, min(1.0, sentiment)), 3),
            "mentions": max(0, mentions),
            "platform": self.rng.choice(PLATFORMS),
        }
        return envelope

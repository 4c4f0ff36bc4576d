"""Valid CONTRACT §2 envelopes for scoring tests, built through msgspec validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import msgspec

from trustscore_stream.events.envelope import Envelope, decode_envelope

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CONTRACT = "0x" + "c0" * 20
OTHER_CONTRACT = "0x" + "c1" * 20
CHAIN = "eth"

_ids = count(1)


def wallet(n: int) -> str:
    """A distinct, valid, lower-case address per small integer."""
    return "0x" + f"{n:040x}"


A, B, C, D, E, F = (wallet(i) for i in range(0xA, 0x10))
CREATOR = wallet(0xCAFE)


def at(hours: float = 0.0, *, days: float = 0.0) -> datetime:
    return T0 + timedelta(hours=hours, days=days)


def nft_key(token: str = "1", contract: str = CONTRACT) -> str:
    return f"nft:{CHAIN}:{contract}:{token}"


def coll_key(contract: str = CONTRACT) -> str:
    return f"collection:{CHAIN}:{contract}"


def wallet_key(address: str) -> str:
    return f"wallet:{CHAIN}:{address}"


def envelope(type_: str, payload: dict[str, Any], when: datetime, **extra: Any) -> Envelope:
    raw: dict[str, Any] = {
        "event_id": extra.pop("event_id", None) or f"ev-{next(_ids)}",
        "type": type_,
        "source": extra.pop("source", "chain"),
        "occurred_at": when.isoformat(),
        "schema_version": 1,
        "chain": CHAIN,
        "payload": payload,
        **extra,
    }
    return decode_envelope(msgspec.json.encode(raw))


def _nft(token: str, contract: str) -> dict[str, Any]:
    return {"contract": contract, "token_id": token}


def mint(
    to: str,
    when: datetime,
    *,
    token: str = "1",
    creator: str | None = None,
    contract: str = CONTRACT,
    **kw: Any,
) -> Envelope:
    payload: dict[str, Any] = {"to": to}
    if creator:
        payload["creator"] = creator
    return envelope("mint", payload, when, **_nft(token, contract), **kw)


def transfer(
    frm: str,
    to: str,
    when: datetime,
    *,
    token: str = "1",
    contract: str = CONTRACT,
    tx: str | None = None,
    **kw: Any,
) -> Envelope:
    payload: dict[str, Any] = {"from": frm, "to": to}
    if tx:
        payload["tx_hash"] = tx
    return envelope("transfer", payload, when, **_nft(token, contract), **kw)


def sale(
    seller: str,
    buyer: str,
    when: datetime,
    *,
    price: str = "1.0",
    token: str = "1",
    contract: str = CONTRACT,
    currency: str = "ETH",
    tx: str | None = None,
    **kw: Any,
) -> Envelope:
    payload: dict[str, Any] = {
        "seller": seller,
        "buyer": buyer,
        "price": price,
        "currency": currency,
    }
    if tx:
        payload["tx_hash"] = tx
    return envelope("sale", payload, when, source="marketplace", **_nft(token, contract), **kw)


def listing(
    seller: str,
    when: datetime,
    *,
    price: str = "1.0",
    token: str = "1",
    contract: str = CONTRACT,
    **kw: Any,
) -> Envelope:
    payload = {"seller": seller, "price": price, "currency": "ETH"}
    return envelope("listing", payload, when, source="marketplace", **_nft(token, contract), **kw)


def burn(
    frm: str, when: datetime, *, token: str = "1", contract: str = CONTRACT, **kw: Any
) -> Envelope:
    return envelope("burn", {"from": frm}, when, **_nft(token, contract), **kw)


def metadata(
    fields: list[str],
    when: datetime,
    *,
    frozen: bool | None = None,
    token: str = "1",
    contract: str = CONTRACT,
    **kw: Any,
) -> Envelope:
    payload: dict[str, Any] = {"fields": fields}
    if frozen is not None:
        payload["frozen"] = frozen
    return envelope("metadata_update", payload, when, **_nft(token, contract), **kw)


def market(
    floor: str,
    when: datetime,
    *,
    contract: str = CONTRACT,
    holders: int | None = None,
    sales_24h: int | None = None,
    volume_24h: str | None = None,
    currency: str = "ETH",
    **kw: Any,
) -> Envelope:
    payload: dict[str, Any] = {"floor_price": floor, "currency": currency}
    if holders is not None:
        payload["holders"] = holders
    if sales_24h is not None:
        payload["sales_24h"] = sales_24h
    if volume_24h is not None:
        payload["volume_24h"] = volume_24h
    return envelope("market_data", payload, when, source="market", contract=contract, **kw)


def verified(
    ok: bool,
    when: datetime,
    *,
    creator: str | None = None,
    audit: float | None = None,
    contract: str = CONTRACT,
    **kw: Any,
) -> Envelope:
    payload: dict[str, Any] = {"verified": ok}
    if creator:
        payload["creator"] = creator
    if audit is not None:
        payload["audit_score"] = audit
    return envelope(
        "collection_verified", payload, when, source="internal", contract=contract, **kw
    )


def finding(
    entity: str,
    kind: str,
    severity: str,
    confidence: float,
    when: datetime,
    *,
    resolved: bool | None = None,
    **kw: Any,
) -> Envelope:
    payload: dict[str, Any] = {
        "entity": entity,
        "finding": kind,
        "severity": severity,
        "confidence": confidence,
    }
    if resolved is not None:
        payload["resolved"] = resolved
    return envelope("fraud_finding", payload, when, source="fraud", **kw)


def signal(entity: str, sentiment: float, mentions: int, when: datetime, **kw: Any) -> Envelope:
    payload = {"entity": entity, "sentiment": sentiment, "mentions": mentions}
    return envelope("social_signal", payload, when, source="social", **kw)

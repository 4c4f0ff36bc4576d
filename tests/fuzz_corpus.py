"""A reproducible corpus of hostile input records for `trustscore-events`: valid envelopes of
every type, valid-but-edge values, and mutations of them (wrong types, missing fields, huge
strings, deep nesting, invalid UTF-8, repeated ids, random bytes, ...), as single and batch
records. Everything comes from one `random.Random(seed)`, so a seed names one corpus and its
counts can be written down. Used by the fuzzing drill and the decoder's property tests."""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Callable
from typing import Any

from trustscore_stream.events.envelope import EVENT_TYPES

CONTRACTS = [f"0x{i:02x}" + "f7" * 19 for i in range(6)]
WALLETS = [f"0x{i:02x}" + "c3" * 19 for i in range(6)]
NESTING = 3000
# Records stay below the broker's default message limit (1 MiB).
MAX_RECORD = 900_000  # past msgspec's recursion limit (~1,000 levels)


def dumps(value: Any) -> bytes:
    """Compact JSON; the standard library's encoder, since orjson refuses integers beyond
    64 bits, which a producer may well send."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def address(rng: random.Random) -> str:
    return rng.choice(WALLETS)


def _payload(rng: random.Random, kind: str, contract: str, token: str) -> dict[str, Any]:
    if kind == "mint":
        return {"to": address(rng), "creator": address(rng), "price": "0.5", "currency": "ETH"}
    if kind == "transfer":
        return {"from": address(rng), "to": address(rng)}
    if kind == "sale":
        price = f"{rng.randint(0, 50)}.{rng.randint(0, 99):02d}"
        return {"seller": address(rng), "buyer": address(rng), "price": price, "currency": "ETH"}
    if kind == "listing":
        return {"seller": address(rng), "price": "3", "currency": "ETH", "marketplace": "x"}
    if kind == "burn":
        return {"from": address(rng)}
    if kind == "metadata_update":
        return {"fields": ["image", "name"], "frozen": rng.random() < 0.5}
    if kind == "market_data":
        return {"floor_price": "1.5", "currency": "ETH", "sales_24h": 10, "holders": 300}
    if kind == "collection_verified":
        return {"verified": True, "creator": address(rng), "audit_score": 80}
    entity = rng.choice(
        [f"nft:eth:{contract}:{token}", f"collection:eth:{contract}", f"wallet:eth:{address(rng)}"]
    )
    if kind == "fraud_finding":
        return {
            "entity": entity,
            "finding": rng.choice(["wash_trading", "stolen", "rug_pull", "other"]),
            "severity": rng.choice(["low", "medium", "high", "critical"]),
            "confidence": round(rng.random(), 3),
        }
    return {"entity": entity, "sentiment": round(rng.uniform(-1, 1), 3), "mentions": 7}


def valid(rng: random.Random, event_id: str) -> dict[str, Any]:
    kind = rng.choice(EVENT_TYPES)
    contract, token = rng.choice(CONTRACTS), str(rng.randint(1, 20))
    envelope: dict[str, Any] = {
        "event_id": event_id,
        "type": kind,
        "source": rng.choice(["chain", "marketplace", "fraud", "social", "market", "internal"]),
        "occurred_at": f"2026-11-{rng.randint(1, 22):02d}T{rng.randint(0, 23):02d}:15:02Z",
        "schema_version": 1,
        "payload": _payload(rng, kind, contract, token),
    }
    if kind not in ("fraud_finding", "social_signal"):
        envelope["contract"] = contract
        envelope["token_id"] = token
    return envelope


# --- valid but at the edges of what the contract allows ------------------------------------


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(envelope: dict[str, Any]) -> None:
        target = envelope
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value

    return apply


EDGES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    (
        "event_id 200 chars",
        lambda e: e.update(event_id=e["event_id"] + "é" * (200 - len(e["event_id"]))),
    ),
    ("occurred_at year 1", _set(("occurred_at",), "0001-01-01T00:00:00Z")),
    ("occurred_at year 9999", _set(("occurred_at",), "9999-12-31T23:59:59.999999+14:00")),
    ("occurred_at odd zone", _set(("occurred_at",), "2026-11-22T10:15:02-23:59")),
    ("token_id 78 digits", _set(("token_id",), "9" * 78)),
    ("token_id zeros", _set(("token_id",), "0" * 78)),
    ("chain 32 chars", _set(("chain",), "A" + "b-" * 15 + "c")),
    (
        "contract upper hex",
        lambda e: e.update(contract="0x" + "AB" * 20) if "contract" in e else None,
    ),
    ("price max", _set(("payload", "price"), "9" * 30 + "." + "9" * 30)),
    ("price zero", _set(("payload", "price"), "0.000000000000000000000000000000")),
    ("floor max", _set(("payload", "floor_price"), "9" * 30)),
    ("counts huge", _set(("payload", "holders"), 2**63 - 1)),
    ("sales huge", _set(("payload", "sales_24h"), 2**64 - 1)),
    ("mentions huge", _set(("payload", "mentions"), 2**63 - 1)),
    ("sentiment -1", _set(("payload", "sentiment"), -1.0)),
    ("confidence 0", _set(("payload", "confidence"), 0.0)),
    ("confidence 1", _set(("payload", "confidence"), 1)),
    ("audit 100", _set(("payload", "audit_score"), 100)),
    ("audit tiny", _set(("payload", "audit_score"), 5e-324)),
    ("fields 256", _set(("payload", "fields"), ["f" * 128] * 256)),
    ("evidence 4096", _set(("payload", "evidence"), "ü" * 4096)),
    ("marketplace 128", _set(("payload", "marketplace"), "\u0000\u2028" * 64)),
    ("unknown extra field", _set(("extra",), {"nested": [1, 2, {"x": None}]})),
    ("currency 16", _set(("payload", "currency"), "Ξ" * 16)),
]


# --- invalid ---------------------------------------------------------------------------------


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value (what a confused producer might put anywhere)."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 2**53, -(2**63) - 1, 2**64, 10**40, rng.randint(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1e308, -1e-308, rng.uniform(-1e6, 1e6)])
    if kind == 4:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 20)))
    if kind == 5:
        return rng.choice(["", "\u0000", "\ud7ff\ue000", "🦄" * 5, "0x", "nft:eth:0x12:1"])
    if kind == 6:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice(["a", "type", "event_id", "payload"]): json_value(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def _field_path(rng: random.Random, envelope: dict[str, Any]) -> tuple[str, ...]:
    key = rng.choice(list(envelope))
    if key == "payload" and isinstance(envelope["payload"], dict) and rng.random() < 0.6:
        inner = list(envelope["payload"])
        if inner:
            return ("payload", rng.choice(inner))
    return (key,)


def _replace(envelope: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = envelope
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _drop(envelope: dict[str, Any], path: tuple[str, ...]) -> None:
    target = envelope
    for part in path[:-1]:
        target = target[part]
    target.pop(path[-1])


# Mutations whose result is still one JSON value: inside a batch record they break one item,
# not the whole record.
JSON_LEVEL = (0, 1, 2, 5, 8, 10, 11, 12)


def mutate(
    rng: random.Random, envelope: dict[str, Any], in_batch: bool = False
) -> tuple[str, bytes]:
    """(mutation name, record bytes) of one broken envelope."""
    kind = rng.choice(JSON_LEVEL) if in_batch and rng.random() < 0.9 else rng.randrange(14)
    path = _field_path(rng, envelope)
    if kind == 0:
        _replace(envelope, path, json_value(rng))
        return "wrong type", dumps(envelope)
    if kind == 1:
        _drop(envelope, path)
        return "missing field", dumps(envelope)
    if kind == 2:
        _replace(envelope, path, "x" * rng.choice([300, 5000, 70_000, 200_000]))
        return "huge string", dumps(envelope)
    if kind == 3:
        _replace(envelope, path, "\u0000")  # placeholder, replaced by raw nesting below
        deep = b"[" * NESTING + b"]" * NESTING
        return "deep nesting", dumps(envelope).replace(b'"\\u0000"', deep, 1)
    if kind == 4:
        raw = dumps(envelope)
        at = rng.randrange(len(raw))
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
        return "invalid utf-8", raw[:at] + bad + raw[at:]
    if kind == 5:
        envelope["type"] = rng.choice(["teleport", "", "SALE", "sale ", None, 7])
        return "unknown type", dumps(envelope)
    if kind == 6:
        return "random bytes", rng.randbytes(rng.randint(0, 400))
    if kind == 7:
        raw = dumps(envelope)
        return "truncated", raw[: rng.randrange(len(raw))]
    if kind == 8:
        return "scalar", dumps(json_value(rng))
    if kind == 9:
        raw = dumps(envelope)
        return "literal NaN", raw.replace(b"{", b'{"nan":NaN,"inf":-Infinity,', 1)
    if kind == 10:
        raw = dumps(envelope)
        return "duplicate key", raw.replace(b"{", b'{"type":"burn",', 1)
    if kind == 11:
        raw = dumps(envelope)
        return "lone surrogate", raw.replace(b'"event_id":"', b'"event_id":"\\ud800', 1)
    if kind == 12:
        envelope["schema_version"] = rng.choice([0, 2, "1", 1.0, True])
        return "schema version", dumps(envelope)
    return "bom and whitespace", b"\xef\xbb\xbf \n" + dumps(envelope)


# --- records ---------------------------------------------------------------------------------


def item(
    rng: random.Random, n: int, seen: list[dict[str, Any]], in_batch: bool = False
) -> tuple[str, bytes]:
    """(what, bytes) of one envelope: valid, edge, a repeat of an earlier id, or broken."""
    roll = rng.random()
    if roll < 0.3:
        envelope = valid(rng, f"fz-{n}")
        seen.append(copy.deepcopy(envelope))
        return "valid", dumps(envelope)
    if roll < 0.45:
        name, edge = rng.choice(EDGES)
        envelope = valid(rng, f"fz-{n}")
        edge(envelope)
        seen.append(copy.deepcopy(envelope))
        return f"edge: {name}", dumps(envelope)
    if roll < 0.55 and seen:
        # A producer's retry: the same event again, or the same id and entity with other
        # details (dedup is by id within the entity's partition; an id reused for an event
        # about another collection is a different event to the pipeline).
        envelope = copy.deepcopy(rng.choice(seen))
        if rng.random() < 0.3:
            envelope["occurred_at"] = "2026-11-23T00:00:00Z"
        return "repeated id", dumps(envelope)
    return mutate(rng, valid(rng, f"fz-{n}"), in_batch)


def corpus(seed: int, records: int) -> list[tuple[str, bytes]]:
    """`records` input records: (what, bytes). About a fifth are batch records."""
    rng = random.Random(seed)
    seen: list[dict[str, Any]] = []
    out: list[tuple[str, bytes]] = []
    n = 0
    for _ in range(records):
        roll = rng.random()
        if roll < 0.02:
            out.append(("empty batch", b"[]"))
        elif roll < 0.2:
            size = rng.randint(1, 40)
            parts: list[bytes] = []
            for _ in range(size):
                _, raw = item(rng, n, seen, in_batch=True)
                n += 1
                if sum(map(len, parts)) + len(raw) < MAX_RECORD:
                    parts.append(raw)
            out.append((f"batch of {len(parts)}", b"[" + b",".join(parts) + b"]"))
        elif roll < 0.21:
            over = [dumps(valid(rng, f"fz-over-{n}-{i}")) for i in range(1001)]
            n += 1
            out.append(("batch of 1001", b"[" + b",".join(over) + b"]"))
        else:
            what, raw = item(rng, n, seen)
            n += 1
            out.append((what, raw))
    return out

"""Decode + strict validation of CONTRACT §2 envelopes: msgspec (the project's) vs pydantic v2.

    .venv/bin/python bench/decode.py [--events 100000] [--repeat 5]

(a) msgspec: `trustscore_stream.events.decoding.decode_record`, the ingest entry point (one
    envelope, or a batch record through `envelope.decode_envelopes`); the bare msgspec
    decoders (`decode_envelope` / `decode_envelopes`) are timed too, to show the wrapper's cost.
(b) pydantic: the same envelope written below as strict models, a discriminated union on
    `type`, decoded with `TypeAdapter(Envelope).validate_json` (single records) and
    `TypeAdapter(list[Envelope]).validate_json` (batch records).

Before timing, both must accept every generated envelope with identical normalised results
and reject the same hand-made bad inputs. The markdown table goes to stdout, progress to
stderr.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import orjson
import pydantic
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustscore_stream.events.decoding import decode_record  # noqa: E402
from trustscore_stream.events.envelope import decode_envelope, decode_envelopes  # noqa: E402
from trustscore_stream.events.ids import parse_entity_id  # noqa: E402
from trustscore_stream.traffic import Market, TrafficGenerator  # noqa: E402

BATCH_SIZE = 100

# --- (b) the pydantic envelope ------------------------------------------------------------
# Same constraints as trustscore_stream/events/envelope.py (itself CONTRACT §2).


def _canonical_token(token_id: str) -> str:
    # "007" and "7" name one token; the pattern guarantees digits only.
    return str(int(token_id)) if token_id[0] == "0" and len(token_id) > 1 else token_id


def _entity(raw: str) -> str:
    return str(parse_entity_id(raw))  # InvalidEntityId is a ValueError: a validation error


EventId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Money = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,30}(\.[0-9]{1,30})?$", max_length=64)]
Currency = Annotated[str, StringConstraints(min_length=1, max_length=16)]
Address = Annotated[
    str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$"), AfterValidator(str.lower)
]
TokenId = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{1,78}$"), AfterValidator(_canonical_token)
]
Chain = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$"), AfterValidator(str.lower)
]
ShortText = Annotated[str, StringConstraints(max_length=128)]
Hash = Annotated[str, StringConstraints(max_length=130)]
EntityRef = Annotated[str, StringConstraints(max_length=200), AfterValidator(_entity)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Sentiment = Annotated[float, Field(ge=-1.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]
Score100 = Annotated[float, Field(ge=0.0, le=100.0)]
Source = Literal["chain", "marketplace", "fraud", "social", "market", "internal"]
Finding = Literal[
    "wash_trading", "stolen", "phishing", "counterfeit", "rug_pull", "sanctioned", "other"
]
Severity = Literal["low", "medium", "high", "critical"]


class _Strict(BaseModel):
    # strict: no str→int/bool coercion, no number→datetime; unknown fields are ignored
    # (msgspec's default too).
    model_config = ConfigDict(strict=True, extra="ignore")


class MintPayload(_Strict):
    to: Address
    creator: Address | None = None
    price: Money | None = None
    currency: Currency | None = None
    tx_hash: Hash | None = None


class TransferPayload(_Strict):
    from_: Address = Field(alias="from")
    to: Address
    tx_hash: Hash | None = None


class SalePayload(_Strict):
    seller: Address
    buyer: Address
    price: Money
    currency: Currency
    marketplace: ShortText | None = None
    tx_hash: Hash | None = None


class ListingPayload(_Strict):
    seller: Address
    price: Money
    currency: Currency
    marketplace: ShortText | None = None


class BurnPayload(_Strict):
    from_: Address = Field(alias="from")


class MetadataUpdatePayload(_Strict):
    fields: Annotated[list[ShortText], Field(max_length=256)]
    frozen: bool | None = None


class MarketDataPayload(_Strict):
    floor_price: Money
    currency: Currency
    volume_24h: Money | None = None
    sales_24h: Count | None = None
    holders: Count | None = None


class CollectionVerifiedPayload(_Strict):
    verified: bool
    creator: Address | None = None
    audit_score: Score100 | None = None


class FraudFindingPayload(_Strict):
    entity: EntityRef
    finding: Finding
    severity: Severity
    confidence: Probability
    evidence: Annotated[str, StringConstraints(max_length=4096)] | None = None
    resolved: bool | None = None


class SocialSignalPayload(_Strict):
    entity: EntityRef
    sentiment: Sentiment
    mentions: Count
    platform: ShortText | None = None


class _Envelope(_Strict):
    event_id: EventId
    source: Source
    occurred_at: AwareDatetime
    schema_version: Literal[1]
    chain: Chain = "eth"


class _NftEnvelope(_Envelope):
    contract: Address
    token_id: TokenId


class _CollectionEnvelope(_Envelope):
    contract: Address
    token_id: TokenId | None = None


class _AnyEnvelope(_Envelope):
    contract: Address | None = None
    token_id: TokenId | None = None


class Mint(_NftEnvelope):
    type: Literal["mint"]
    payload: MintPayload


class Transfer(_NftEnvelope):
    type: Literal["transfer"]
    payload: TransferPayload


class Sale(_NftEnvelope):
    type: Literal["sale"]
    payload: SalePayload


class Listing(_NftEnvelope):
    type: Literal["listing"]
    payload: ListingPayload


class Burn(_NftEnvelope):
    type: Literal["burn"]
    payload: BurnPayload


class MetadataUpdate(_NftEnvelope):
    type: Literal["metadata_update"]
    payload: MetadataUpdatePayload


class MarketData(_CollectionEnvelope):
    type: Literal["market_data"]
    payload: MarketDataPayload


class CollectionVerified(_CollectionEnvelope):
    type: Literal["collection_verified"]
    payload: CollectionVerifiedPayload


class FraudFinding(_AnyEnvelope):
    type: Literal["fraud_finding"]
    payload: FraudFindingPayload


class SocialSignal(_AnyEnvelope):
    type: Literal["social_signal"]
    payload: SocialSignalPayload


Envelope = Annotated[
    Mint
    | Transfer
    | Sale
    | Listing
    | Burn
    | MetadataUpdate
    | MarketData
    | CollectionVerified
    | FraudFinding
    | SocialSignal,
    Field(discriminator="type"),
]

single_adapter: TypeAdapter[Any] = TypeAdapter(Envelope)
batch_adapter: TypeAdapter[list[Any]] = TypeAdapter(list[Envelope])


# --- input ----------------------------------------------------------------------------------


def generate(events: int) -> list[dict[str, Any]]:
    return list(TrafficGenerator(Market(collections=100, nfts=10_000, seed=1)).events(events))


def as_single(envelopes: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(e) for e in envelopes]


def as_batches(envelopes: list[dict[str, Any]]) -> list[bytes]:
    return [
        orjson.dumps(envelopes[i : i + BATCH_SIZE]) for i in range(0, len(envelopes), BATCH_SIZE)
    ]


# --- equivalence checks -------------------------------------------------------------------


def _comparable(view: dict[str, Any]) -> dict[str, Any]:
    # Wire names, datetimes as objects; absent optionals (None) and the default chain dropped
    # (msgspec's omit_defaults drops None fields but keeps a decoded "eth").
    out = {
        k: _comparable(v) if isinstance(v, dict) else v for k, v in view.items() if v is not None
    }
    if out.get("chain") == "eth":
        del out["chain"]
    return out


def msgspec_view(envelope: Any) -> dict[str, Any]:
    return _comparable(msgspec.to_builtins(envelope, builtin_types=(datetime,)))


def pydantic_view(model: BaseModel) -> dict[str, Any]:
    return _comparable(model.model_dump(by_alias=True))


def msgspec_accepts(raw: bytes) -> bool:
    decoded = decode_record(raw)
    return not decoded.rejections and len(decoded.envelopes) == 1


def pydantic_accepts(raw: bytes) -> bool:
    try:
        single_adapter.validate_json(raw)
    except ValidationError:
        return False
    return True


def check_valid_traffic(singles: list[bytes], batches: list[bytes], count: int) -> None:
    """Both accept every generated envelope, in both shapes, with identical results."""
    from_single: list[dict[str, Any]] = []
    for raw in singles:
        decoded = decode_record(raw)
        assert not decoded.rejections, decoded.rejections
        assert len(decoded.envelopes) == 1
        reference = msgspec_view(decoded.envelopes[0])
        assert pydantic_view(single_adapter.validate_json(raw)) == reference, raw
        from_single.append(reference)
    position = 0
    for raw in batches:
        decoded = decode_record(raw)
        assert decoded.is_batch and not decoded.rejections, decoded.rejections
        models = batch_adapter.validate_json(raw)
        assert len(models) == len(decoded.envelopes)
        for envelope, model in zip(decoded.envelopes, models, strict=True):
            reference = msgspec_view(envelope)
            assert reference == from_single[position]
            assert pydantic_view(model) == reference
            position += 1
    assert position == len(from_single) == count


def mutated(base: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    envelope: dict[str, Any] = orjson.loads(orjson.dumps(base))  # deep copy
    change(envelope)
    return envelope


def first_of(envelopes: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in envelopes if e["type"] == kind)


def _upper_addresses(envelope: dict[str, Any]) -> None:
    envelope["contract"] = "0x" + envelope["contract"][2:].upper()
    envelope["payload"]["buyer"] = "0x" + envelope["payload"]["buyer"][2:].upper()


def hand_made_cases(
    envelopes: list[dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(good, bad): unusual inputs both must accept (and normalise alike), and bad ones."""
    sale = first_of(envelopes, "sale")
    social = first_of(envelopes, "social_signal")
    fraud = first_of(envelopes, "fraud_finding")
    market = first_of(envelopes, "market_data")
    verified = first_of(envelopes, "collection_verified")
    good = {
        "upper-case addresses": mutated(sale, _upper_addresses),
        "token_id with leading zeros": mutated(sale, lambda e: e.__setitem__("token_id", "0042")),
        "offset timestamp": mutated(
            sale, lambda e: e.__setitem__("occurred_at", "2026-11-22T10:15:02.5+01:00")
        ),
        "upper-case chain": mutated(sale, lambda e: e.__setitem__("chain", "ETH")),
        "unknown extra field": mutated(sale, lambda e: e.__setitem__("note", "ignored")),
        "entity id to normalise": mutated(
            fraud,
            lambda e: e["payload"].__setitem__(
                "entity", e["payload"]["entity"].replace("nft:eth:0x", "nft:ETH:0X")
            ),
        ),
        "market_data with token_id": mutated(market, lambda e: e.__setitem__("token_id", "7")),
    }
    bad = {
        # the five the brief names
        "wrong type (token_id as number)": mutated(
            sale, lambda e: e.__setitem__("token_id", int(e["token_id"]))
        ),
        "missing field (payload.buyer)": mutated(sale, lambda e: e["payload"].pop("buyer")),
        "naive timestamp": mutated(
            sale, lambda e: e.__setitem__("occurred_at", "2026-11-22T10:15:02")
        ),
        "float money": mutated(sale, lambda e: e["payload"].__setitem__("price", 1.25)),
        "unknown type": mutated(sale, lambda e: e.__setitem__("type", "teleport")),
        # and more of the contract's rules
        "missing type": mutated(sale, lambda e: e.pop("type")),
        "missing token_id on an NFT type": mutated(sale, lambda e: e.pop("token_id")),
        "missing contract on a collection type": mutated(market, lambda e: e.pop("contract")),
        "wrong type (mentions as string)": mutated(
            social, lambda e: e["payload"].__setitem__("mentions", "5")
        ),
        "wrong type (verified as string)": mutated(
            verified, lambda e: e["payload"].__setitem__("verified", "yes")
        ),
        "exponent money": mutated(sale, lambda e: e["payload"].__setitem__("price", "1e3")),
        "negative money": mutated(sale, lambda e: e["payload"].__setitem__("price", "-1")),
        "timestamp not RFC 3339": mutated(sale, lambda e: e.__setitem__("occurred_at", "today")),
        "schema_version 2": mutated(sale, lambda e: e.__setitem__("schema_version", 2)),
        "event_id of 201 chars": mutated(sale, lambda e: e.__setitem__("event_id", "x" * 201)),
        "short address": mutated(sale, lambda e: e.__setitem__("contract", "0x12")),
        "token_id not decimal": mutated(sale, lambda e: e.__setitem__("token_id", "0x1f")),
        "unknown source": mutated(sale, lambda e: e.__setitem__("source", "rumour")),
        "unknown severity": mutated(
            fraud, lambda e: e["payload"].__setitem__("severity", "extreme")
        ),
        "unknown finding": mutated(fraud, lambda e: e["payload"].__setitem__("finding", "spam")),
        "confidence 1.5": mutated(fraud, lambda e: e["payload"].__setitem__("confidence", 1.5)),
        "malformed entity id": mutated(
            fraud, lambda e: e["payload"].__setitem__("entity", "nft:eth:0x12:1")
        ),
        "sentiment -1.2": mutated(social, lambda e: e["payload"].__setitem__("sentiment", -1.2)),
        "mentions -1": mutated(social, lambda e: e["payload"].__setitem__("mentions", -1)),
        "mentions 2.0": mutated(social, lambda e: e["payload"].__setitem__("mentions", 2.0)),
    }
    return good, bad


# Inputs the contract rejects but msgspec's `re.search` patterns let through: `$` also
# matches before a trailing newline. Reported, not asserted, until envelope.py uses `\Z`.
def divergence_probes(envelopes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    sale = first_of(envelopes, "sale")
    return {
        "contract + trailing \\n": mutated(
            sale, lambda e: e.__setitem__("contract", e["contract"] + "\n")
        ),
        "price + trailing \\n": mutated(sale, lambda e: e["payload"].__setitem__("price", "1.5\n")),
        "token_id + trailing \\n": mutated(sale, lambda e: e.__setitem__("token_id", "42\n")),
    }


def check_hand_made(envelopes: list[dict[str, Any]]) -> None:
    good, bad = hand_made_cases(envelopes)
    for name, envelope in good.items():
        raw = orjson.dumps(envelope)
        decoded = decode_record(raw)
        assert not decoded.rejections, (name, decoded.rejections)
        model = single_adapter.validate_json(raw)
        assert pydantic_view(model) == msgspec_view(decoded.envelopes[0]), name
    raws = {name: orjson.dumps(envelope) for name, envelope in bad.items()}
    rejected_by_msgspec = {name for name, raw in raws.items() if not msgspec_accepts(raw)}
    rejected_by_pydantic = {name for name, raw in raws.items() if not pydantic_accepts(raw)}
    assert rejected_by_msgspec == rejected_by_pydantic == set(raws), (
        "rejected by msgspec only:",
        sorted(rejected_by_msgspec - rejected_by_pydantic),
        "by pydantic only:",
        sorted(rejected_by_pydantic - rejected_by_msgspec),
        "by neither:",
        sorted(set(raws) - rejected_by_msgspec - rejected_by_pydantic),
    )
    # Inside a batch record: the same items are singled out, by index.
    items: list[dict[str, Any]] = []
    for envelope in bad.values():
        items += [envelopes[len(items)], envelope]
    batch = orjson.dumps(items)
    decoded = decode_record(batch)
    msgspec_indexes = {r.index for r in decoded.rejections}
    try:
        batch_adapter.validate_json(batch)
    except ValidationError as exc:
        pydantic_indexes = {error["loc"][0] for error in exc.errors()}
    else:
        pydantic_indexes = set()
    expected = set(range(1, len(items), 2))
    assert msgspec_indexes == pydantic_indexes == expected, (msgspec_indexes, pydantic_indexes)
    print(
        f"checked: {len(good)} unusual-but-valid inputs accepted alike, "
        f"{len(bad)} bad inputs rejected by both (alone and by index in a batch record)",
        file=sys.stderr,
    )


def divergences(envelopes: list[dict[str, Any]]) -> list[str]:
    notes = []
    for name, envelope in divergence_probes(envelopes).items():
        raw = orjson.dumps(envelope)
        by_msgspec, by_pydantic = msgspec_accepts(raw), pydantic_accepts(raw)
        if by_msgspec != by_pydantic:
            verdict = {True: "accepts", False: "rejects"}
            notes.append(f"{name}: msgspec {verdict[by_msgspec]}, pydantic {verdict[by_pydantic]}")
    return notes


# --- timing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    decoder: str
    shape: str
    records: list[bytes]
    decode: Callable[[bytes], object]


def run(case: Case) -> float:
    decode = case.decode
    gc.collect()
    start = time.perf_counter()
    for raw in case.records:
        decode(raw)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events: int = args.events
    repeat: int = args.repeat

    envelopes = generate(events)
    singles, batches = as_single(envelopes), as_batches(envelopes)
    check_valid_traffic(singles, batches, events)
    print(f"checked: both accept all {events:,} envelopes in both shapes, alike", file=sys.stderr)
    check_hand_made(envelopes)
    notes = divergences(envelopes)

    cases = [
        Case("msgspec decode_record", "single", singles, decode_record),
        Case("msgspec bare", "single", singles, decode_envelope),
        Case("pydantic", "single", singles, single_adapter.validate_json),
        Case("msgspec decode_record", "batch", batches, decode_record),
        Case("msgspec bare", "batch", batches, decode_envelopes),
        Case("pydantic", "batch", batches, batch_adapter.validate_json),
    ]
    for case in cases:  # warm-up (regex caches, lazily built validators)
        for raw in case.records[:100]:
            case.decode(raw)
    load_before = os.getloadavg()[0]
    timings: dict[tuple[str, str], list[float]] = {(c.decoder, c.shape): [] for c in cases}
    for round_ in range(repeat):  # interleaved, so drift hits every case alike
        for case in cases:
            timings[case.decoder, case.shape].append(run(case))
        print(f"round {round_ + 1}/{repeat} done", file=sys.stderr)
    per_envelope = {key: statistics.median(t) / events * 1e6 for key, t in timings.items()}

    print("## Envelope decode + strict validation: msgspec vs pydantic\n")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · Python {platform.python_version()} · "
        f"{os.cpu_count()} CPUs · {platform.machine()} {platform.system()} · "
        f"msgspec {msgspec.__version__} · pydantic {pydantic.VERSION} · "
        f"load average {load_before:.2f} before / {os.getloadavg()[0]:.2f} after timing\n"
    )
    print(
        f"{events:,} envelopes (TrafficGenerator seed 1), orjson-encoded one per record or "
        f"{BATCH_SIZE} per batch record; median of {repeat} runs; µs per envelope.\n"
    )
    print(
        "| shape | msgspec `decode_record` | msgspec bare decoder | pydantic `validate_json` "
        "| pydantic / msgspec |"
    )
    print("|---|---:|---:|---:|---:|")
    for shape in ("single", "batch"):
        ours = per_envelope["msgspec decode_record", shape]
        bare = per_envelope["msgspec bare", shape]
        theirs = per_envelope["pydantic", shape]
        print(f"| {shape} | {ours:.2f} | {bare:.2f} | {theirs:.2f} | {theirs / ours:.1f}× |")
    print(
        "\npydantic / msgspec compares with `decode_record` (what ingest runs). Bare decoder: "
        "`decode_envelope` / `decode_envelopes`, without the record wrapper."
    )
    if notes:
        print("\nKnown divergences (contract-invalid input msgspec lets through):")
        for note in notes:
            print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""The event envelope of CONTRACT §2 as strict, typed msgspec records.

Each event type is its own struct, tagged by `type`, with its own payload struct, so a
decode either yields a fully valid, normalised event or raises `msgspec.ValidationError`
naming the field. Decoding + validation is the ingest hot path; msgspec measured 1.0–1.4×
faster than an equivalent pydantic model (docs/benchmarks.md, `bench/decode.py`), and its
structs can be untracked by the garbage collector (`gc=False`), which mattered more in the
worker: batches of thousands of live envelopes made the cycle collector a top cost.

Lengths are checked by the decoder; the character classes of addresses, token ids, money
and chains by the structs' `__post_init__` with `str.strip` over the allowed characters
(an empty remainder means every character is allowed), not with `Meta(pattern=…)`: the
regular expressions cost 2–4 µs per envelope, as much as the rest of decoding, and the
worker decodes every event twice (ingest, then the scoring lanes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from trustscore_stream.events.ids import (
    InvalidEntityId,
    collection_id,
    nft_id,
    parse_entity_id,
)

MAX_ENVELOPE_BYTES = 64 * 1024
MAX_BATCH_ENVELOPES = 1000
SCHEMA_VERSION = 1

EventId = Annotated[str, Meta(min_length=1, max_length=200)]
# Shapes (the lengths here; the characters by `_money`, `_address`, `_token` and
# `_Envelope._normalise_chain`):
# Money `[0-9]{1,30}(.[0-9]{1,30})?`, Address `0x` + 40 hex digits, TokenId `[0-9]{1,78}`,
# Chain `[A-Za-z0-9][A-Za-z0-9-]{0,31}`.
Money = Annotated[str, Meta(min_length=1, max_length=61)]
Currency = Annotated[str, Meta(min_length=1, max_length=16)]
Address = Annotated[str, Meta(min_length=42, max_length=42)]
TokenId = Annotated[str, Meta(min_length=1, max_length=78)]
Chain = Annotated[str, Meta(min_length=1, max_length=32)]
ShortText = Annotated[str, Meta(max_length=128)]
Hash = Annotated[str, Meta(max_length=130)]
AwareTime = Annotated[datetime, Meta(tz=True)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
Sentiment = Annotated[float, Meta(ge=-1.0, le=1.0)]
Count = Annotated[int, Meta(ge=0)]
Score100 = Annotated[float, Meta(ge=0.0, le=100.0)]

Source = Literal["chain", "marketplace", "fraud", "social", "market", "internal"]
Finding = Literal[
    "wash_trading", "stolen", "phishing", "counterfeit", "rug_pull", "sanctioned", "other"
]
Severity = Literal["low", "medium", "high", "critical"]

EVENT_TYPES: tuple[str, ...] = (
    "mint",
    "transfer",
    "sale",
    "listing",
    "burn",
    "metadata_update",
    "market_data",
    "collection_verified",
    "fraud_finding",
    "social_signal",
)


_DIGITS = "0123456789"
_HEX_DIGITS = "0123456789abcdefABCDEF"
_CHAIN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"


def _address(value: str, name: str) -> str:
    """`0x` and 40 hex digits (the length is the decoder's check), lowercased."""
    if value[:2] != "0x" or value[2:].strip(_HEX_DIGITS):
        raise ValueError(f"`{name}` must be 0x and 40 hex digits, got {value!r}")
    return value.lower()


def _lower(address: str | None, name: str) -> str | None:
    return None if address is None else _address(address, name)


def _money(value: str | None, name: str) -> None:
    """A decimal string: 1–30 digits, optionally a point and 1–30 more."""
    if value is None:
        return
    whole, point, fraction = value.partition(".")
    if (
        not 0 < len(whole) <= 30
        or whole.strip(_DIGITS)
        or (point and (not 0 < len(fraction) <= 30 or fraction.strip(_DIGITS)))
    ):
        raise ValueError(f'`{name}` must be a decimal string like "1.25", got {value!r}')


def _token(token_id: str) -> str:
    """Decimal digits only (1–78 by the decoder), canonical: "007" and "7" name one token."""
    if token_id.strip(_DIGITS):
        raise ValueError(f"`token_id` must be decimal digits, got {token_id!r}")
    return str(int(token_id)) if token_id[0] == "0" and len(token_id) > 1 else token_id


# --- payloads -------------------------------------------------------------------------


class MintPayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    to: Address
    creator: Address | None = None
    price: Money | None = None
    currency: Currency | None = None
    tx_hash: Hash | None = None

    def __post_init__(self) -> None:
        self.to = _address(self.to, "to")
        self.creator = _lower(self.creator, "creator")
        _money(self.price, "price")


class TransferPayload(Struct, kw_only=True, omit_defaults=True, gc=False, rename={"from_": "from"}):
    from_: Address
    to: Address
    tx_hash: Hash | None = None

    def __post_init__(self) -> None:
        self.from_ = _address(self.from_, "from")
        self.to = _address(self.to, "to")


class SalePayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    seller: Address
    buyer: Address
    price: Money
    currency: Currency
    marketplace: ShortText | None = None
    tx_hash: Hash | None = None

    def __post_init__(self) -> None:
        self.seller = _address(self.seller, "seller")
        self.buyer = _address(self.buyer, "buyer")
        _money(self.price, "price")


class ListingPayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    seller: Address
    price: Money
    currency: Currency
    marketplace: ShortText | None = None

    def __post_init__(self) -> None:
        self.seller = _address(self.seller, "seller")
        _money(self.price, "price")


class BurnPayload(Struct, kw_only=True, omit_defaults=True, gc=False, rename={"from_": "from"}):
    from_: Address

    def __post_init__(self) -> None:
        self.from_ = _address(self.from_, "from")


class MetadataUpdatePayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    fields: Annotated[list[ShortText], Meta(max_length=256)]
    frozen: bool | None = None


class MarketDataPayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    floor_price: Money
    currency: Currency
    volume_24h: Money | None = None
    sales_24h: Count | None = None
    holders: Count | None = None

    def __post_init__(self) -> None:
        _money(self.floor_price, "floor_price")
        _money(self.volume_24h, "volume_24h")


class CollectionVerifiedPayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    verified: bool
    creator: Address | None = None
    audit_score: Score100 | None = None

    def __post_init__(self) -> None:
        self.creator = _lower(self.creator, "creator")


def _entity(raw: str) -> str:
    try:
        return str(parse_entity_id(raw))
    except InvalidEntityId as exc:
        raise ValueError(str(exc)) from None


class FraudFindingPayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    entity: Annotated[str, Meta(max_length=200)]
    finding: Finding
    severity: Severity
    confidence: Probability
    evidence: Annotated[str, Meta(max_length=4096)] | None = None
    resolved: bool | None = None

    def __post_init__(self) -> None:
        self.entity = _entity(self.entity)


class SocialSignalPayload(Struct, kw_only=True, omit_defaults=True, gc=False):
    entity: Annotated[str, Meta(max_length=200)]
    sentiment: Sentiment
    mentions: Count
    platform: ShortText | None = None

    def __post_init__(self) -> None:
        self.entity = _entity(self.entity)


# --- envelopes ------------------------------------------------------------------------


class _Envelope(Struct, kw_only=True, tag_field="type", omit_defaults=True, gc=False):
    """Fields every event has. Subclasses fix `type` (the tag) and the payload."""

    event_id: EventId
    source: Source
    occurred_at: AwareTime
    schema_version: Literal[1]
    chain: Chain = "eth"

    def _normalise_chain(self) -> None:
        if self.chain != "eth":
            if self.chain[0] == "-" or self.chain.strip(_CHAIN_CHARS):
                raise ValueError(
                    f"`chain` must be letters, digits and inner dashes, got {self.chain!r}"
                )
            self.chain = self.chain.lower()

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]

    @property
    def entity(self) -> str:
        """The entity the event is about (CONTRACT §1 id)."""
        raise NotImplementedError

    @property
    def partition_key(self) -> str:
        """The key that co-locates the event with the state it changes: its collection,
        or the wallet for wallet-level findings and signals."""
        raise NotImplementedError


class _NftEnvelope(_Envelope, kw_only=True):
    contract: Address
    token_id: TokenId

    def __post_init__(self) -> None:
        self._normalise_chain()
        self.contract = _address(self.contract, "contract")
        self.token_id = _token(self.token_id)

    @property
    def entity(self) -> str:
        return nft_id(self.chain, self.contract, self.token_id)

    @property
    def partition_key(self) -> str:
        return collection_id(self.chain, self.contract)


class _CollectionEnvelope(_Envelope, kw_only=True):
    contract: Address
    token_id: TokenId | None = None

    def __post_init__(self) -> None:
        self._normalise_chain()
        self.contract = _address(self.contract, "contract")
        if self.token_id is not None:
            self.token_id = _token(self.token_id)

    @property
    def entity(self) -> str:
        return collection_id(self.chain, self.contract)

    @property
    def partition_key(self) -> str:
        return collection_id(self.chain, self.contract)


class _AnyEnvelope(_Envelope, kw_only=True):
    contract: Address | None = None
    token_id: TokenId | None = None

    def __post_init__(self) -> None:
        self._normalise_chain()
        if self.contract is not None:
            self.contract = _address(self.contract, "contract")
        if self.token_id is not None:
            self.token_id = _token(self.token_id)

    @property
    def entity(self) -> str:
        return self.payload.entity  # type: ignore[attr-defined, no-any-return]

    @property
    def partition_key(self) -> str:
        # `entity` was normalised on decode: "kind:chain:address[:token]".
        kind, chain, address = self.entity.split(":", 3)[:3]
        return self.entity if kind == "wallet" else collection_id(chain, address)


class Mint(_NftEnvelope, kw_only=True, tag="mint"):
    payload: MintPayload


class Transfer(_NftEnvelope, kw_only=True, tag="transfer"):
    payload: TransferPayload


class Sale(_NftEnvelope, kw_only=True, tag="sale"):
    payload: SalePayload


class Listing(_NftEnvelope, kw_only=True, tag="listing"):
    payload: ListingPayload


class Burn(_NftEnvelope, kw_only=True, tag="burn"):
    payload: BurnPayload


class MetadataUpdate(_NftEnvelope, kw_only=True, tag="metadata_update"):
    payload: MetadataUpdatePayload


class MarketData(_CollectionEnvelope, kw_only=True, tag="market_data"):
    payload: MarketDataPayload


class CollectionVerified(_CollectionEnvelope, kw_only=True, tag="collection_verified"):
    payload: CollectionVerifiedPayload


class FraudFinding(_AnyEnvelope, kw_only=True, tag="fraud_finding"):
    payload: FraudFindingPayload


class SocialSignal(_AnyEnvelope, kw_only=True, tag="social_signal"):
    payload: SocialSignalPayload


Envelope = (
    Mint
    | Transfer
    | Sale
    | Listing
    | Burn
    | MetadataUpdate
    | MarketData
    | CollectionVerified
    | FraudFinding
    | SocialSignal
)

ENVELOPE_CLASSES: dict[str, type[_Envelope]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        Mint,
        Transfer,
        Sale,
        Listing,
        Burn,
        MetadataUpdate,
        MarketData,
        CollectionVerified,
        FraudFinding,
        SocialSignal,
    )
}

_decoder: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)  # type: ignore[arg-type]
_batch_decoder: msgspec.json.Decoder[list[Envelope]] = msgspec.json.Decoder(list[Envelope])  # type: ignore[valid-type]
_encoder = msgspec.json.Encoder()


def decode_envelope(raw: bytes | memoryview) -> Envelope:
    """Decode and validate one envelope; raise msgspec.DecodeError/ValidationError."""
    return _decoder.decode(raw)


def decode_envelopes(raw: bytes) -> list[Envelope]:
    """Decode a whole batch record in one pass; raises if any item is bad."""
    return _batch_decoder.decode(raw)


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def encode_envelopes(envelopes: list[Envelope]) -> bytes:
    """One JSON array of envelopes: the batch record shape of CONTRACT §2."""
    return _encoder.encode(envelopes)


def to_builtins(envelope: Envelope) -> dict[str, object]:
    return msgspec.to_builtins(envelope)  # type: ignore[no-any-return]

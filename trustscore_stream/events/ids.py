"""Entity identifiers (CONTRACT §1): parsing, normalisation and formatting.

Pure functions; no I/O. Addresses are lower-cased hex, `chain` defaults to `eth`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

EntityKind = Literal["nft", "collection", "wallet"]

DEFAULT_CHAIN = "eth"
# fullmatch, not `$`: `$` also matches before a trailing newline.
_CHAIN_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_ADDRESS_RE = re.compile(r"0x[0-9a-f]{40}")
_TOKEN_RE = re.compile(r"[0-9]{1,78}")


class InvalidEntityId(ValueError):
    """An entity id that does not follow CONTRACT §1."""


@dataclass(frozen=True, slots=True)
class EntityId:
    kind: EntityKind
    chain: str
    address: str  # contract for nft/collection, wallet address for wallet
    token_id: str | None = None

    def __str__(self) -> str:
        if self.kind == "nft":
            return f"nft:{self.chain}:{self.address}:{self.token_id}"
        return f"{self.kind}:{self.chain}:{self.address}"

    @property
    def collection(self) -> str | None:
        """The collection id this entity belongs to (itself for a collection)."""
        if self.kind == "wallet":
            return None
        return f"collection:{self.chain}:{self.address}"


def normalise_chain(chain: str) -> str:
    value = chain.strip().lower() or DEFAULT_CHAIN
    if not _CHAIN_RE.fullmatch(value):
        raise InvalidEntityId(f"invalid chain {chain!r}")
    return value


def normalise_address(address: str) -> str:
    value = address.strip().lower()
    if not _ADDRESS_RE.fullmatch(value):
        raise InvalidEntityId(f"invalid address {address!r}: expected 0x and 40 hex digits")
    return value


def normalise_token_id(token_id: str) -> str:
    if not _TOKEN_RE.fullmatch(token_id):
        raise InvalidEntityId(f"invalid token_id {token_id!r}: expected a decimal string")
    # Canonical decimal form, so "007" and "7" name one token.
    return str(int(token_id))


def parse_entity_id(raw: str) -> EntityId:
    """Parse and normalise an id of CONTRACT §1; raise InvalidEntityId if malformed."""
    parts = raw.split(":")
    kind = parts[0]
    if kind == "nft" and len(parts) == 4:
        return EntityId(
            "nft",
            normalise_chain(parts[1]),
            normalise_address(parts[2]),
            normalise_token_id(parts[3]),
        )
    if kind in ("collection", "wallet") and len(parts) == 3:
        return EntityId(kind, normalise_chain(parts[1]), normalise_address(parts[2]))  # type: ignore[arg-type]
    raise InvalidEntityId(
        f"invalid entity id {raw!r}: expected nft:chain:contract:token_id, "
        "collection:chain:contract or wallet:chain:address"
    )


def nft_id(chain: str, contract: str, token_id: str) -> str:
    return f"nft:{chain}:{contract}:{token_id}"


def collection_id(chain: str, contract: str) -> str:
    return f"collection:{chain}:{contract}"


def wallet_id(chain: str, address: str) -> str:
    return f"wallet:{chain}:{address}"

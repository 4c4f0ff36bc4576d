"""ERC-721 `Transfer` logs to CONTRACT §2 envelopes (pure).

A transfer from the zero address is a mint, one to the zero address a burn. A transfer in a
transaction that paid native currency is a sale: the price is the transaction's value (split
evenly when one paid transaction moves several tokens) and the marketplace is looked up by
the transaction's `to` address. ERC-20 uses the same event signature but does not index the
amount, so its logs have three topics, not four, and are ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ZERO_ADDRESS = "0x" + "0" * 40
WEI_PER_ETHER = 10**18


def hex0x(value: bytes | str) -> str:
    """Lower-case 0x-prefixed hex of bytes or a hex string."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = value.lower()
    return text if text.startswith("0x") else "0x" + text


def _topic_address(topic: str) -> str:
    return "0x" + topic[-40:]


@dataclass(frozen=True, slots=True)
class TransferLog:
    contract: str
    from_: str
    to: str
    token_id: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str

    @property
    def event_id(self) -> str:
        return f"{self.tx_hash}:{self.log_index}"


@dataclass(frozen=True, slots=True)
class PaidTx:
    """What a transaction paid and to whom (the marketplace contract, for a sale)."""

    value_wei: int
    to: str | None


def parse_transfer_log(log: Mapping[str, Any]) -> TransferLog | None:
    """A Transfer log as returned by `eth_getLogs` (web3 types or raw hex), or None when it
    is not an ERC-721 transfer."""
    topics = [hex0x(t) for t in log["topics"]]
    if len(topics) != 4 or topics[0] != TRANSFER_TOPIC:
        return None
    return TransferLog(
        contract=hex0x(log["address"]),
        from_=_topic_address(topics[1]),
        to=_topic_address(topics[2]),
        token_id=int(topics[3], 16),
        tx_hash=hex0x(log["transactionHash"]),
        log_index=_int(log["logIndex"]),
        block_number=_int(log["blockNumber"]),
        block_hash=hex0x(log["blockHash"]),
    )


def _int(value: int | str) -> int:
    return value if isinstance(value, int) else int(value, 16)


def wei_to_decimal(wei: int, scale: int = WEI_PER_ETHER) -> str:
    """Exact decimal string of an amount in the smallest unit ("1.25", never a float)."""
    whole, fraction = divmod(wei, scale)
    digits = len(str(scale)) - 1
    text = f"{whole}.{fraction:0{digits}d}".rstrip("0").rstrip(".")
    return text


def rfc3339_from_unix(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def envelopes_for(
    logs: Sequence[TransferLog],
    txs: Mapping[str, PaidTx],
    timestamps: Mapping[int, int],
    *,
    chain: str,
    currency: str,
    marketplaces: Mapping[str, str],
) -> list[dict[str, Any]]:
    """Envelopes (as JSON-ready dicts) for transfer logs in chain order."""
    moved_per_tx = Counter(log.tx_hash for log in logs)
    out: list[dict[str, Any]] = []
    for log in sorted(logs, key=lambda item: (item.block_number, item.log_index)):
        tx = txs.get(log.tx_hash, PaidTx(0, None))
        price = wei_to_decimal(tx.value_wei // moved_per_tx[log.tx_hash]) if tx.value_wei else None
        payload: dict[str, Any]
        if log.from_ == ZERO_ADDRESS:
            kind, payload = "mint", {"to": log.to, "tx_hash": log.tx_hash}
            if price is not None:
                payload.update(price=price, currency=currency)
        elif log.to == ZERO_ADDRESS:
            kind, payload = "burn", {"from": log.from_}
        elif price is not None:
            kind = "sale"
            payload = {
                "seller": log.from_,
                "buyer": log.to,
                "price": price,
                "currency": currency,
                "tx_hash": log.tx_hash,
            }
            marketplace = marketplaces.get(tx.to or "")
            if marketplace:
                payload["marketplace"] = marketplace
        else:
            kind, payload = "transfer", {"from": log.from_, "to": log.to, "tx_hash": log.tx_hash}
        out.append(
            {
                "event_id": log.event_id,
                "type": kind,
                "source": "chain",
                "occurred_at": rfc3339_from_unix(timestamps[log.block_number]),
                "schema_version": 1,
                "chain": chain,
                "contract": log.contract,
                "token_id": str(log.token_id),
                "payload": payload,
            }
        )
    return out

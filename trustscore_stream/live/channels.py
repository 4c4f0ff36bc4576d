"""Which channels a record reaches, and which channels a client asked for (CONTRACT §4).

A score change reaches its entity's channel, its collection's channel (for an NFT: "a
collection id also delivers the score changes of its NFTs") and the firehose. A
notification reaches its user's channel. Channel names are internal; entity ids are
already normalised by the scoring stage that produced them.
"""

from __future__ import annotations

FIREHOSE = "*"  # every score change (`?all=1`, the dashboard's live feed)


def user_channel(user_id: str) -> str:
    return f"user:{user_id}"


def score_channels(entity: str) -> tuple[str, ...]:
    if entity.startswith("nft:"):
        # nft:{chain}:{contract}:{token} -> collection:{chain}:{contract}
        collection = "collection:" + entity[4:].rpartition(":")[0]
        return (entity, collection, FIREHOSE)
    return (entity, FIREHOSE)

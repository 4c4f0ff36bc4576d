"""Entities someone watches (subscriptions, dashboards): they are rescored eagerly when
state they depend on changes; every other entity is rescored lazily, on read.

Table `watched`: key = entity id (bytes), value = number of watchers (ASCII int), stored on
the partition of the entity's partition key (an NFT on its collection's), fed by the
`trustscore-watch` topic (records `{"entity": id, "watchers": +n|-n}` sent to that
partition). In memory: collection id -> watched NFT ids, rebuilt after each rebalance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

import faust
from faust.types import TableT

from trustscore_stream.events.ids import parse_entity_id
from trustscore_stream.settings import Settings
from trustscore_stream.tables.rocksdb import bytes_table

TABLE_NAME = "watched"


def declare_watched_table(app: faust.App, settings: Settings) -> TableT[bytes, bytes]:
    return bytes_table(app, settings, TABLE_NAME, "Watcher count per watched entity.")


class WatchIndex:
    def __init__(self, table: TableT[bytes, bytes], generation: Callable[[], int]) -> None:
        self._table = table
        self._generation = generation
        self._loaded: int | None = None
        self._nfts: dict[str, set[str]] = defaultdict(set)

    def _reload_if_rebalanced(self) -> None:
        generation = self._generation()
        if generation == self._loaded:
            return
        self._nfts = defaultdict(set)
        for key, value in self._table.items():
            if int(value) > 0:
                self._add(key.decode())
        self._loaded = generation

    def _add(self, entity: str) -> None:
        parsed = parse_entity_id(entity)
        if parsed.kind == "nft" and parsed.collection is not None:
            self._nfts[parsed.collection].add(entity)

    def nfts_of(self, collection: str) -> set[str]:
        """Watched NFTs of a collection (on this worker's partitions)."""
        self._reload_if_rebalanced()
        return self._nfts.get(collection, set())

    def watched_nfts(self) -> Iterator[str]:
        """Every watched NFT on this worker's partitions (a flagged wallet's dependants)."""
        self._reload_if_rebalanced()
        for nfts in self._nfts.values():
            yield from nfts

    def change(self, entity: str, watchers: int) -> int:
        """Apply a watcher delta (call while an event of the entity's partition is current)."""
        self._reload_if_rebalanced()
        key = entity.encode()
        count = max(0, int(self._table.get(key) or b"0") + watchers)
        self._table[key] = str(count).encode()
        parsed = parse_entity_id(entity)
        if parsed.kind == "nft" and parsed.collection is not None:
            if count > 0:
                self._nfts[parsed.collection].add(entity)
            else:
                self._nfts[parsed.collection].discard(entity)
        return count

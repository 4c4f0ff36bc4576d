"""Changelog-backed factor state per entity, read through a per-worker cache and written
once per checkpoint per changed key.

Table `entity-state`: key = entity id as UTF-8 bytes (`nft:…`, `collection:…`, `wallet:…`;
bytes, not str, because Faust serialises str table keys as JSON, and the router and the
changelog must hash the same raw key as the lanes' partitioner),
value = msgspec JSON of `Stored` (factor state + last published score). An NFT's key lives
on its collection's partition (the lanes are partitioned by collection), so scoring an NFT
reads its collection's state locally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import faust
import msgspec
from faust.types import EventT, TableT

from trustscore_stream.scoring.publication import Stored
from trustscore_stream.settings import Settings
from trustscore_stream.tables.partition_scope import partition_scope
from trustscore_stream.tables.rocksdb import bytes_table

TABLE_NAME = "entity-state"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Stored)
# Decoded records kept in memory per worker; beyond this the cache starts over (the table
# is the truth, the cache only saves decoding).
CACHE_LIMIT = 200_000


def declare_entity_table(app: faust.App, settings: Settings) -> TableT[bytes, bytes]:
    return bytes_table(
        app, settings, TABLE_NAME, "Factor state and last published score per entity."
    )


class EntityStore:
    def __init__(self, table: TableT[bytes, bytes], generation: Callable[[], int]) -> None:
        self._table = table
        self._generation = generation
        self._cache: dict[str, Stored] = {}
        self._cache_generation: int | None = None

    def _check_generation(self) -> None:
        generation = self._generation()
        if generation != self._cache_generation:
            self._cache.clear()  # partitions may have moved: re-read from the table
            self._cache_generation = generation

    def get(self, key: str) -> Stored | None:
        """The stored record (call inside `partition_scope` of the key's partition, or from
        outside a stream, where the store searches every local partition)."""
        self._check_generation()
        found = self._cache.get(key)
        if found is not None:
            return found
        raw = self._table.get(key.encode())
        if raw is None:
            return None
        stored = _decoder.decode(raw)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = stored
        return stored

    def write(self, event: EventT[bytes], records: Mapping[str, Stored]) -> int:
        """Persist changed records of one partition; `event` is one of that partition's."""
        with partition_scope(event):
            for key, stored in records.items():
                self._table[key.encode()] = _encoder.encode(stored)
                self._cache[key] = stored
        return len(records)

"""Which partition a key lives on: Kafka's default partitioner (murmur2), as every Kafka
client and Faust's table router compute it, so our explicit partition choice for batch
records agrees with keyed sends, changelog partitions and `table_route`."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65536)
def partition_for(key: str, partitions: int) -> int:
    hashed: int = murmur2(key.encode("utf-8"))
    return (hashed & 0x7FFFFFFF) % partitions

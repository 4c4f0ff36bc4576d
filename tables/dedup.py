"""Changelog-backed memory of seen event ids, written once per partition per checkpoint.

Table `dedup`: key `b"{partition}:{hour_bucket}:{seq}"` (raw bytes), value: a JSON array of the
event ids first seen on that partition during one checkpoint. The scoring stage keeps its
own memory in its state table under the prefix `d:` (tables/entity_state.py). The
in-memory index of every partition is rebuilt from the table after each rebalance (the
table is restored from its changelog first), so a duplicate is recognised across restarts,
kill -9 and rebalances.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faust
import orjson
from faust.types import EventT, TableT

from trustscore_stream.events.dedup import DedupMemory
from trustscore_stream.settings import Settings
from trustscore_stream.tables.partition_scope import partition_scope
from trustscore_stream.tables.rocksdb import bytes_table

TABLE_NAME = "dedup"


def declare_dedup_table(
    app: faust.App, settings: Settings, name: str = TABLE_NAME
) -> TableT[bytes, bytes]:
    return bytes_table(
        app, settings, name, "Seen event ids per partition, one entry per checkpoint."
    )


class DedupStore:
    """Per-partition DedupMemory over the dedup table."""

    def __init__(
        self,
        table: TableT[bytes, bytes],
        settings: Settings,
        generation: Callable[[], int],
        clock: Callable[[], float] = time.time,
        prefix: str = "",
        commit_prefix: str | None = None,
    ) -> None:
        self._table = table
        self._prefix = prefix
        # With a commit prefix, chunks belong to numbered checkpoints and count only once
        # the partition's commit marker (`{commit_prefix}{partition}`) reaches their number.
        self._commit_prefix = commit_prefix
        self._settings = settings
        self._generation = generation
        self._clock = clock
        self._memories: dict[int, DedupMemory] = {}
        self._loaded_generation: int | None = None

    def _new_memory(self) -> DedupMemory:
        return DedupMemory(
            retention_s=self._settings.dedup_retention_s,
            max_ids=self._settings.dedup_max_ids_per_partition,
        )

    def _reload_if_rebalanced(self) -> None:
        generation = self._generation()
        if generation == self._loaded_generation:
            return
        memories: dict[int, DedupMemory] = {}
        prefix = self._prefix.encode()
        commit = self._commit_prefix.encode() if self._commit_prefix is not None else None
        committed: dict[int, int] = {}
        chunks: list[tuple[int, str, Any]] = []
        for key, value in self._table.items():
            if commit is not None and key.startswith(commit):
                committed[int(key[len(commit) :])] = int(value)
            elif key.startswith(prefix):  # the table may be shared (tables/entity_state.py)
                partition, _, chunk_key = key[len(prefix) :].decode().partition(":")
                chunks.append((int(partition), chunk_key, orjson.loads(value)))
        for partition, chunk_key, loaded in chunks:
            if commit is not None:
                if loaded["s"] > committed.get(partition, 0):
                    continue  # from a checkpoint that never committed: its input is replayed
                ids = loaded["i"]
            else:
                ids = loaded
            memory = memories.get(partition)
            if memory is None:
                memory = memories[partition] = self._new_memory()
            memory.load_chunk(chunk_key, ids)
        self._memories = memories
        self._loaded_generation = generation

    def memory(self, partition: int) -> DedupMemory:
        self._reload_if_rebalanced()
        memory = self._memories.get(partition)
        if memory is None:
            memory = self._memories[partition] = self._new_memory()
        return memory

    def checkpoint(self, partition: int, event: EventT[bytes], seq: int | None = None) -> int:
        """Persist what `partition` learnt since the last checkpoint; `event` must be one
        of that partition's events; `seq`: the checkpoint's number (with a commit prefix).
        Returns the number of table writes made."""
        memory = self.memory(partition)
        now = self._clock()
        writes = 0
        with partition_scope(event):
            for chunk_key, ids in memory.take_pending(now):
                value = ids if self._commit_prefix is None else {"s": seq, "i": ids}
                self._table[f"{self._prefix}{partition}:{chunk_key}".encode()] = orjson.dumps(value)
                writes += 1
            for chunk_key in memory.expire(now):
                del self._table[f"{self._prefix}{partition}:{chunk_key}".encode()]
                writes += 1
        return writes

    def size(self) -> int:
        """Ids remembered by this worker (its partitions, as restored from the changelog)."""
        self._reload_if_rebalanced()
        return sum(len(memory) for memory in self._memories.values())

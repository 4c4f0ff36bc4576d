"""How every table of the app is declared: RocksDB, bytes keys and values, small options.

Faust's defaults are sized for one big table (write buffer 64 MiB × 3, block cache 2 GiB,
open files ~90 % of the OS limit) and apply to each partition's database; we run several
tables × 8 partitions per worker, so each database gets a small share. Passed per table
(`app.Table(options=…)`): Faust has no app-wide setting for them.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

from trustscore_stream.settings import Settings

ROCKSDB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024 * 1024,
    "block_cache_size": 16 * 1024 * 1024,
    "block_cache_compressed_size": 0,
    "max_open_files": 256,
}


def bytes_table(app: faust.App, settings: Settings, name: str, help: str) -> TableT[bytes, bytes]:
    """A changelog-backed RocksDB table with raw bytes keys and values.

    Bytes, not str, keys: Faust serialises str table keys as JSON strings, which would not
    hash like the raw record keys, and `table_route`/`key_store` would find the wrong owner.
    """
    return app.Table(
        name,
        default=None,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options=ROCKSDB_OPTIONS,
        help=help,
    )

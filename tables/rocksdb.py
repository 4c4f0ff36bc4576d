"""RocksDB options for every table of the app.

Faust's defaults are sized for one big table (write buffer 64 MiB × 3, block cache 2 GiB,
open files ~90 % of the OS limit) and apply to each partition's database; we run several
tables × 8 partitions per worker, so each database gets a small share. Passed per table
(`app.Table(options=…)`): Faust has no app-wide setting for them.
"""

from __future__ import annotations

from typing import Any

ROCKSDB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024 * 1024,
    "block_cache_size": 16 * 1024 * 1024,
    "block_cache_compressed_size": 0,
    "max_open_files": 256,
}

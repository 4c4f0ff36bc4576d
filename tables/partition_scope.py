"""Writing table state for one source partition from outside per-event iteration.

Faust routes a table write to the changelog partition of the *current event* and reads
RocksDB from that partition's database. A checkpoint writes many keys after a batch, so it
must make an event of the right partition current while it writes. Faust has no public
API for that; this is the one place that touches its context variable.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event
from faust.types import EventT


@contextmanager
def partition_scope(event: EventT[Any]) -> Iterator[None]:
    """Make `event` current, so table reads/writes go to its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)

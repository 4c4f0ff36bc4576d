"""Batches of events with manual acknowledgement, the one way our agents read streams.

`Stream.noack_take` yields the buffered *events* (typed in Faust as values) and leaves
acking to us, so offsets advance only past what a stage has fully handed on (the plain
`take` acks a batch even when the code handling it raised).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT


async def event_batches(
    stream: StreamT[Any], max_events: int, within_s: float
) -> AsyncIterator[list[EventT[bytes]]]:
    concrete = cast(Stream[Any], stream)
    async for batch in concrete.noack_take(max_events, within=within_s):
        yield cast(list[EventT[bytes]], list(batch))


async def ack_all(stream: StreamT[Any], events: list[EventT[bytes]]) -> None:
    concrete = cast(Stream[Any], stream)
    for event in events:
        await concrete.ack(event)


log = logging.getLogger(__name__)


async def fail_fast(app: faust.App, work: Awaitable[None]) -> None:
    """Run a batch's work; on an unexpected error stop the whole worker.

    Faust would restart just the agent, which resumes *after* the failed batch while its
    offsets stay uncommitted: the partition stalls and a later restart re-reads it. A
    worker that stops instead is restarted by its supervisor and resumes cleanly from the
    last commit, which never passes an unhandled event.
    """
    try:
        await work
    except Exception as exc:
        log.exception("stage failed; stopping the worker so it restarts from its commits")
        await app.crash(exc)
        raise

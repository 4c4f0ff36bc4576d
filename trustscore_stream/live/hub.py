"""The fan-out of one worker: every record the broadcast follower reads is dispatched to
the connected clients whose channels it reaches, and kept in the replay buffer.

Dispatch is synchronous and runs on the event loop: a record's frame is encoded once and
its bytes shared by every client. Each client has a bounded queue; a client whose queue
is full (it reads slower than the stream, or not at all) is disconnected and counted, so
it never slows the others or grows memory. Registering a client and computing its replay
happen without an await in between, so replayed and live frames neither overlap nor leave
a gap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from trustscore_stream.live import position as positions
from trustscore_stream.live.frames import frame
from trustscore_stream.live.replay import Entry, ReplayBuffer, ReplayGap

RESET_EVENT = "reset"


class LimitExceeded(Exception):
    """Too many concurrent streams (for this user, or for this worker)."""


@dataclass(frozen=True, slots=True)
class HubLimits:
    queue_frames: int = 4096  # per client: beyond this backlog the client is cut off
    streams_per_user: int = 3
    streams_total: int = 20_000
    replay_s: float = 300.0
    replay_entries: int = 300_000


@dataclass(eq=False)
class Client:
    channels: frozenset[str]
    user: str | None
    capacity: int
    # Set when the client resumed from a position ahead of this worker (it came from a
    # worker further along): records below it were already delivered and are skipped.
    floor: tuple[int, ...] | None = None
    closed: str | None = None  # why the hub ended this stream
    ping_due: bool = False  # nothing was written for a while: send a `: ping`
    active: bool = False  # a frame was queued since the last ping tick
    abort: Callable[[], None] | None = None  # set by the web layer: end the response now
    _frames: list[bytes] = field(default_factory=list)
    _waiter: asyncio.Future[None] | None = None

    def push(self, payload: bytes) -> bool:
        if len(self._frames) >= self.capacity:
            return False
        self._frames.append(payload)
        self.active = True
        self._wake()
        return True

    def take(self) -> list[bytes]:
        frames, self._frames = self._frames, []
        return frames

    async def wait(self) -> None:
        """Until a frame is queued, a ping is due or the stream is ended. No timer per wait:
        one hub-wide tick marks idle streams for a ping (`Hub.ping_idle`)."""
        if self._frames or self.closed or self.ping_due:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, reason: str) -> None:
        self.closed = reason
        self._wake()
        if self.abort is not None:
            self.abort()


@dataclass(frozen=True, slots=True)
class Changes:
    events: list[tuple[str, str, bytes]]  # (id, event, data)
    last_id: str  # where to poll from next
    more: bool  # `limit` cut the answer: poll again at once
    reset: str | None  # why `since` cannot be served (refetch, then poll from last_id)


def _entry_id(entry: Entry, since: tuple[int, ...]) -> str:
    """A replayed entry's id never goes behind where the client already is."""
    at = entry.position
    return positions.encode(positions.merged(at, since) if positions.ahead(at, since) else at)


@dataclass
class Opened:
    client: Client
    replay: list[bytes]  # frames to write before live ones (a reset frame, if any, first)


class Hub:
    def __init__(
        self,
        slots: int,
        limits: HubLimits,
        first_user_slot: int | None = None,
        on_disconnect: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.position = [0] * slots
        # Slots below first_user_slot carry score changes, the rest notifications: a
        # resume is checked only against the slots its channels can be on.
        split = slots if first_user_slot is None else first_user_slot
        self._score_slots = range(split)
        self._user_slots = range(split, slots)
        self.buffer = ReplayBuffer([0] * slots, limits.replay_s, limits.replay_entries)
        self.clients: set[Client] = set()
        self._subscribers: dict[str, set[Client]] = {}
        self._per_user: dict[str, int] = {}
        self._seq = 0
        self._on_disconnect = on_disconnect
        self._clock = clock

    # -- the follower's side ------------------------------------------------------------

    def start_at(self, offsets: Iterable[int]) -> None:
        """Where following begins, per slot (nothing below is held)."""
        self.position = list(offsets)
        self.buffer.floors = list(self.position)

    def dispatch(
        self, slot: int, offset: int, channels: tuple[str, ...], event: str, data: bytes
    ) -> None:
        if offset < self.position[slot]:
            return  # already dispatched (a re-fetch after a reconnect of the consumer)
        self.position[slot] = offset + 1
        at = tuple(self.position)
        self.buffer.append(Entry(self._seq, slot, offset, self._clock(), channels, event, data, at))
        self._seq += 1
        groups = [s for s in map(self._subscribers.get, channels) if s]
        if not groups:
            return
        targets: Iterable[Client] = groups[0] if len(groups) == 1 else set().union(*groups)
        payload = frame(positions.encode(at), event, data)
        cut: list[Client] = []
        for client in targets:
            if client.floor is None:
                sent = client.push(payload)
            else:
                sent = self._push_ahead(client, slot, offset, at, event, data)
            if not sent:
                cut.append(client)
        for client in cut:
            self.close(client, "slow")

    def _push_ahead(
        self, client: Client, slot: int, offset: int, at: tuple[int, ...], event: str, data: bytes
    ) -> bool:
        floor = client.floor
        assert floor is not None
        if offset < floor[slot]:
            return True  # the client has it from the worker it came from
        if not positions.ahead(at, floor):
            client.floor = None  # this worker has caught up with the client
            return client.push(frame(positions.encode(at), event, data))
        merged = positions.merged(at, floor)
        return client.push(frame(positions.encode(merged), event, data))

    def ping_idle(self) -> int:
        """Mark every stream that got no frame since the last call for a ping (a tick every
        third of the ping interval keeps each stream's silence under the interval)."""
        pinged = 0
        for client in self.clients:
            if client.active:
                client.active = False
            elif not client.ping_due:
                client.ping_due = True
                client._wake()
                pinged += 1
        return pinged

    def backlogged(self) -> bool:
        """Some client has half its queue waiting (O(clients): called once per round)."""
        half = self.limits.queue_frames // 2
        return any(len(client._frames) >= half for client in self.clients)

    def evict(self) -> int:
        return self.buffer.evict(self._clock())

    # -- the web layer's side -----------------------------------------------------------

    def open(self, channels: frozenset[str], user: str | None, resume: str | None) -> Opened:
        """Register a stream; `resume` is the client's Last-Event-ID. Raises LimitExceeded."""
        if len(self.clients) >= self.limits.streams_total:
            raise LimitExceeded("this worker holds its maximum number of streams")
        if user is not None and self._per_user.get(user, 0) >= self.limits.streams_per_user:
            raise LimitExceeded(
                f"at most {self.limits.streams_per_user} concurrent streams per user"
            )
        client = Client(channels, user, self.limits.queue_frames)
        replay: list[bytes] = []
        if resume is not None:
            replay = self._replay(client, resume)
        self.clients.add(client)
        if user is not None:
            self._per_user[user] = self._per_user.get(user, 0) + 1
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(client)
        return Opened(client, replay)

    def _replay(self, client: Client, resume: str) -> list[bytes]:
        here = tuple(self.position)
        limit = self.limits.queue_frames
        try:
            since = positions.decode(resume, len(here))
            entries = self.buffer.since(
                since, client.channels, self._slots_of(client.channels), limit
            )
            if len(entries) > limit:  # more than a client may have queued: start afresh
                raise ReplayGap(f"the client missed more than {limit} frames")
        except (positions.InvalidPosition, ReplayGap) as exc:
            data = orjson.dumps({"reason": str(exc)})
            return [frame(positions.encode(here), RESET_EVENT, data)]
        out = [frame(_entry_id(entry, since), entry.event, entry.data) for entry in entries]
        if positions.ahead(here, since):
            client.floor = since
        return out

    def changes(self, channels: frozenset[str], since: str | None, limit: int) -> Changes:
        """The polling fallback: what `channels` got after `since` (everything held when
        None), at most `limit` events, with the same ids as the stream's frames."""
        here = tuple(self.position)
        start = tuple(self.buffer.floors)
        try:
            if since is not None:
                start = positions.decode(since, len(here))
            entries = self.buffer.since(start, channels, self._slots_of(channels), limit)
        except (positions.InvalidPosition, ReplayGap) as exc:
            return Changes([], positions.encode(here), more=False, reset=str(exc))
        more = len(entries) > limit
        events = [(_entry_id(e, start), e.event, e.data) for e in entries[:limit]]
        last = events[-1][0] if more else positions.encode(positions.merged(here, start))
        return Changes(events, last, more=more, reset=None)

    def _slots_of(self, channels: frozenset[str]) -> list[int]:
        users = any(channel.startswith("user:") for channel in channels)
        scores = any(not channel.startswith("user:") for channel in channels)
        return [*(self._score_slots if scores else ()), *(self._user_slots if users else ())]

    def close(self, client: Client, reason: str | None = None) -> None:
        """Unregister a stream (idempotent); with a reason, also end it (the hub's choice)."""
        if client not in self.clients:
            return
        self.clients.discard(client)
        for channel in client.channels:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self._subscribers[channel]
        if client.user is not None:
            left = self._per_user[client.user] - 1
            if left:
                self._per_user[client.user] = left
            else:
                del self._per_user[client.user]
        if reason is not None:
            self._on_disconnect(reason)
            client.end(reason)

    def close_all(self, reason: str) -> None:
        for client in list(self.clients):
            self.close(client, reason)

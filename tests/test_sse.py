"""The live stream through the real broker and worker(s), read by real SSE clients
(httpx-sse): ordered frames with ids, exact resume, polling, the user channel and its
limits, a slow client cut off, and a change scored on one worker reaching a client of
another."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from tests.stack import CONTRACT, Stack, sale, scrape
from trustscore_stream.live.position import decode
from trustscore_stream.processes import WorkerProcess
from trustscore_stream.web.auth import issue_token

pytestmark = pytest.mark.integration

SECRET = "sse-test-secret-of-at-least-32-bytes"
COLLECTION = f"collection:eth:{CONTRACT}"
PARTITIONS = 8


class Reader:
    """One SSE client collecting events in the background until closed."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url, self.headers = url, headers or {}
        self.events: list[ServerSentEvent] = []
        self.response_headers: httpx.Headers | None = None
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()

    async def start(self) -> Reader:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._opened.wait(), 10)
        return self

    async def _run(self) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5, read=60)) as http,
            aconnect_sse(http, "GET", self.url, headers=self.headers) as source,
        ):
            self.response_headers = source.response.headers
            self._opened.set()
            async for event in source.aiter_sse():
                self.events.append(event)

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"{len(self.events)} of {count} events"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class RawReader:
    """A fast SSE client: counts `score` frames in the raw bytes of the response."""

    MARK = b"event: score\n"

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def events(self) -> range:
        return range(self.count)

    async def start(self) -> RawReader:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self._task = asyncio.create_task(self._read(reader, writer))
        return self

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tail = b""
        try:
            while chunk := await reader.read(1 << 16):
                data = tail + chunk
                self.count += data.count(self.MARK)
                # Keep a marker's first bytes if it was split between two reads.
                cut = max(0, len(data) - len(self.MARK) + 1)
                tail = data[cut:]
                self.count -= tail.count(self.MARK)
        finally:
            writer.close()

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            assert time.monotonic() < deadline, f"{self.count} of {count} events"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def deltas_for(stack: Stack, collection: str, at_least: int) -> list[dict[str, Any]]:
    """Deltas of `collection` and its NFTs on the topic, once `at_least` are there and the
    count has been stable for a second."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = await stack.consume("trustscore-deltas", until=10**9, timeout=1.0)
        found = [orjson.loads(r.value) for r in records if r.value is not None]
        found = [
            d
            for d in found
            if d["entity"].startswith((collection, "nft:eth:" + collection.split(":")[2]))
        ]
        if len(found) >= at_least and len(found) == len(seen):
            return found
        seen = found
    raise AssertionError(f"only {len(seen)} deltas")


def sales(prefix: str, tokens: range) -> list[list[dict[str, Any]]]:
    """Batch records of at most 500 envelopes."""
    events = [sale(f"{prefix}-{t}", token=t) for t in tokens]
    return [events[i : i + 500] for i in range(0, len(events), 500)]


@asynccontextmanager
async def one_worker(stack: Stack, **extra: str) -> AsyncIterator[WorkerProcess]:
    worker = stack.start_worker("w1", extra={"TRUSTSCORE_JWT_SECRET": SECRET, **extra})
    await worker.wait_ready()
    yield worker


async def test_frames_resume_polling_and_the_user_channel(stack: Stack) -> None:
    async with one_worker(stack, TRUSTSCORE_SSE_PING="0.3") as worker:
        stream = f"{worker.url}/api/v1/stream?entity={COLLECTION}"
        control = await Reader(stream).start()
        assert control.response_headers is not None
        assert control.response_headers["content-type"].startswith("text/event-stream")
        assert "no-cache" in control.response_headers["cache-control"]
        assert control.response_headers["x-accel-buffering"] == "no"
        leaver = await Reader(stream).start()

        await stack.produce(sales("a", range(40)))
        await leaver.wait_for(10)
        await leaver.close()  # mid-stream: the rest of the first burst is still coming
        before = list(leaver.events)
        await stack.produce(sales("b", range(40, 80)))
        expected = await deltas_for(stack, COLLECTION, at_least=80)
        await control.wait_for(len(expected))

        resumed = await Reader(stream, {"Last-Event-ID": before[-1].id}).start()
        await resumed.wait_for(len(expected) - len(before))
        await asyncio.sleep(1.0)  # nothing more may come
        await control.close()
        await resumed.close()

        assert control.events[0].retry == 3000 and control.events[1].retry is None
        # The control client saw every delta of the collection, in topic order per entity,
        # each with an id that covers it.
        assert [e.event for e in control.events] == ["score"] * len(expected)
        got = [orjson.loads(e.data) for e in control.events]
        assert sorted((d["entity"], d["version"]) for d in got) == sorted(
            (d["entity"], d["version"]) for d in expected
        )
        assert len({e.id for e in control.events}) == len(control.events)
        versions: dict[str, int] = {}
        for delta in got:  # each entity's changes arrive in version order
            assert delta["version"] > versions.get(delta["entity"], 0)
            versions[delta["entity"]] = delta["version"]
        # Resumed: exactly the frames the control client saw after the cut, no gap, no
        # duplicate, same ids.
        assert [(e.id, e.data) for e in before + resumed.events] == [
            (e.id, e.data) for e in control.events
        ]

        # Polling returns the same events with the same ids.
        async with httpx.AsyncClient(base_url=worker.url) as http:
            answer = (await http.get("/api/v1/changes", params={"entity": COLLECTION})).json()
            assert [(e["id"], orjson.dumps(e["data"]).decode()) for e in answer["events"]] == [
                (e.id, orjson.dumps(orjson.loads(e.data)).decode()) for e in control.events
            ]
            since = control.events[9].id
            page = (
                await http.get("/api/v1/changes", params={"entity": COLLECTION, "since": since})
            ).json()
            assert [e["id"] for e in page["events"]] == [e.id for e in control.events[10:]]
            stale = (
                await http.get("/api/v1/changes", params={"entity": COLLECTION, "since": "x"})
            ).json()
            assert stale["reset"] is True and stale["events"] == []
            bad = await http.get("/api/v1/stream", params={"entity": "nft:eth:0x12:1"})
            assert bad.status_code == 400 and bad.json()["error"] == "invalid_entity_id"

        # A resume position older than anything held gets a reset, then the live stream.
        zero = "p1." + ".".join(["0"] * (2 * PARTITIONS))
        assert decode(zero, 2 * PARTITIONS)
        await _user_channel_and_limits(stack, worker)


async def _user_channel_and_limits(stack: Stack, worker: WorkerProcess) -> None:
    mine = {"Authorization": f"Bearer {issue_token('u1', SECRET)}"}
    async with httpx.AsyncClient(base_url=worker.url) as http:
        anonymous = await http.get("/api/v1/stream", params={"user": "me"})
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
        forged = {
            "Authorization": f"Bearer {issue_token('u1', 'another-secret-of-at-least-32-bytes')}"
        }
        bad = await http.get("/api/v1/stream", params={"user": "me"}, headers=forged)
        assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"

    url = f"{worker.url}/api/v1/stream?user=me"
    streams = [await Reader(url, mine).start() for _ in range(3)]
    other = await Reader(f"{url}&access_token={issue_token('u2', SECRET)}").start()
    async with httpx.AsyncClient(base_url=worker.url) as http:
        fourth = await http.get("/api/v1/stream", params={"user": "me"}, headers=mine)
        assert fourth.status_code == 429 and fourth.json()["error"] == "too_many_streams"
    # A notification for u1 reaches u1's streams only.
    producer = await stack.producer()
    note = {"id": "n1", "kind": "score_threshold", "severity": "high", "entity": COLLECTION}
    await producer.send_and_wait(
        stack.topic("trustscore-notifications"), orjson.dumps(note), key=b"u1"
    )
    for reader in streams:
        await reader.wait_for(1)
        notifications = [e for e in reader.events if e.event == "notification"]
        assert [orjson.loads(e.data)["id"] for e in notifications] == ["n1"]
    await asyncio.sleep(0.5)
    assert not [e for e in other.events if e.event == "notification"]

    # Pings keep idle streams alive (and reap dead ones).
    third = {"Authorization": f"Bearer {issue_token('u3', SECRET)}"}
    async with httpx.AsyncClient() as http, http.stream("GET", url, headers=third) as answer:
        raw = b""
        async for chunk in answer.aiter_bytes():
            raw += chunk
            if raw.count(b": ping") >= 2:
                break
        assert raw == b": ping\n: ping\n"
    for reader in [*streams, other]:
        await reader.close()


async def _status(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> int:
    async with http.stream("GET", path, headers=headers) as answer:
        return answer.status_code


async def test_a_stuck_client_is_cut_off_while_a_reading_one_keeps_receiving(
    stack: Stack,
) -> None:
    # Smaller socket buffers (128 KiB), so the stuck client overflows after ~2,600 frames
    # (~0.9 MB: socket and transport buffers, then its queue of 2,000); the reading client
    # never gets near that. (With 16 KiB buffers a reading client was cut too, now and then:
    # each write then drains in many small steps while a 4,000-delta burst goes out.)
    small = {"TRUSTSCORE_SSE_QUEUE_FRAMES": "2000", "TRUSTSCORE_SSE_SEND_BUFFER": "65536"}
    async with one_worker(stack, **small) as worker:
        # The stuck client: a tiny receive window, and it never reads.
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", worker.web_port))
        stuck.sendall(
            b"GET /api/v1/stream?all=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        # The reading client counts frames in raw bytes: a parser in Python in this busy
        # process could itself fall 2,000 frames behind the burst and be cut, rightly.
        reader = await RawReader(worker.web_port, "/api/v1/stream?all=1").start()
        try:
            await stack.produce(sales("s", range(4000)))
            # Let the reader read undisturbed (this process is its only CPU), then compare
            # with the topic once.
            await reader.wait_for(4000, timeout=60)
            expected = await deltas_for(stack, COLLECTION, at_least=4000)
            await reader.wait_for(len(expected), timeout=10)
            metrics = scrape(worker)
            assert metrics['trustscore_sse_disconnects_total{reason="slow"}'] == 1
            assert metrics["trustscore_sse_clients"] == 1
            assert len(reader.events) == len(expected)
        finally:
            stuck.close()
            await reader.close()
        await _hang_up_is_cleaned_up_at_once(worker)


async def _hang_up_is_cleaned_up_at_once(worker: WorkerProcess) -> None:
    """With the default 15 s ping, only the handler's cancellation on a lost connection
    can free a closed stream's place within 2 s."""
    mine = {"Authorization": f"Bearer {issue_token('u1', SECRET)}"}
    url = f"{worker.url}/api/v1/stream?user=me"
    streams = [await Reader(url, mine).start() for _ in range(3)]
    async with httpx.AsyncClient(base_url=worker.url) as http:
        assert await _status(http, "/api/v1/stream?user=me", mine) == 429
        await streams[0].close()
        deadline = time.monotonic() + 2.0
        while await _status(http, "/api/v1/stream?user=me", mine) != 200:
            assert time.monotonic() < deadline, "the closed stream still counts"
            await asyncio.sleep(0.1)
    for reader in streams[1:]:
        await reader.close()


async def test_a_change_scored_on_one_worker_reaches_clients_of_the_other(stack: Stack) -> None:
    first = stack.start_worker("w1")
    second = stack.start_worker("w2")
    await asyncio.gather(first.wait_ready(), second.wait_ready())
    await asyncio.sleep(2)  # both in the group
    contracts = [f"0x{i:02x}" + "5e" * 19 for i in range(8)]
    readers = [await Reader(f"{w.url}/api/v1/stream?all=1").start() for w in (first, second)]
    events = [
        sale(f"x{c}-{t}", token=t, contract=contract)
        for c, contract in enumerate(contracts)
        for t in range(5)
    ]
    await stack.produce([events])
    records = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = await stack.consume("trustscore-deltas", until=10**9, timeout=1.0)
        if len(records) >= 48 and all(len(r.events) >= len(records) for r in readers):
            break
        await asyncio.sleep(0.5)
    for reader in readers:
        await reader.close()
    # Each worker scored some of the collections ...
    scored = [scrape(w)["trustscore_score_changes_published_total"] for w in (first, second)]
    assert all(count > 0 for count in scored), scored
    assert sum(scored) == len(records)
    # ... and each client got every delta from either worker.
    a, b = ([e.data for e in r.events] for r in readers)
    assert len(a) == len(records)
    assert sorted(a) == sorted(b)
    # An id from one worker resumes exactly on the other (offsets are the same for all).
    cut = len(a) // 3
    on_b = await Reader(
        f"{second.url}/api/v1/stream?all=1", {"Last-Event-ID": readers[0].events[cut].id}
    ).start()
    await on_b.wait_for(len(a) - cut - 1)
    await asyncio.sleep(0.5)
    await on_b.close()
    assert sorted(e.data for e in on_b.events) == sorted(a[cut + 1 :])

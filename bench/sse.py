"""Live stream benchmark (CONTRACT §4): SSE fan-out of one worker to many clients, and the
latency from producing an event to an SSE client receiving the delta it caused.

    .venv/bin/python bench/sse.py [--connections 10000] [--changes 10] [--rate 1000]
        [--duration 60] [--latency 0.25 --latency 0.05 --latency 0.05:20] [--repeat 3]
        [--only fanout|latency]

One embedded broker for the whole run; every scenario gets a fresh topic namespace and a
fresh worker (`faust -L uvloop -A trustscore_stream.app worker`, all stages, RocksDB).
Repetitions are interleaved (rep 1 of every scenario, then rep 2, …), so drift hits them
alike. The SSE clients are raw asyncio protocols (HTTP/1.1 GET, chunked body, frames split
on the blank line), spread over `--procs` client processes so that 10,000 sockets cost the
client side as little CPU as possible; it still shares the machine's cores with the
worker and the broker.

fanout: `--connections` streams of one collection's channel (`entity=collection:…`) held by
the worker. Worker RSS (VmRSS) before opening them and with all of them held gives the
memory per connection. Then `--changes` times a sale of a new NFT of that collection is
produced to the input topic (plain aiokafka); each delta it causes reaches every client.
Latency of one delta to one client = the client's receipt time − the delta record's Kafka
timestamp on trustscore-deltas (CreateTime: set by the worker's producer when it queued the
record, ms resolution); per delta p50/p99/max over all clients, then medians over deltas.
CPU per delivered frame of the worker and of the client processes, and the worker's garbage
collections during the deliveries (a `gc.callbacks` timer, see SHIM below).
BENCH_PROFILE=path records the worker with py-spy (native frames) during the deliveries.

latency: one `all=1` client while mixed traffic (`trustscore_stream/traffic.py`, seed 1:
100 collections, 10,000 NFTs) is produced at `--rate` envelopes/s (one per record) for
`--warmup` + `--duration` s; each delta's `cause_event_id` is matched to the time its event
was handed to the producer (events of the warm-up are not counted). Split: send → the
delta's Kafka timestamp (the pipeline, conflation window included), Kafka timestamp →
client (broadcast follower + fan-out), and the worker's own histograms:
`trustscore_sse_dispatch_lag_seconds` (Kafka timestamp → the follower's fetch returned the
record, observed at its dispatch), `trustscore_lane_wait_seconds` (ingested → taken from a
lane by scoring), `trustscore_checkpoint_seconds`; and the bytes the run wrote to the
entity-state changelog. `--dump PATH` appends every matched delta's times (JSON lines).
One row per `--latency WINDOW[:FETCH_MS]`: TRUSTSCORE_CONFLATION_WINDOW, and optionally a
cap on every Kafka consumer's `fetch_max_wait_ms` inside the worker (a diagnostic, set by a
`sitecustomize` the benchmark writes into the worker's PYTHONPATH; no project setting
exists for it): the embedded broker answers a fetch that found nothing only when about half
of its max wait has passed, even if records arrived meanwhile, and Faust's consumer asks
for 1,500 ms, aiokafka's default is 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    LOOP,
    _cpu_seconds,
    scrape,
    stop_profiler,
)
from trustscore_stream.embedded import EmbeddedBroker, free_port  # noqa: E402
from trustscore_stream.processes import WorkerProcess, worker_env  # noqa: E402
from trustscore_stream.settings import load_settings  # noqa: E402
from trustscore_stream.topics import topic_specs  # noqa: E402
from trustscore_stream.topics_admin import TopicSpec, ensure_topics  # noqa: E402
from trustscore_stream.traffic import Market, TrafficGenerator  # noqa: E402

# The collection the fan-out clients watch; no other traffic touches it.
CONTRACT = "0x" + "be" * 20
SELLER = "0x" + "a1" * 20
BUYER = "0x" + "b2" * 20
PROBE_CONTRACT = "0x" + "cd" * 20  # latency scenario: proves the pipeline runs end to end
CONNECT_CONCURRENCY = 64  # per client process: below aiohttp's listen backlog of 128
READY_S = 90.0
PROBE_S = 90.0

Times = dict[bytes, list[float]]  # frame id -> receipt times (one per client)

# The worker's instrumentation, imported at its start-up from a `sitecustomize` the
# benchmark puts first on its PYTHONPATH (nothing in the project changes): with
# BENCH_FETCH_MAX_WAIT_MS, a cap on every aiokafka consumer's fetch_max_wait_ms (a latency
# row's diagnostic); with BENCH_GC_STATS, collections and seconds per GC generation, written
# to that file every 0.2 s (the fan-out's cost of a large heap).
SHIM = '''"""Written by bench/sse.py: worker instrumentation (see BENCH_* below)."""
import os

if os.environ.get("BENCH_FETCH_MAX_WAIT_MS"):
    import aiokafka

    _cap = int(os.environ["BENCH_FETCH_MAX_WAIT_MS"])
    _init = aiokafka.AIOKafkaConsumer.__init__

    def _capped(self, *args, **kwargs):
        kwargs["fetch_max_wait_ms"] = min(int(kwargs.get("fetch_max_wait_ms", 500)), _cap)
        _init(self, *args, **kwargs)

    aiokafka.AIOKafkaConsumer.__init__ = _capped

if os.environ.get("BENCH_GC_STATS"):
    import gc
    import json
    import threading
    import time

    _gc = {"0": [0, 0.0], "1": [0, 0.0], "2": [0, 0.0]}
    _began = [0.0]

    def _timed(phase, info):
        if phase == "start":
            _began[0] = time.perf_counter()
        else:
            entry = _gc[str(info["generation"])]
            entry[0] += 1
            entry[1] += time.perf_counter() - _began[0]

    def _write(path):
        while True:
            time.sleep(0.2)
            with open(path + ".tmp", "w") as out:
                json.dump(_gc, out)
            os.replace(path + ".tmp", path)

    gc.callbacks.append(_timed)
    threading.Thread(target=_write, args=(os.environ["BENCH_GC_STATS"],), daemon=True).start()
'''


# -- the client side (runs in the client processes) ------------------------------------


class SseConnection(asyncio.Protocol):
    """One SSE stream over raw asyncio: writes the GET, skips the response head, undoes
    the chunked transfer coding and hands every complete frame (a block ending in a blank
    line) to its pool with the time its bytes arrived."""

    def __init__(self, pool: ClientPool, request: bytes) -> None:
        self.pool = pool
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.head: bytes | None = b""  # None once the response head is read
        self.chunked = False
        self.raw = b""  # undecoded chunked bytes
        self.remaining = 0  # data bytes left in the current chunk
        self.skip = 0  # CRLF bytes left after a chunk's data
        self.body = b""  # decoded bytes not yet split into frames
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)
        self.pool.lost(self)

    def data_received(self, data: bytes) -> None:
        now = time.time()  # before any parsing: the receipt time of every frame in `data`
        if self.head is not None:
            head = self.head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self.head = head
                return
            self.head = None
            lines = head[:end].split(b"\r\n")
            self.status = int(lines[0].split()[1])
            self.chunked = any(
                line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower()
                for line in lines[1:]
            )
            if not self.opened.done():
                self.opened.set_result(self.status == 200)
            data = head[end + 4 :]
            if not data:
                return
        body = self.body + (self._dechunk(data) if self.chunked else data)
        start = 0
        while (end := body.find(b"\n\n", start)) >= 0:
            self.pool.frame(body[start:end], now)
            start = end + 2
        self.body = body[start:]

    def _dechunk(self, data: bytes) -> bytes:
        raw, out = self.raw + data, []
        while raw:
            if self.skip:
                taken = min(self.skip, len(raw))
                raw, self.skip = raw[taken:], self.skip - taken
            elif self.remaining:
                piece = raw[: self.remaining]
                out.append(piece)
                raw, self.remaining = raw[len(piece) :], self.remaining - len(piece)
                if not self.remaining:
                    self.skip = 2
            else:
                line_end = raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(raw[:line_end].split(b";", 1)[0], 16)
                raw = raw[line_end + 2 :]
                if size == 0:  # the server ended the stream
                    break
                self.remaining = size
        self.raw = raw
        return b"".join(out)


class ClientPool:
    """The streams of one client process. Frames are aggregated per frame id (every
    client of a channel gets the same frame), so a 10,000-client delivery is one list of
    receipt times, not 10,000 objects."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connections: set[SseConnection] = set()
        self.times: Times = {}
        self.data: dict[bytes, bytes] = {}
        self.frames = 0
        self.lost_count = 0
        self._frames_changed = asyncio.Event()

    def frame(self, block: bytes, now: float) -> None:
        # A block may start with `: ping` comments and, once, `retry:`: find the fields.
        at = block.find(b"id: ")
        if at < 0:
            return  # only comments: nothing to time
        end = block.find(b"\n", at)
        frame_id = block[at + 4 : end]
        times = self.times.get(frame_id)
        if times is None:
            times = self.times[frame_id] = []
            data_at = block.find(b"data: ")
            self.data[frame_id] = block[data_at + 6 :] if data_at >= 0 else b""
        times.append(now)
        self.frames += 1
        self._frames_changed.set()

    def lost(self, connection: SseConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self.lost_count += 1

    async def open(self, count: int, target: str) -> dict[str, Any]:
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        errors: list[str] = []
        started = time.monotonic()

        async def one() -> bool:
            async with gate:  # the server's accept queue holds 128: don't flood it
                try:
                    _, connection = await loop.create_connection(
                        lambda: SseConnection(self, request), self.host, self.port
                    )
                    async with asyncio.timeout(60):
                        ok = await connection.opened
                except (OSError, TimeoutError) as exc:
                    errors.append(repr(exc))
                    return False
                if ok:
                    self.connections.add(connection)
                else:
                    errors.append(f"HTTP {connection.status}")
                    if connection.transport is not None:
                        connection.transport.close()
                return ok

        results = await asyncio.gather(*(one() for _ in range(count)))
        return {
            "opened": sum(results),
            "failed": count - sum(results),
            "errors": errors[:5],
            "seconds": time.monotonic() - started,
        }

    async def wait(self, frames: int, timeout: float) -> int:
        """Until this process has received `frames` frames in all, at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.frames < frames and (left := deadline - time.monotonic()) > 0:
            self._frames_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._frames_changed.wait()
        return self.frames

    def collect(self) -> tuple[Times, dict[bytes, bytes]]:
        times, data = self.times, self.data
        self.times, self.data = {}, {}
        return times, data

    def close(self) -> None:
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()


def _die_with_parent() -> None:
    """A client process must not outlive the benchmark, even after kill -9 of it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_main(conn: multiprocessing.connection.Connection, host: str, port: int) -> None:
    """A client process: holds streams, answers the benchmark's commands over `conn`."""
    _die_with_parent()
    raise_fd_limit()
    try:
        import uvloop  # the worker's loop too: less client CPU per socket event

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(conn, host, port))


async def _serve(conn: multiprocessing.connection.Connection, host: str, port: int) -> None:
    pool = ClientPool(host, port)
    while True:
        # A thread waits for the next command: the pipe stays blocking (loop.add_reader
        # would make it non-blocking, and a large reply would then fail half-written).
        command, *args = await asyncio.to_thread(conn.recv)
        if command == "open":
            conn.send(await pool.open(*args))
        elif command == "wait":
            conn.send(await pool.wait(*args))
        elif command == "collect":
            conn.send(pool.collect())
        elif command == "stats":
            conn.send({"open": len(pool.connections), "lost": pool.lost_count})
        elif command == "close":
            pool.close()
            await asyncio.sleep(0.2)  # let the transports close
            conn.send("closed")
            return


@dataclass
class ClientProcess:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection

    async def ask(self, *command: Any) -> Any:
        self.conn.send(command)
        return await asyncio.to_thread(self.conn.recv)

    def cpu(self) -> float:
        return _cpu_seconds(self.process.pid or 0)

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(("close",))
            self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM
            self.process.join(3)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def start_clients(count: int, host: str, port: int) -> list[ClientProcess]:
    # spawn, not fork: the parent runs an event loop and aiokafka clients.
    context = multiprocessing.get_context("spawn")
    clients = []
    for _ in range(count):
        ours, theirs = context.Pipe()
        process = context.Process(target=client_main, args=(theirs, host, port), daemon=True)
        process.start()
        theirs.close()
        clients.append(ClientProcess(process, ours))
    return clients


def stop_clients(clients: Iterable[ClientProcess]) -> None:
    for client in clients:
        client.stop()


# -- the stack --------------------------------------------------------------------------


@dataclass
class Delta:
    entity: str
    version: int
    cause: str | None
    kafka_ms: int
    at: float  # the `at` field (publish time), s


@dataclass
class DeltaLog:
    """Every record of trustscore-deltas as the broker has it (for Kafka timestamps)."""

    by_key: dict[tuple[str, int], Delta] = field(default_factory=dict)
    by_cause: dict[str, list[Delta]] = field(default_factory=dict)
    count: int = 0
    timestamp_types: set[int] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, bootstrap: str, topic: str) -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        self._add(record.value, record.timestamp, record.timestamp_type)
                if batches:
                    self.changed.set()
        finally:
            await consumer.stop()

    def _add(self, value: bytes | None, timestamp: int, timestamp_type: int) -> None:
        if value is None:
            return
        body = orjson.loads(value)
        at = datetime.fromisoformat(body["at"].replace("Z", "+00:00")).timestamp()
        delta = Delta(body["entity"], body["version"], body["cause_event_id"], timestamp, at)
        self.by_key[(delta.entity, delta.version)] = delta
        if delta.cause is not None:
            self.by_cause.setdefault(delta.cause, []).append(delta)
        self.count += 1
        self.timestamp_types.add(timestamp_type)

    async def wait_cause(self, cause: str, timeout: float) -> list[Delta]:
        deadline = time.monotonic() + timeout
        while cause not in self.by_cause:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunFailed(f"no delta caused by {cause} within {timeout:g} s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.changed.wait()
        return self.by_cause[cause]


class RunFailed(RuntimeError):
    pass


@dataclass
class Stack:
    broker: EmbeddedBroker
    tmp: Path
    prefix: str = field(default_factory=lambda: f"e{secrets.token_hex(3)}-")
    worker: WorkerProcess | None = None
    producer: AIOKafkaProducer | None = None
    deltas: DeltaLog = field(default_factory=DeltaLog)
    _follow: asyncio.Task[None] | None = None

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def start(self, extra: dict[str, str]) -> WorkerProcess:
        settings = load_settings(
            {"TRUSTSCORE_BROKER": self.broker.url, "TRUSTSCORE_TOPIC_PREFIX": self.prefix}
        )
        await ensure_topics(self.broker.bootstrap, topic_specs(settings))
        env = worker_env(
            broker_url=self.broker.url,
            embedded=True,
            data_dir=self.tmp / self.prefix,
            web_port=free_port(),
            extra={
                "TRUSTSCORE_TOPIC_PREFIX": self.prefix,
                "TRUSTSCORE_APP_ID": f"{self.prefix}app",
                "PYTHONPATH": str(ROOT),
                **extra,
            },
        )
        env.pop("TRUSTSCORE_STAGES", None)  # every stage in the one worker
        log = self.tmp / "logs" / f"{self.prefix}worker.log"
        self.worker = WorkerProcess(env, log_path=log, loglevel="warn", loop=LOOP).start()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap)
        await self.producer.start()
        self._follow = asyncio.create_task(
            self.deltas.follow(self.broker.bootstrap, self.topic("trustscore-deltas"))
        )
        await self.worker.wait_ready(timeout=READY_S)
        return self.worker

    async def send(self, envelope: dict[str, Any]) -> float:
        """Produce one envelope; returns the time it was handed to the producer."""
        assert self.producer is not None
        sent = time.time()
        await self.producer.send_and_wait(self.topic("trustscore-events"), orjson.dumps(envelope))
        return sent

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            await asyncio.gather(self._follow, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()
        if self.worker is not None:
            self.worker.stop()  # SIGTERM, SIGKILL after 15 s

    async def topic_bytes(self, name: str) -> tuple[int, int]:
        """Records and key + value bytes a topic holds (read once, after a run)."""
        consumer = AIOKafkaConsumer(
            self.topic(name),
            bootstrap_servers=self.broker.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024 * 1024,
            fetch_max_bytes=128 * 1024 * 1024,
        )
        await consumer.start()
        records = size = 0
        try:
            partitions = consumer.assignment() or set()
            while not partitions:
                await asyncio.sleep(0.05)
                partitions = consumer.assignment()
            left = await consumer.end_offsets(list(partitions))
            deadline = time.monotonic() + 60
            while left and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, end in list(left.items()):
                    if await consumer.position(tp) >= end:
                        del left[tp]
                for batch in batches.values():
                    records += len(batch)
                    size += sum(len(r.key or b"") + len(r.value or b"") for r in batch)
        finally:
            await consumer.stop()
        return records, size

    async def metrics(self) -> dict[str, float]:
        assert self.worker is not None
        return await asyncio.to_thread(scrape, self.worker.url)


def shim_env(tmp: Path, **settings: str) -> dict[str, str]:
    """The worker environment that loads SHIM with these BENCH_* settings."""
    shim = tmp / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    return {"PYTHONPATH": f"{shim}{os.pathsep}{ROOT}", **settings}


def read_gc(path: Path) -> dict[str, list[float]]:
    try:
        stats: dict[str, list[float]] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return stats


def start_profiler(pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy on `pid` when BENCH_PROFILE names the output: raw folded stacks, 200 Hz,
    with native frames (the garbage collector shows only there)."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    py_spy = str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--format", "raw", "-o", out]
    command += ["--rate", "200", "--threads", "--native"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sale(event_id: str, contract: str, token: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "sale",
        "source": "marketplace",
        "occurred_at": rfc3339_now(),
        "schema_version": 1,
        "contract": contract,
        "token_id": str(token),
        "payload": {"seller": SELLER, "buyer": BUYER, "price": "1.25", "currency": "ETH"},
    }


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as out:
        out.write(data)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RunFailed(f"no VmRSS for pid {pid}")


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted `values`."""
    return values[max(0, min(len(values) - 1, math.ceil(q * len(values)) - 1))]


def histogram(metrics: dict[str, float], name: str, labels: str = "") -> dict[float, float]:
    """Cumulative bucket counts {le: count} of a histogram, summed over the label sets
    that contain `labels` (e.g. 'stage="scoring"')."""
    out: dict[float, float] = {}
    for key, value in metrics.items():
        if key.startswith(f"{name}_bucket{{") and labels in key:
            raw = key.split('le="', 1)[1].split('"', 1)[0]
            le = math.inf if raw == "+Inf" else float(raw)
            out[le] = out.get(le, 0.0) + value
    return out


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding quantile q of what was observed in between."""
    counts = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = counts[-1][1] if counts else 0.0
    for le, cumulative in counts:
        if total and cumulative >= q * total:
            return le
    return math.nan


# -- the broker's fetch wait -------------------------------------------------------------

FETCH_WAITS_MS = (1500, 500, 50)  # Faust's consumer, aiokafka's default, the SSE follower
FETCH_PROBE_DELAY_S = 0.02


async def run_fetch_probe(broker: EmbeddedBroker) -> dict[int, float]:
    """Per fetch_max_wait_ms: how long a record produced 20 ms after the consumer's last
    answer (its next fetch is then waiting on an empty partition) takes to arrive. A broker
    that answers a waiting fetch when records arrive delivers it in a few ms."""
    topic = f"fetch-probe-{secrets.token_hex(3)}"
    await ensure_topics(broker.bootstrap, [TopicSpec(topic, 1)])
    tp = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    out: dict[int, float] = {}
    try:
        for wait_ms in FETCH_WAITS_MS:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=broker.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=wait_ms,
            )
            await consumer.start()
            try:
                consumer.assign([tp])
                await consumer.seek_to_end(tp)
                await consumer.position(tp)
                samples = []
                for _ in range(6):  # the first one sets the rhythm: not counted
                    await asyncio.sleep(FETCH_PROBE_DELAY_S)
                    sent = time.monotonic()
                    await producer.send_and_wait(topic, b"x", partition=0)
                    async with asyncio.timeout(10):
                        while not await consumer.getmany(timeout_ms=5000):
                            pass
                    samples.append(time.monotonic() - sent)
                out[wait_ms] = statistics.median(samples[1:])
            finally:
                await consumer.stop()
    except TimeoutError:
        raise RunFailed("a probe record did not arrive within 10 s") from None
    finally:
        await producer.stop()
    return out


# -- fan-out ----------------------------------------------------------------------------


async def run_fanout(broker: EmbeddedBroker, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(broker, tmp)
    clients: list[ClientProcess] = []
    profiler: subprocess.Popen[bytes] | None = None
    gc_file = tmp / f"{stack.prefix}gc.json"
    try:
        worker = await stack.start(shim_env(tmp, BENCH_GC_STATS=str(gc_file)))
        clients = start_clients(args.procs, "127.0.0.1", worker.web_port)
        # Warm-up: the collection exists and the pipeline has run once before we measure.
        probe = f"{stack.prefix}fan-0"
        await stack.send(sale(probe, CONTRACT, 0))
        await stack.deltas.wait_cause(probe, PROBE_S)
        await asyncio.sleep(2.0)
        rss_before = rss_kib(worker.pid)
        target = f"/api/v1/stream?entity=collection:eth:{CONTRACT}"
        shares = [args.connections // args.procs] * args.procs
        shares[0] += args.connections - sum(shares)
        opening = time.monotonic()
        cpu_open = _cpu_seconds(worker.pid)
        answers = await asyncio.gather(
            *(c.ask("open", n, target) for c, n in zip(clients, shares, strict=True))
        )
        open_s = time.monotonic() - opening
        cpu_open = _cpu_seconds(worker.pid) - cpu_open
        opened = sum(a["opened"] for a in answers)
        if opened < args.connections:
            errors = [e for a in answers for e in a["errors"]]
            raise RunFailed(f"opened {opened} of {args.connections} streams: {errors}")
        await asyncio.sleep(2.0)  # handlers settled in their first wait
        held = (await stack.metrics()).get("trustscore_sse_clients", math.nan)
        rss_held = rss_kib(worker.pid)
        marked = stack.deltas.count  # deltas from here on reach every client
        per_delta: list[dict[str, float]] = []
        cpu_worker = cpu_clients = 0.0
        profiler = start_profiler(worker.pid)  # BENCH_PROFILE=path: py-spy, the deliveries
        gc_before = read_gc(gc_file)
        for change in range(1, args.changes + 1):
            cause = f"{stack.prefix}fan-{change}"
            cpu_w, cpu_c = _cpu_seconds(worker.pid), sum(c.cpu() for c in clients)
            await stack.send(sale(cause, CONTRACT, change))
            await stack.deltas.wait_cause(cause, 30.0)
            await asyncio.sleep(0.5)  # the rest of that publish (the collection's delta)
            expected = stack.deltas.count - marked
            got = await asyncio.gather(
                *(c.ask("wait", expected * n, 30.0) for c, n in zip(clients, shares, strict=True))
            )
            cpu_worker += _cpu_seconds(worker.pid) - cpu_w
            cpu_clients += sum(c.cpu() for c in clients) - cpu_c
            collected = await asyncio.gather(*(c.ask("collect") for c in clients))
            per_delta += _deliveries(collected, stack.deltas, args.connections)
            print(
                f"  change {change}: {len(stack.deltas.by_cause[cause])} delta(s), "
                f"frames {sum(got):,} of {expected * args.connections:,}",
                flush=True,
            )
            await asyncio.sleep(args.gap)
        stop_profiler(profiler)
        profiler = None
        gc_after = read_gc(gc_file)
        stats = await asyncio.gather(*(c.ask("stats") for c in clients))
        frames = sum(d["clients"] for d in per_delta)
        return {
            "connections": args.connections,
            "held": held,
            "open_s": open_s,
            "open_cpu_ms_per_conn": cpu_open / args.connections * 1e3,
            "rss_before_mib": rss_before / 1024,
            "rss_held_mib": rss_held / 1024,
            "at_to_kafka": statistics.median(d["at_to_kafka"] for d in per_delta),
            "kib_per_conn": (rss_held - rss_before) / args.connections,
            "deltas": len(per_delta),
            "p50": statistics.median(d["p50"] for d in per_delta),
            "p99": statistics.median(d["p99"] for d in per_delta),
            "last": statistics.median(d["last"] for d in per_delta),
            "p99_max": max(d["p99"] for d in per_delta),
            "last_max": max(d["last"] for d in per_delta),
            "missing": sum(d["missing"] for d in per_delta),
            "lost": sum(s["lost"] for s in stats),
            "worker_us_per_frame": cpu_worker / frames * 1e6 if frames else math.nan,
            "client_us_per_frame": cpu_clients / frames * 1e6 if frames else math.nan,
            "timestamp_types": sorted(stack.deltas.timestamp_types),
            # Collections and seconds per generation during the deliveries.
            **{
                f"gc{gen}": [a - b for a, b in zip(gc_after[gen], gc_before[gen], strict=True)]
                for gen in ("0", "1", "2")
                if gen in gc_after and gen in gc_before
            },
        }
    finally:
        stop_profiler(profiler)
        stop_clients(clients)
        await stack.stop()


def _deliveries(
    collected: list[tuple[Times, dict[bytes, bytes]]], deltas: DeltaLog, connections: int
) -> list[dict[str, float]]:
    """Per delta record: latency to each client from its Kafka timestamp."""
    times: Times = {}
    data: dict[bytes, bytes] = {}
    for t, d in collected:
        for frame_id, received in t.items():
            times.setdefault(frame_id, []).extend(received)
        data.update(d)
    out = []
    for frame_id, received in times.items():
        body = orjson.loads(data[frame_id])
        delta = deltas.by_key.get((body["entity"], body["version"]))
        if delta is None:
            raise RunFailed(f"frame {body['entity']} v{body['version']} not on the topic")
        latencies = sorted(t - delta.kafka_ms / 1000 for t in received)
        out.append(
            {
                "at_to_kafka": delta.kafka_ms / 1000 - delta.at,
                "clients": len(latencies),
                "missing": connections - len(latencies),
                "p50": quantile(latencies, 0.50),
                "p99": quantile(latencies, 0.99),
                "last": latencies[-1],
            }
        )
    return out


# -- produce → SSE latency --------------------------------------------------------------


@dataclass(frozen=True)
class LatencyRow:
    window: float  # TRUSTSCORE_CONFLATION_WINDOW, s
    fetch_wait_ms: int | None = None  # cap on the worker's consumers' fetch_max_wait_ms

    @classmethod
    def parse(cls, text: str) -> LatencyRow:
        window, _, fetch = text.partition(":")
        return cls(float(window), int(fetch) if fetch else None)

    @property
    def label(self) -> str:
        fetch = f", fetch wait ≤ {self.fetch_wait_ms} ms" if self.fetch_wait_ms else ""
        return f"{self.window * 1000:g} ms{fetch}"

    def env(self, tmp: Path) -> dict[str, str]:
        env = {"TRUSTSCORE_CONFLATION_WINDOW": str(self.window)}
        if self.fetch_wait_ms is not None:
            env |= shim_env(tmp, BENCH_FETCH_MAX_WAIT_MS=str(self.fetch_wait_ms))
        return env


async def run_latency(
    broker: EmbeddedBroker, tmp: Path, args: argparse.Namespace, row: LatencyRow
) -> dict[str, Any]:
    stack = Stack(broker, tmp)
    clients: list[ClientProcess] = []
    try:
        worker = await stack.start(row.env(tmp))
        clients = start_clients(1, "127.0.0.1", worker.web_port)
        (reader,) = clients
        answer = await reader.ask("open", 1, "/api/v1/stream?all=1")
        if answer["opened"] != 1:
            raise RunFailed(f"the stream did not open: {answer['errors']}")
        probe = f"{stack.prefix}probe"
        await stack.send(sale(probe, PROBE_CONTRACT, 1))
        await stack.deltas.wait_cause(probe, PROBE_S)
        if await reader.ask("wait", 1, 30.0) < 1:
            raise RunFailed("the probe's delta did not reach the SSE client")
        await asyncio.sleep(1.0)
        await reader.ask("collect")  # drop the probe's frames

        total = int(args.rate * (args.warmup + args.duration))
        warm = int(args.rate * args.warmup)
        generator = TrafficGenerator(Market(collections=100, nfts=10_000, wallets=5_000, seed=1))
        envelopes = list(generator.events(total))
        sent_at: dict[str, float] = {}
        before: dict[str, float] = {}
        cpu_before = broker_before = measured_from = 0.0
        assert stack.producer is not None
        producer, topic = stack.producer, stack.topic("trustscore-events")
        deliveries = []
        started = time.monotonic()
        sent = 0
        while sent < total:
            # Paced in 5 ms ticks: the events due by now, each stamped just before it is
            # handed to the producer (batching and sending it is part of the latency).
            due = min(total, int((time.monotonic() - started) * args.rate) + 1)
            while sent < due:
                if sent == warm:
                    before, cpu_before = await stack.metrics(), _cpu_seconds(worker.pid)
                    broker_before = _cpu_seconds(broker.pid)
                    measured_from = time.monotonic()
                envelope = envelopes[sent]
                event_id = f"{stack.prefix}{sent}"
                envelope["event_id"] = event_id
                envelope["occurred_at"] = rfc3339_now()  # live traffic: happening now
                now = time.time()
                deliveries.append(await producer.send(topic, orjson.dumps(envelope)))
                if sent >= warm:
                    sent_at[event_id] = now
                sent += 1
            await asyncio.sleep(0.005)
        produce_s = time.monotonic() - started
        await asyncio.gather(*deliveries)
        # A window stretched by a backlog lasts up to TRUSTSCORE_CONFLATION_MAX (5 s).
        await asyncio.sleep(args.drain)
        after, cpu_after = await stack.metrics(), _cpu_seconds(worker.pid)
        broker_after = _cpu_seconds(broker.pid)
        measured_s = time.monotonic() - measured_from
        rss_end, broker_rss = rss_kib(worker.pid), rss_kib(broker.pid)
        # What a scoring checkpoint writes: the changed state buckets, into the changelog.
        _, state_bytes = await stack.topic_bytes("app-entity-state-changelog")
        times, data = await reader.ask("collect")
        stats = await reader.ask("stats")
    finally:
        stop_clients(clients)
        await stack.stop()

    total_lat, pipeline, fanout, at_lag = [], [], [], []
    frames = unmatched = 0
    dump: list[dict[str, Any]] = []
    for frame_id, received in times.items():
        frames += 1
        body = orjson.loads(data[frame_id])
        cause = body.get("cause_event_id")
        if cause not in sent_at:
            unmatched += 1  # caused by a warm-up event (or by none)
            continue
        t_send, t_recv = sent_at[cause], received[0]
        total_lat.append(t_recv - t_send)
        delta = stack.deltas.by_key.get((body["entity"], body["version"]))
        if delta is not None:
            pipeline.append(delta.kafka_ms / 1000 - t_send)
            fanout.append(t_recv - delta.kafka_ms / 1000)
            at_lag.append(delta.at - t_send)
            if args.dump:
                dump.append(
                    {"entity": delta.entity, "sent": t_send, "at": delta.at}
                    | {"kafka": delta.kafka_ms / 1000, "received": t_recv}
                )
    if args.dump:
        line = orjson.dumps({"row": row.label, "deltas": dump}) + b"\n"
        await asyncio.to_thread(_append, args.dump, line)
    if not total_lat:
        raise RunFailed("no delta matched a measured event")
    for values in (total_lat, pipeline, fanout, at_lag):
        values.sort()
    lag = "trustscore_sse_dispatch_lag_seconds"
    lag_b, lag_a = histogram(before, lag), histogram(after, lag)
    wait = "trustscore_lane_wait_seconds"  # ingested → taken from a lane by scoring
    wait_b, wait_a = histogram(before, wait), histogram(after, wait)
    # The scoring checkpoint: the processor publishes nothing while it runs.
    cp, scoring = "trustscore_checkpoint_seconds", 'stage="scoring"'
    cp_b, cp_a = histogram(before, cp, scoring), histogram(after, cp, scoring)
    cp_count = cp_a.get(math.inf, 0.0) - cp_b.get(math.inf, 0.0)
    cp_sum = after.get(f"{cp}_sum{{{scoring}}}", 0.0) - before.get(f"{cp}_sum{{{scoring}}}", 0.0)
    # A route take sends its lane records and awaits them (through Faust's producer).
    route = 'stage="route"'
    route_b, route_a = histogram(before, cp, route), histogram(after, cp, route)

    def _count(name: str, m: dict[str, float]) -> float:
        return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))

    publishes = "trustscore_scoring_publishes_total"
    return {
        "row": row.label,
        "events": len(sent_at),
        "rate": total / produce_s,
        "frames": frames,
        "matched": len(total_lat),
        "unmatched": unmatched,
        "p50": quantile(total_lat, 0.50),
        "p95": quantile(total_lat, 0.95),
        "p99": quantile(total_lat, 0.99),
        "max": total_lat[-1],
        "pipe_p50": quantile(pipeline, 0.50),
        "pipe_p95": quantile(pipeline, 0.95),
        "pipe_p99": quantile(pipeline, 0.99),
        "at_p50": quantile(at_lag, 0.50),
        "at_p99": quantile(at_lag, 0.99),
        "fan_p50": quantile(fanout, 0.50),
        "fan_p99": quantile(fanout, 0.99),
        "lag_p50": histogram_quantile(lag_b, lag_a, 0.50),
        "lag_p99": histogram_quantile(lag_b, lag_a, 0.99),
        "wait_p50": histogram_quantile(wait_b, wait_a, 0.50),
        "wait_p99": histogram_quantile(wait_b, wait_a, 0.99),
        "checkpoints": cp_count,
        "cp_mean": cp_sum / cp_count if cp_count else math.nan,
        "cp_max": histogram_quantile(cp_b, cp_a, 1.0),
        "route_p99": histogram_quantile(route_b, route_a, 0.99),
        "route_max": histogram_quantile(route_b, route_a, 1.0),
        # The whole run's changelog (start-up and warm-up too) over the checkpoints it took.
        "state_mb": state_bytes / 1e6,
        "lag_mean": (_count(f"{lag}_sum", after) - _count(f"{lag}_sum", before))
        / max(1.0, _count(f"{lag}_count", after) - _count(f"{lag}_count", before)),
        "publishes": _count(publishes, after) - _count(publishes, before),
        "stretched": after.get(f'{publishes}{{trigger="backlog_max"}}', 0.0)
        - before.get(f'{publishes}{{trigger="backlog_max"}}', 0.0),
        "worker_cpu": (cpu_after - cpu_before) / measured_s,  # drain included
        "broker_cpu": (broker_after - broker_before) / measured_s,
        "broker_rss_mib": broker_rss / 1024,
        "lost": stats["lost"],
        "rss_end_mib": rss_end / 1024,
    }


# -- the run ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def _spread(runs: list[dict[str, Any]], key: str, fmt: Callable[[float], str] = _ms) -> str:
    values = [r[key] for r in runs]
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["fetch", "fanout", "latency"], action="append")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=2, help="client processes (fan-out)")
    parser.add_argument("--changes", type=int, default=10, help="score changes per fan-out run")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two changes")
    parser.add_argument("--rate", type=float, default=1000.0, help="input envelopes/s")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first")
    parser.add_argument("--drain", type=float, default=6.0, help="seconds to wait at the end")
    parser.add_argument(
        "--latency",
        type=LatencyRow.parse,
        action="append",
        metavar="WINDOW[:FETCH_MS]",
        help="a latency row: conflation window in s, optionally the worker's consumers' "
        "fetch wait cap in ms (default: 0.25, 0.05 and 0.05:20)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker logs)")
    parser.add_argument(
        "--dump", type=Path, help="append every matched delta's times (JSON lines) to this file"
    )
    args = parser.parse_args()
    scenarios = args.only or ["fetch", "fanout", "latency"]
    rows: list[LatencyRow] = args.latency or [
        LatencyRow(0.25),
        LatencyRow(0.05),
        LatencyRow(0.05, 20),
    ]
    raise_fd_limit()  # the worker and the client processes inherit it
    plan: list[LatencyRow | str] = [s for s in ("fetch", "fanout") if s in scenarios]
    if "latency" in scenarios:
        plan += rows
    started = datetime.now(UTC)
    commit, load_start = _commit(), os.getloadavg()[0]
    fanouts: list[dict[str, Any]] = []
    fetches: list[dict[int, float]] = []
    latencies: dict[str, list[dict[str, Any]]] = {}
    failures: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-sse-"))
    if args.keep:
        print(f"logs and state in {tmp}", flush=True)
    try:
        for rep in range(1, args.repeat + 1):
            for row in plan:  # interleaved, so drift hits all alike
                name = row if isinstance(row, str) else f"latency {row.label}"
                # A fresh broker per scenario: the embedded broker keeps every record in
                # memory, and a latency run leaves ~0.3 GB behind (changelog, history).
                async with EmbeddedBroker(log_dir=tmp / "logs") as broker:
                    try:
                        if row == "fetch":
                            held = await run_fetch_probe(broker)
                            fetches.append(held)
                            print(f"rep {rep} fetch {_fetch_line(held)}", flush=True)
                        elif row == "fanout":
                            r = await run_fanout(broker, tmp, args)
                            fanouts.append(r)
                            print(f"rep {rep} fanout {_fanout_line(r)}", flush=True)
                        elif isinstance(row, LatencyRow):
                            r = await run_latency(broker, tmp, args, row)
                            latencies.setdefault(row.label, []).append(r)
                            print(f"rep {rep} latency {_latency_line(r)}", flush=True)
                    except RunFailed as exc:
                        failures.append(f"rep {rep} {name}: {exc}")
                        print(f"rep {rep} {name} FAILED: {exc}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\n{started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, faust-streaming {version('faust-streaming')}, "
        f"aiohttp {version('aiohttp')}, commit {commit}; median of {args.repeat} (min–max); "
        f"load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    if fetches:
        _fetch_table(fetches)
    if fanouts:
        _fanout_table(fanouts, args)
    if latencies:
        _latency_table(latencies, args)
    if failures:
        print(f"\n{len(failures)} run(s) failed:")
        for failure in failures:
            print(f"- {failure}")
        raise SystemExit(1)


def _commit() -> str:
    """The checkout's commit, `+dirty` if the code the worker runs has local changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "trustscore_stream", "agents", "tables", "web"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{'+dirty' if dirty else ''}" if head else "unknown"


def _fetch_line(held: dict[int, float]) -> str:
    return "; ".join(
        f"fetch_max_wait_ms {wait}: a record produced {FETCH_PROBE_DELAY_S * 1000:g} ms into "
        f"a waiting fetch arrived after {_ms(seconds)} ms"
        for wait, seconds in held.items()
    )


def _fetch_table(fetches: list[dict[int, float]]) -> None:
    print(
        f"\nThe broker's fetch wait: a record produced {FETCH_PROBE_DELAY_S * 1000:g} ms into "
        "a consumer's waiting fetch (one partition, nothing else written) arrives after, ms"
    )
    print("| fetch_max_wait_ms | who asks for it | arrival ms |")
    print("|---:|---|---:|")
    who = {1500: "Faust's consumer", 500: "aiokafka's default", 50: "the SSE follower"}
    for wait in FETCH_WAITS_MS:
        runs = [{"v": f[wait]} for f in fetches if wait in f]
        if runs:
            print(f"| {wait:,} | {who.get(wait, '')} | {_spread(runs, 'v')} |")


def _fanout_line(r: dict[str, Any]) -> str:
    return (
        f"{r['connections']:,} streams opened in {r['open_s']:.1f}s, held {r['held']:,.0f}; "
        f"RSS {r['rss_before_mib']:.0f} → {r['rss_held_mib']:.0f} MiB "
        f"({r['kib_per_conn']:.1f} KiB/stream); {r['deltas']} deltas: "
        f"p50 {_ms(r['p50'])} ms, p99 {_ms(r['p99'])} ms, last {_ms(r['last'])} ms "
        f"(worst p99 {_ms(r['p99_max'])}, last {_ms(r['last_max'])}); missing {r['missing']}, "
        f"lost {r['lost']}; `at` → Kafka timestamp {_ms(r['at_to_kafka'])} ms; "
        f"worker {r['worker_us_per_frame']:.1f} µs/frame, clients "
        f"{r['client_us_per_frame']:.1f} µs/frame; GC in the deliveries "
        + ", ".join(
            f"gen{gen} {r[f'gc{gen}'][0]:.0f}× {_ms(r[f'gc{gen}'][1])} ms"
            for gen in "012"
            if f"gc{gen}" in r
        )
        + "; Kafka timestamp types "
        f"{r['timestamp_types']}"
    )


def _latency_line(r: dict[str, Any]) -> str:
    return (
        f"{r['row']}: {r['events']:,} events at {r['rate']:,.0f}/s, "
        f"{r['matched']:,} deltas matched ({r['unmatched']} not): p50 {_ms(r['p50'])} "
        f"p95 {_ms(r['p95'])} p99 {_ms(r['p99'])} max {_ms(r['max'])} ms; send→Kafka "
        f"p50 {_ms(r['pipe_p50'])} p95 {_ms(r['pipe_p95'])} p99 {_ms(r['pipe_p99'])}; "
        f"send→at p50 {_ms(r['at_p50'])} "
        f"p99 {_ms(r['at_p99'])}; Kafka→client p50 {_ms(r['fan_p50'])} p99 "
        f"{_ms(r['fan_p99'])}; dispatch lag p50 ≤{_ms(r['lag_p50'])} p99 ≤{_ms(r['lag_p99'])} "
        f"mean {_ms(r['lag_mean'])} ms; lane wait p50 ≤{_ms(r['wait_p50'])} p99 "
        f"≤{_ms(r['wait_p99'])} ms; {r['checkpoints']:.0f} checkpoints, mean "
        f"{_ms(r['cp_mean'])} ms, max ≤{_ms(r['cp_max'])} ms; route take p99 "
        f"≤{_ms(r['route_p99'])} max ≤{_ms(r['route_max'])} ms; state changelog "
        f"{r['state_mb']:.0f} MB in the run; publishes {r['publishes']:.0f} "
        f"(stretched {r['stretched']:.0f}); worker CPU {r['worker_cpu']:.0%}, RSS at the end "
        f"{r['rss_end_mib']:.0f} MiB; broker CPU {r['broker_cpu']:.0%}, RSS "
        f"{r['broker_rss_mib']:.0f} MiB; lost {r['lost']}"
    )


def _fanout_table(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    def gc(r: dict[str, Any], gen: str) -> str:
        count, seconds = r.get(f"gc{gen}", (math.nan, math.nan))
        return f"{count:.0f}× {_ms(seconds)}"

    print(
        f"\nFan-out: {args.connections:,} streams of one collection, {args.procs} client "
        f"processes, {args.changes} changes per run. Memory: worker VmRSS"
    )
    print("| run | streams held | open s | RSS before MiB | RSS held MiB | KiB/stream |")
    print("|---|---:|---:|---:|---:|---:|")
    for i, r in enumerate(runs, 1):
        print(
            f"| {i} | {r['held']:,.0f} | {r['open_s']:.1f} | {r['rss_before_mib']:,.0f} "
            f"| {r['rss_held_mib']:,.0f} | {r['kib_per_conn']:.1f} |"
        )
    kib = statistics.median(r["kib_per_conn"] for r in runs)
    print(f"| median | | | | | **{kib:.1f}** |")
    print(
        "\nDelivery: from the delta's Kafka timestamp to each client's receipt, ms; per delta "
        "over all clients, then the median over the run's deltas (worst: its worst delta); "
        "CPU per frame delivered; GC: collections × ms of the worker in the deliveries"
    )
    print(
        "| run | deltas | p50 | p99 | last client | worst p99 | worst last | missing "
        "| worker µs/frame | clients µs/frame | GC gen 1 | GC gen 2 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(runs, 1):
        print(
            f"| {i} | {r['deltas']} | {_ms(r['p50'])} | {_ms(r['p99'])} | {_ms(r['last'])} "
            f"| {_ms(r['p99_max'])} | {_ms(r['last_max'])} | {r['missing']} "
            f"| {r['worker_us_per_frame']:.1f} | {r['client_us_per_frame']:.1f} "
            f"| {gc(r, '1')} | {gc(r, '2')} |"
        )

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    print(
        f"| median | {sum(r['deltas'] for r in runs)} | {_ms(med('p50'))} "
        f"| **{_ms(med('p99'))}** | {_ms(med('last'))} | {_ms(med('p99_max'))} "
        f"| {_ms(med('last_max'))} | {sum(r['missing'] for r in runs)} "
        f"| {med('worker_us_per_frame'):.1f} | {med('client_us_per_frame'):.1f} | | |"
    )


def _latency_table(latencies: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print(
        f"\nProduce → SSE: {args.rate:,.0f} envelopes/s for {args.duration:g} s (after "
        f"{args.warmup:g} s warm-up), one all=1 client; ms from handing the event to the "
        "producer to the client's receipt of the delta it caused"
    )
    print("| conflation window | deltas | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, runs in latencies.items():
        matched = statistics.median(r["matched"] for r in runs)
        print(
            f"| {label} | {matched:,.0f} | {_spread(runs, 'p50')} | {_spread(runs, 'p95')} "
            f"| {_spread(runs, 'p99')} | {_spread(runs, 'max')} |"
        )
    print(
        "\nWhere the time goes (medians of the runs; histogram figures are the upper bound "
        "of the bucket holding the quantile), ms p50 / p99"
    )
    print(
        "| conflation window | send→`at` | send→Kafka ts p50 / p95 / p99 | Kafka ts→client "
        "| lane wait (histogram) | dispatch lag (histogram) | scoring checkpoints: n, "
        "mean / max ms | route take p99 / max | state changelog MB (run) "
        "| publishes (stretched) | worker CPU | worker RSS at end MiB | broker CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, runs in latencies.items():

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(r[key] for r in runs))

        print(
            f"| {label} | {_ms(med('at_p50'))} / {_ms(med('at_p99'))} "
            f"| {_ms(med('pipe_p50'))} / {_ms(med('pipe_p95'))} / {_ms(med('pipe_p99'))} "
            f"| {_ms(med('fan_p50'))} / {_ms(med('fan_p99'))} "
            f"| ≤{_ms(med('wait_p50'))} / ≤{_ms(med('wait_p99'))} "
            f"| ≤{_ms(med('lag_p50'))} / ≤{_ms(med('lag_p99'))} "
            f"| {med('checkpoints'):.0f}: {_ms(med('cp_mean'))} / ≤{_ms(med('cp_max'))} "
            f"| ≤{_ms(med('route_p99'))} / ≤{_ms(med('route_max'))} "
            f"| {med('state_mb'):.0f} "
            f"| {med('publishes'):,.0f} ({med('stretched'):,.0f}) "
            f"| {med('worker_cpu'):.0%} | {med('rss_end_mib'):,.0f} | {med('broker_cpu'):.0%} |"
        )


if __name__ == "__main__":
    asyncio.run(main())

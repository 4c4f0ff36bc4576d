"""Recovery and memory benchmark: a worker holding 1,000,000 NFTs' state.

    .venv/bin/python bench/recovery.py [--nfts 1000000] [--repeat 3] [--only restore|takeover]

One embedded broker for the whole run, one topic namespace.

load: `--nfts` sales, one per NFT (1,000 collections, 10,000 wallets), pre-produced as batch
records of 100 and scored by worker A (all stages, RocksDB). The sales are ordered by the
partition and state bucket their NFT lives in, so that a checkpoint rewrites only the
buckets of the NFTs that arrived since the last one: in random order every checkpoint
rewrites every bucket, and the embedded broker, which keeps every changelog record in
memory and never compacts, ran out of memory (~30 GB of changelog) before 900,000 NFTs.
Reported: the load's rate, worker
A's RSS (VmRSS) and peak RSS (VmHWM) once every event is scored and checkpointed, and the
entity-state changelog (records and bytes) the restores read.

restore (`--repeat` times): A is stopped, a fresh worker starts on an EMPTY data dir and
restores every table from its changelog. Measured from spawn: `GET /ready` answers 200
(tables recovered, partitions assigned), and 200 random NFTs answer `GET /api/v1/scores/…`
with their version; then its RSS with the whole state restored.

takeover (`--repeat` times): two workers (fresh data dirs, one standby replica each, the
app's default) restore and split the partitions; one is killed with SIGKILL. Right after
the kill, one probe sale per partition is produced. Takeover time = kill → the last probe's
delta on `trustscore-deltas` (matched by `cause_event_id`): the group's session timeout
(`TRUSTSCORE_SESSION_TIMEOUT`, 4 s by default), the rebalance, and the survivor promoting
its standby copy of the dead worker's partitions.

Settings for 1,000,000 entities (docs/architecture.md §4): TRUSTSCORE_STATE_BUCKETS=256
(8 × 256 buckets keep a bucket near 0.3 MiB, well under the 1 MiB record limit); all
others are the defaults.

Compaction. A Kafka changelog topic is compacted (`cleanup.policy=compact`): a restore there
reads about the latest record per key. The embedded broker never compacts, so after the load
its entity-state changelog holds every checkpoint's copy of every bucket (printed: records
and bytes). The restore and takeover runs therefore use a compacted copy: every table's
changelog is read to its end and its latest record per key (tombstones dropped) is written,
in the same partition, to the changelog of a second app id in a fresh topic namespace
(whose input topics are empty, so the workers restore and then idle). That is what a
compacted Kafka changelog would hand a restoring worker. `--uncompacted` restores from the
load's own changelog instead (every checkpoint's copy; a worst case Kafka does not have).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import LOOP, produce, scrape  # noqa: E402
from trustscore_stream.embedded import EmbeddedBroker, free_port  # noqa: E402
from trustscore_stream.partitioning import partition_for  # noqa: E402
from trustscore_stream.processes import WorkerProcess, worker_env  # noqa: E402
from trustscore_stream.settings import load_settings  # noqa: E402
from trustscore_stream.tables.state_buckets import bucket_of  # noqa: E402
from trustscore_stream.topics import DELTAS, EVENTS, topic_specs  # noqa: E402
from trustscore_stream.topics_admin import TopicSpec, ensure_topics  # noqa: E402

COLLECTIONS = 1_000
WALLETS = 10_000
PARTITIONS = 8
SAMPLE = 200
SETTINGS = {"TRUSTSCORE_STATE_BUCKETS": "256"}


def _address(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(160):040x}"


class Market:
    def __init__(self, seed: int = 11) -> None:
        rng = random.Random(seed)
        self.contracts = [_address(rng) for _ in range(COLLECTIONS)]
        self.wallets = [_address(rng) for _ in range(WALLETS)]
        self.rng = rng

    def nft(self, i: int) -> tuple[str, str]:
        return self.contracts[i % COLLECTIONS], str(i // COLLECTIONS)

    def sale(self, event_id: str, i: int, at: str) -> dict[str, object]:
        contract, token = self.nft(i)
        seller, buyer = self.rng.sample(self.wallets, 2)
        return {
            "event_id": event_id,
            "type": "sale",
            "source": "marketplace",
            "occurred_at": at,
            "schema_version": 1,
            "contract": contract,
            "token_id": token,
            "payload": {
                "seller": seller,
                "buyer": buyer,
                "price": f"{self.rng.uniform(0.05, 3.0):.4f}",
                "currency": "ETH",
            },
        }

    def records(self, nfts: int) -> list[bytes]:
        """One sale per NFT, as batch records of 100, in (partition, state bucket) order."""
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        buckets = int(SETTINGS["TRUSTSCORE_STATE_BUCKETS"])

        def place(i: int) -> tuple[int, int]:
            contract, token = self.nft(i)
            partition = partition_for(f"collection:eth:{contract}", PARTITIONS)
            return partition, bucket_of(f"nft:eth:{contract}:{token}", buckets)

        order = sorted(range(nfts), key=place)
        out: list[bytes] = []
        for start in range(0, nfts, 100):
            batch = [self.sale(f"load-{i}", i, at) for i in order[start : start + 100]]
            out.append(orjson.dumps(batch))
        return out


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MiB."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return out


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""
    except (urllib.error.URLError, OSError):
        return 0, b""


def _scrape(url: str) -> dict[str, float] | None:
    """The worker's metrics, or None while it does not answer within the timeout (a busy
    worker may hold its event loop for seconds, e.g. while it checkpoints)."""
    try:
        return scrape(url)
    except (TimeoutError, OSError):
        return None


def _sum(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


class Namespace:
    def __init__(self, broker: EmbeddedBroker, tmp: Path, nfts: int, market: Market) -> None:
        self.broker = broker
        self.tmp = tmp
        self.nfts = nfts
        self.prefix = f"r{secrets.token_hex(3)}-"
        self.settings = load_settings(
            {"TRUSTSCORE_BROKER": broker.url, "TRUSTSCORE_TOPIC_PREFIX": self.prefix}
        )
        self.market = market
        self.count = 0

    @property
    def changelog_prefix(self) -> str:
        return f"{self.prefix}app-"

    def worker(self, name: str) -> WorkerProcess:
        self.count += 1
        env = worker_env(
            broker_url=self.broker.url,
            embedded=True,
            data_dir=self.tmp / f"{name}-{self.count}",
            web_port=free_port(),
            extra={
                "TRUSTSCORE_TOPIC_PREFIX": self.prefix,
                "TRUSTSCORE_APP_ID": f"{self.prefix}app",
                "PYTHONPATH": str(ROOT),
                **SETTINGS,
            },
        )
        env.pop("TRUSTSCORE_STAGES", None)
        log = self.tmp / "logs" / f"{name}-{self.count}.log"
        return WorkerProcess(env, log_path=log, loglevel="warn", loop=LOOP, cwd=ROOT)

    def nft_id(self, i: int) -> str:
        contract, token = self.market.nft(i)
        return f"nft:eth:{contract}:{token}"


async def load(ns: Namespace) -> WorkerProcess:
    await ensure_topics(ns.broker.bootstrap, topic_specs(ns.settings))
    records = ns.market.records(ns.nfts)
    print(f"producing {ns.nfts:,} sales as {len(records):,} batch records", flush=True)
    await produce(ns.broker.bootstrap, ns.settings.topic(EVENTS), records)
    worker = ns.worker("load").start()
    await worker.wait_ready(timeout=120)
    first: float | None = None
    stalls = 0
    checkpoints_at_end: float | None = None
    while True:
        if not worker.alive():
            raise RuntimeError(f"load worker exited:\n{worker.log_tail()}")
        m = await asyncio.to_thread(_scrape, worker.url)
        if m is None:
            stalls += 1
            continue
        if first is None and _sum(m, "trustscore_records_received_total") > 0:
            first = time.monotonic()
        processed = _sum(m, "trustscore_lane_events_processed_total")
        if checkpoints_at_end is None and processed >= ns.nfts and first is not None:
            seconds = time.monotonic() - first
            print(
                f"load: {ns.nfts:,} events scored in {seconds:.1f} s "
                f"({ns.nfts / seconds:,.0f} events/s)",
                flush=True,
            )
            checkpoints_at_end = _sum(m, "trustscore_checkpoints_total")
        elif (
            checkpoints_at_end is not None
            and _sum(m, "trustscore_checkpoints_total") > checkpoints_at_end
        ):
            break  # every event scored, and the checkpoint that makes its state durable
        await asyncio.sleep(1.0)
    mem = _status(worker.pid)
    print(
        f"load worker holding {ns.nfts:,} NFTs: RSS {mem.get('VmRSS', 0):,.0f} MiB, "
        f"peak {mem.get('VmHWM', 0):,.0f} MiB",
        flush=True,
    )
    return worker


async def compact_into(source: Namespace, target: Namespace) -> tuple[int, int]:
    """Copy every changelog of `source` into `target`'s app, latest record per key only
    (what Kafka's log compaction leaves). Returns (records, bytes) written."""
    await ensure_topics(target.broker.bootstrap, topic_specs(target.settings))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=source.broker.bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
    )
    # One record per request: the embedded broker's end offsets go wrong after a
    # multi-record batch, which breaks Faust's table recovery (docs/operations.md).
    producer = AIOKafkaProducer(bootstrap_servers=target.broker.bootstrap, max_batch_size=1)
    await consumer.start()
    await producer.start()
    written = size = 0
    try:
        topics = sorted(
            t
            for t in await consumer.topics()
            if t.startswith(source.changelog_prefix) and t.endswith("-changelog")
        )
        for topic in topics:
            name = target.changelog_prefix + topic.removeprefix(source.changelog_prefix)
            await ensure_topics(target.broker.bootstrap, [TopicSpec(name, PARTITIONS)])
            for p in range(PARTITIONS):
                tp = TopicPartition(topic, p)
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                end = (await consumer.end_offsets([tp]))[tp]
                latest: dict[bytes, bytes | None] = {}
                while await consumer.position(tp) < end:
                    for records in (await consumer.getmany(tp, timeout_ms=2000)).values():
                        for r in records:
                            latest[r.key or b""] = r.value
                for key, value in latest.items():
                    if value is None:
                        continue
                    await producer.send_and_wait(name, value, key=key, partition=p)
                    written += 1
                    size += len(key) + len(value)
        return written, size
    finally:
        await consumer.stop()
        await producer.stop()


async def changelog_size(ns: Namespace) -> tuple[int, int]:
    """Records and bytes in the entity-state changelog (what a restore reads)."""
    topic = f"{ns.prefix}app-entity-state-changelog"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=ns.broker.bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records = size = 0
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=2000)
                for rs in batch.values():
                    records += len(rs)
                    size += sum(len(r.value or b"") + len(r.key or b"") for r in rs)
        return records, size
    finally:
        await consumer.stop()


async def restore_once(ns: Namespace, rng: random.Random) -> dict[str, float]:
    worker = ns.worker("restore").start()
    started = time.monotonic()
    try:
        ready = None
        while ready is None:
            if not worker.alive():
                raise RuntimeError(f"restore worker exited:\n{worker.log_tail()}")
            status, _ = await asyncio.to_thread(_get, f"{worker.url}/ready")
            if status == 200:
                ready = time.monotonic() - started
            else:
                await asyncio.sleep(0.1)
        sample = [ns.nft_id(rng.randrange(ns.nfts)) for _ in range(SAMPLE)]
        for entity in sample:
            while True:
                status, body = await asyncio.to_thread(_get, f"{worker.url}/api/v1/scores/{entity}")
                if status == 200 and orjson.loads(body).get("version", 0) >= 1:
                    break
                if time.monotonic() - started > 600:
                    raise RuntimeError(f"{entity}: {status} {body[:200]!r}")
                await asyncio.sleep(0.1)
        served = time.monotonic() - started
        mem = _status(worker.pid)
        return {
            "ready": ready,
            "served": served,
            "rss": mem.get("VmRSS", 0.0),
            "hwm": mem.get("VmHWM", 0.0),
        }
    finally:
        await asyncio.to_thread(worker.stop)
        shutil.rmtree(Path(worker.env["TRUSTSCORE_DATA_DIR"]), ignore_errors=True)


def _probe_nfts(ns: Namespace) -> list[int]:
    """One NFT index per partition (a partition is chosen by the collection id)."""
    found: dict[int, int] = {}
    for c, contract in enumerate(ns.market.contracts):
        p = partition_for(f"collection:eth:{contract}", PARTITIONS)
        found.setdefault(p, c)
        if len(found) == PARTITIONS:
            break
    return sorted(found.values())


async def takeover_once(ns: Namespace, round_no: int) -> dict[str, float]:
    survivor = ns.worker("survivor").start()
    victim = ns.worker("victim").start()
    consumer = AIOKafkaConsumer(bootstrap_servers=ns.broker.bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=ns.broker.bootstrap)
    await consumer.start()
    await producer.start()
    try:
        deltas = [TopicPartition(ns.settings.topic(DELTAS), p) for p in range(PARTITIONS)]
        consumer.assign(deltas)
        # Both ready and every partition assigned between them: the split is done.
        while True:
            for w in (survivor, victim):
                if not w.alive():
                    raise RuntimeError(f"worker exited:\n{w.log_tail()}")
            answers = [await asyncio.to_thread(_get, f"{w.url}/ready") for w in (survivor, victim)]
            if all(s == 200 for s, _ in answers):
                owned = [orjson.loads(b).get("assigned_partitions", 0) for _, b in answers]
                if all(o for o in owned):
                    break
            await asyncio.sleep(0.2)
        await asyncio.sleep(5)  # let the standby copies catch up, as in steady operation
        await consumer.seek_to_end(*deltas)
        for tp in deltas:
            await consumer.position(tp)
        victim.kill()
        killed = time.monotonic()
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        probes = {}
        for p, c in enumerate(_probe_nfts(ns)):
            event_id = f"probe-{round_no}-{p}"
            probes[event_id] = None
            # A new token of that collection: a fresh NFT, certain to change score.
            contract = ns.market.contracts[c]
            envelope = ns.market.sale(event_id, c, at)
            envelope["contract"] = contract
            envelope["token_id"] = str(10_000_000 + round_no)
            await producer.send_and_wait(ns.settings.topic(EVENTS), orjson.dumps(envelope))
        pending = set(probes)
        arrival: dict[str, float] = {}
        while pending:
            if time.monotonic() - killed > 300:
                raise RuntimeError(f"no delta for {sorted(pending)}:\n{survivor.log_tail()}")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    cause = orjson.loads(r.value or b"{}").get("cause_event_id")
                    if cause in pending:
                        pending.discard(cause)
                        arrival[cause] = time.monotonic() - killed
        return {"takeover": max(arrival.values()), "first": min(arrival.values())}
    finally:
        await consumer.stop()
        await producer.stop()
        for w in (victim, survivor):
            await asyncio.to_thread(w.stop)
            shutil.rmtree(Path(w.env["TRUSTSCORE_DATA_DIR"]), ignore_errors=True)


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--nfts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["restore", "takeover"], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker logs)")
    parser.add_argument(
        "--uncompacted", action="store_true", help="restore from the load's own changelogs"
    )
    args = parser.parse_args()
    only = args.only or ["restore", "takeover"]
    print(
        f"date {datetime.now(UTC).isoformat(timespec='seconds')}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, settings {SETTINGS}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-recovery-"))
    rng = random.Random(5)
    restores: list[dict[str, float]] = []
    takeovers: list[dict[str, float]] = []
    try:
        with EmbeddedBroker(log_dir=tmp / "logs") as broker:
            market = Market()
            loaded = Namespace(broker, tmp, args.nfts, market)
            loader = await load(loaded)
            await asyncio.to_thread(loader.stop)
            records, size = await changelog_size(loaded)
            print(
                f"entity-state changelog after the load: {records:,} records, "
                f"{size / 2**20:,.0f} MiB",
                flush=True,
            )
            ns = loaded
            if not args.uncompacted:
                ns = Namespace(broker, tmp, args.nfts, market)
                records, size = await compact_into(loaded, ns)
                print(
                    f"compacted copy of every changelog: {records:,} records, "
                    f"{size / 2**20:,.0f} MiB",
                    flush=True,
                )
            for rep in range(1, args.repeat + 1):
                if "restore" in only:
                    r = await restore_once(ns, rng)
                    restores.append(r)
                    print(
                        f"rep {rep} restore: ready {r['ready']:.1f} s, {SAMPLE} sampled NFTs "
                        f"served {r['served']:.1f} s, RSS {r['rss']:,.0f} MiB "
                        f"(peak {r['hwm']:,.0f})",
                        flush=True,
                    )
                if "takeover" in only:
                    t = await takeover_once(ns, rep)
                    takeovers.append(t)
                    print(
                        f"rep {rep} takeover: last probe delta {t['takeover']:.1f} s after "
                        f"kill -9 (first {t['first']:.1f} s)",
                        flush=True,
                    )
    finally:
        if args.keep:
            print(f"logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if restores:
        print(
            f"median restore: ready {_median(restores, 'ready'):.1f} s, served "
            f"{_median(restores, 'served'):.1f} s, RSS {_median(restores, 'rss'):,.0f} MiB, "
            f"peak {_median(restores, 'hwm'):,.0f} MiB"
        )
    if takeovers:
        print(f"median takeover: {_median(takeovers, 'takeover'):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Ingest benchmark: valid events/s through validation + dedup + classification + lane
routing on one worker with RocksDB, side by side in one run with Faust's no-op ceiling and
a naive per-event agent, for one envelope per record and for batch records of 100.

    .venv/bin/python bench/ingest.py [--events 200000] [--repeat 3] [--only pipeline]

Every run gets a fresh topic namespace on one embedded broker, its input pre-produced
before the worker starts; the rate is events / (last processed − first processed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustscore_stream.embedded import EmbeddedBroker, free_port  # noqa: E402
from trustscore_stream.processes import WorkerProcess, worker_env  # noqa: E402
from trustscore_stream.settings import load_settings  # noqa: E402
from trustscore_stream.topics import topic_specs  # noqa: E402
from trustscore_stream.topics_admin import ensure_topics  # noqa: E402
from trustscore_stream.traffic import Market, TrafficGenerator  # noqa: E402

LOOP = os.environ.get("BENCH_LOOP", "uvloop")


def make_input(events: int, shape: str) -> list[bytes]:
    generator = TrafficGenerator(Market(collections=100, nfts=10_000, wallets=5_000, seed=1))
    envelopes = list(generator.events(events))
    if shape == "single":
        return [orjson.dumps(e) for e in envelopes]
    return [orjson.dumps(envelopes[i : i + 100]) for i in range(0, len(envelopes), 100)]


async def produce(bootstrap: str, topic: str, records: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, r) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def routed_total(metrics: dict[str, float]) -> float:
    return sum(v for k, v in metrics.items() if k.startswith("trustscore_lane_events_total{"))


async def run_once(
    broker: EmbeddedBroker, mode: str, shape: str, records: list[bytes], events: int, tmp: Path
) -> dict[str, float]:
    prefix = f"b{secrets.token_hex(3)}-"
    settings = load_settings({"TRUSTSCORE_BROKER": broker.url, "TRUSTSCORE_TOPIC_PREFIX": prefix})
    await ensure_topics(broker.bootstrap, topic_specs(settings))
    await produce(broker.bootstrap, f"{prefix}trustscore-events", records)
    out = tmp / f"{prefix}result.json"
    env = worker_env(
        broker_url=broker.url,
        embedded=True,
        data_dir=tmp / prefix,
        web_port=free_port(),
        extra={
            "TRUSTSCORE_TOPIC_PREFIX": prefix,
            "TRUSTSCORE_APP_ID": f"{prefix}app",
            "BENCH_MODE": mode,
            "BENCH_SHAPE": shape,
            "BENCH_TOTAL": str(len(records) if mode == "noop" else events),
            "BENCH_OUT": str(out),
            "PYTHONPATH": str(ROOT),
            # Ingest alone: validation, dedup, classification and lane routing; the lanes'
            # consumer (scoring) is measured by the scoring benchmark.
            "TRUSTSCORE_STAGES": "ingest,route",
        },
    )
    worker = WorkerProcess(
        env, log_path=tmp / "logs" / f"{prefix}{mode}.log", loglevel="warn", loop=LOOP
    )
    if mode != "pipeline":
        # Same launcher, other app: the reference agents.
        worker.start = _baseline_start(worker)  # type: ignore[method-assign]
    worker.start()
    cpu_before = _cpu_seconds(worker.pid)
    profiler = start_profiler(worker.pid) if mode == "pipeline" else None
    try:
        if mode == "pipeline":
            await worker.wait_ready(timeout=60)
            first = last = None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                m = scrape(worker.url)
                received = sum(
                    v for k, v in m.items() if k.startswith("trustscore_records_received_total")
                )
                if first is None and received > 0:
                    first = time.time()
                if routed_total(m) >= events:
                    last = time.time()
                    break
                await asyncio.sleep(0.02)
            assert first is not None and last is not None, "pipeline did not finish"
            result = {"first": first, "last": last}
        else:
            deadline = time.monotonic() + 900
            while not out.exists() and time.monotonic() < deadline:
                if not worker.alive():
                    raise RuntimeError(worker.log_tail())
                await asyncio.sleep(0.05)
            result = json.loads(out.read_text())
        cpu = _cpu_seconds(worker.pid) - cpu_before
    finally:
        stop_profiler(profiler)
        worker.stop()
    seconds = result["last"] - result["first"]
    units = len(records) if mode == "noop" else events
    return {"rate": units / seconds, "seconds": seconds, "cpu": cpu}


def start_profiler(pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy on `pid` (raw folded stacks, 200 Hz) when BENCH_PROFILE names the output."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    py_spy = str(Path(sys.executable).parent / "py-spy")
    command = [
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "-o",
        out,
        "--rate",
        "200",
        "--threads",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(2)  # py-spy writes its output on SIGINT
        profiler.wait(30)


def _baseline_start(worker: WorkerProcess):  # type: ignore[no-untyped-def]
    from trustscore_stream.embedded import _pdeathsig_preexec

    def start() -> WorkerProcess:
        worker.log_path.parent.mkdir(parents=True, exist_ok=True)
        Path(worker.env["TRUSTSCORE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "faust", "-L", worker.loop, "-A", "bench.baselines"]
        command += ["worker", "-l", "warn"]
        command += ["--web-port", str(worker.web_port)]
        with open(worker.log_path, "ab") as log:
            worker.proc = subprocess.Popen(
                command,
                env=worker.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        worker.started_at = time.monotonic()
        return worker

    return start


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["noop", "naive", "pipeline"], action="append")
    parser.add_argument("--shape", choices=["single", "batch"], action="append")
    args = parser.parse_args()
    modes = args.only or ["noop", "naive", "pipeline"]
    shapes = args.shape or ["single", "batch"]
    inputs = {shape: make_input(args.events, shape) for shape in shapes}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ts-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with EmbeddedBroker(log_dir=tmp / "logs") as broker:
            for rep in range(args.repeat):
                for shape in shapes:
                    for mode in modes:  # interleaved, so drift hits every mode alike
                        r = await run_once(broker, mode, shape, inputs[shape], args.events, tmp)
                        results.setdefault((mode, shape), []).append(r)
                        print(
                            f"rep {rep + 1} {shape:6} {mode:8} {r['rate']:>10,.0f}/s "
                            f"({r['seconds']:.1f}s, cpu {r['cpu']:.1f}s)",
                            flush=True,
                        )
    print(
        f"\n{platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}, "
        f"{args.events} events, median of {args.repeat}"
    )
    print("| input shape | agent | unit | median /s | min | max | vs no-op | vs naive |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        med = {m: statistics.median(r["rate"] for r in results[(m, shape)]) for m in modes}
        for mode in modes:
            rates = [r["rate"] for r in results[(mode, shape)]]
            unit = "records" if mode == "noop" else "events"
            vs_noop = f"{med[mode] / med['noop']:.2f}×" if "noop" in med else "-"
            vs_naive = f"{med[mode] / med['naive']:.2f}×" if "naive" in med else "-"
            print(
                f"| {shape} | {mode} | {unit} | {med[mode]:,.0f} | {min(rates):,.0f} | "
                f"{max(rates):,.0f} | {vs_noop} | {vs_naive} |"
            )


if __name__ == "__main__":
    asyncio.run(main())

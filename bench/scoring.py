"""Scoring benchmark: events/s through the FULL pipeline (ingest → route → lanes → scoring,
which publishes deltas) on one worker with RocksDB, side by side in one run with Faust's
no-op ceiling, the naive per-event Faust agent and the same naive app on Quix Streams, for
one envelope per record and for batch records of 100.

    .venv/bin/python bench/scoring.py [--events 200000] [--repeat 3] [--only pipeline]
        [--traffic mix|simulated] [--variant NAME:KEY=VALUE[,KEY=VALUE]]

--traffic simulated feeds every row the simulator's market (`trustscore-stream simulate`,
seed 7) instead of traffic.py's fixed mix; --variant two:WORKERS=2 adds a pipeline row run
by two worker processes of one app (scaling).

BENCH_PROFILE=path records the pipeline worker with py-spy (raw folded stacks).

Every run gets a fresh topic namespace on one embedded broker and its input pre-produced
before the worker starts. Pipeline rate: events / (first `trustscore_records_received_total`
> 0 → sum of `trustscore_lane_events_processed_total` ≥ events), from the worker's metrics;
the reference agents report their own first and last event. Per run also the CPU seconds of
the worker process: in total (start-up included) and between the first and the last event
(the "CPU µs/unit" column), and its RSS (VmRSS) at the end. A unit is an event, except for
the no-op agent, which counts records (100 events each in the batch shape).

The Quix peer (bench/quix_peer.py) runs in an interpreter that has quixstreams 3.28.1:
BENCH_QUIX_PYTHON, else .venv/quix-peer/bin/python, else this one. quixstreams 3.28.1 pins
pydantic<2.14 while the bench extra pins pydantic 2.14.3, hence the separate environment:
    python3 -m venv .venv/quix-peer && .venv/quix-peer/bin/pip install quixstreams==3.28.1
It consumes the envelopes one per record, so it runs in the `single` shape only; the
"vs quix" column compares every row with that median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    LOOP,
    _baseline_start,
    _cpu_seconds,
    make_input,
    produce,
    scrape,
    start_profiler,
    stop_profiler,
)
from trustscore_stream.embedded import (  # noqa: E402
    EmbeddedBroker,
    _pdeathsig_preexec,
    _terminate,
    free_port,
)
from trustscore_stream.processes import WorkerProcess, worker_env  # noqa: E402
from trustscore_stream.settings import load_settings  # noqa: E402
from trustscore_stream.simulation.simulator import Simulation, SimulationConfig  # noqa: E402
from trustscore_stream.topics import topic_specs  # noqa: E402
from trustscore_stream.topics_admin import TopicSpec, ensure_topics  # noqa: E402

MODES = ("noop", "naive", "quix", "pipeline")
TRAFFIC = ("mix", "simulated")
TRAFFIC_TEXT = {
    "mix": "traffic.py mix: 100 collections, 10,000 NFTs",
    "simulated": "simulator, seed 7, its default market",
}
SHAPES = ("single", "batch")
POLL_S = 0.2  # metrics scrape interval while the pipeline runs (each scrape costs the worker)
DEADLINE_S = 900.0  # a run that has not finished by then failed
STALL_S = 120.0  # ... and so has one whose progress stood still this long

Result = dict[str, float]


def traffic_input(traffic: str, events: int, shape: str) -> list[bytes]:
    """The pre-produced input records: one envelope per record, or batch records of 100."""
    if traffic == "mix":
        return make_input(events, shape)
    simulation = Simulation(SimulationConfig(seed=7, events=events))
    envelopes = list(simulation.events())
    if shape == "single":
        return [orjson.dumps(e) for e in envelopes]
    return [orjson.dumps(envelopes[i : i + 100]) for i in range(0, len(envelopes), 100)]


def quix_python() -> str:
    if os.environ.get("BENCH_QUIX_PYTHON"):
        return os.environ["BENCH_QUIX_PYTHON"]
    local = ROOT / ".venv" / "quix-peer" / "bin" / "python"
    return str(local) if local.exists() else sys.executable


def quix_version(python: str) -> str:
    probe = subprocess.run(
        [python, "-W", "ignore", "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise SystemExit(
            f"{python} cannot import quixstreams; set BENCH_QUIX_PYTHON or run\n"
            "  python3 -m venv .venv/quix-peer && "
            ".venv/quix-peer/bin/pip install quixstreams==3.28.1\n"
            "or leave the peer out with --only noop --only naive --only pipeline"
        )
    return probe.stdout.strip()


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _sum(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class RunFailed(RuntimeError):
    pass


def _scrape_all(workers: list[WorkerProcess]) -> dict[str, float]:
    """The workers' metrics, summed per series (one worker: its own)."""
    total: dict[str, float] = {}
    for worker in workers:
        for key, value in scrape(worker.url).items():
            total[key] = total.get(key, 0.0) + value
    return total


def _cpu_all(workers: list[WorkerProcess]) -> float:
    return sum(_cpu_seconds(w.pid) for w in workers)


async def _wait_pipeline(workers: list[WorkerProcess], events: int) -> Result:
    for worker in workers:
        await worker.wait_ready(timeout=60)
    first: float | None = None
    cpu_first = float("nan")
    progress, progressed_at = -1.0, time.monotonic()
    deadline = time.monotonic() + DEADLINE_S
    m: dict[str, float] = {}
    while time.monotonic() < deadline:
        for worker in workers:
            if not worker.alive():
                rc = worker.proc.returncode if worker.proc else "?"
                raise RunFailed(f"worker exited (rc {rc})")
        m = _scrape_all(workers)
        if first is None and _sum(m, "trustscore_records_received_total") > 0:
            first = time.time()
            cpu_first = _cpu_all(workers)
        processed = _sum(m, "trustscore_lane_events_processed_total")
        if processed >= events and first is not None:
            return {
                "first": first,
                "last": time.time(),
                "cpu_first": cpu_first,
                "cpu_last": _cpu_all(workers),
                "deltas": _sum(m, "trustscore_score_changes_published_total"),
                "dlq": _sum(m, "trustscore_dead_lettered_total"),
                "retries": _sum(m, "trustscore_retries_total"),
            }
        if processed > progress:
            progress, progressed_at = processed, time.monotonic()
        elif time.monotonic() - progressed_at > STALL_S:
            break
        await asyncio.sleep(POLL_S)
    counters = (
        "trustscore_records_received_total",
        "trustscore_events_received_total",
        "trustscore_lane_events_total",
        "trustscore_lane_events_processed_total",
        "trustscore_dead_lettered_total",
        "trustscore_retries_total",
    )
    seen = ", ".join(f"{c.removeprefix('trustscore_')}={_sum(m, c):,.0f}" for c in counters)
    raise RunFailed(f"pipeline did not finish ({seen})")


def _read_result(out: Path) -> Result | None:
    """The reference agent's {"first","last","count"}, once it has written it."""
    try:
        result: Result = json.loads(out.read_text())
    except (OSError, ValueError):
        return None  # not there yet (or caught mid-write)
    return result


async def _wait_file(out: Path, alive: Callable[[], bool]) -> Result:
    deadline = time.monotonic() + DEADLINE_S
    while (result := _read_result(out)) is None:
        if not alive():
            raise RunFailed("process exited before it saw every event")
        if time.monotonic() > deadline:
            raise RunFailed("did not finish in time")
        await asyncio.sleep(0.05)
    return result


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`name:KEY=VALUE,KEY=VALUE` → (name, environment of that pipeline row's worker): app
    settings (TRUSTSCORE_*), PYTHONPATH=another checkout's root to run its code side by
    side with this one (`git worktree add /tmp/before <commit>`), or WORKERS=N: N worker
    processes of one app (one consumer group) share the partitions; rates, CPU and RSS are
    then summed over them."""
    name, _, pairs = text.partition(":")
    # A comma starts a new pair only before KEY=: values may hold commas (a stage list).
    settings = dict(pair.split("=", 1) for pair in re.split(r",(?=[A-Z_]+=)", pairs) if pair)
    allowed = all(k.startswith("TRUSTSCORE_") or k in ("PYTHONPATH", "WORKERS") for k in settings)
    if not name or name in MODES or not allowed:
        raise SystemExit(f"bad --variant {text!r}: want NAME:TRUSTSCORE_X=VALUE[,...]")
    return name, settings


async def run_faust(
    broker: EmbeddedBroker,
    mode: str,
    shape: str,
    records: list[bytes],
    events: int,
    tmp: Path,
    variant: dict[str, str] | None = None,
) -> Result:
    """One run of a reference agent (`noop`, `naive`) or of the pipeline (`variant` = the
    settings of a --variant row, on top of the defaults)."""
    pipeline = mode == "pipeline" or variant is not None
    variant = dict(variant or {})
    count = int(variant.pop("WORKERS", "1"))
    prefix = f"s{secrets.token_hex(3)}-"
    settings = load_settings({"TRUSTSCORE_BROKER": broker.url, "TRUSTSCORE_TOPIC_PREFIX": prefix})
    await ensure_topics(broker.bootstrap, topic_specs(settings))
    await produce(broker.bootstrap, f"{prefix}trustscore-events", records)
    out = tmp / f"{prefix}result.json"
    checkout = Path(variant.get("PYTHONPATH", ROOT))
    workers: list[WorkerProcess] = []
    for n in range(count):
        env = worker_env(
            broker_url=broker.url,
            embedded=True,
            data_dir=tmp / prefix / str(n),
            web_port=free_port(),
            extra={
                "TRUSTSCORE_TOPIC_PREFIX": prefix,
                "TRUSTSCORE_APP_ID": f"{prefix}app",
                "BENCH_MODE": "pipeline" if pipeline else mode,
                "BENCH_SHAPE": shape,
                **variant,
                "BENCH_TOTAL": str(len(records) if mode == "noop" else events),
                "BENCH_OUT": str(out),
                "PYTHONPATH": str(ROOT),
            },
        )
        env.pop("TRUSTSCORE_STAGES", None)  # the full pipeline: every stage in one worker
        log = tmp / "logs" / f"{prefix}{mode}-{shape}-{n}.log"
        worker = WorkerProcess(env, log_path=log, loglevel="warn", loop=LOOP, cwd=checkout)
        if not pipeline:
            worker.start = _baseline_start(worker)  # type: ignore[method-assign]
        workers.append(worker)
    for worker in workers:
        worker.start()
    cpu_before = _cpu_all(workers)
    profiler = start_profiler(workers[0].pid) if pipeline else None
    try:
        try:
            if pipeline:
                result = await _wait_pipeline(workers, events)
            else:
                result = await _wait_file(out, workers[0].alive)
        except Exception as exc:
            logs = "\n".join(f"log {w.log_path}:\n{_tail(w.log_path)}" for w in workers)
            raise RunFailed(f"{exc}\n{logs}") from exc
        result["cpu"] = _cpu_all(workers) - cpu_before
        result["rss"] = sum(_rss_mib(w.pid) for w in workers)
    finally:
        stop_profiler(profiler)
        for worker in workers:
            worker.stop()
    return result


def _launch_quix(python: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        return subprocess.Popen(
            [python, str(ROOT / "bench" / "quix_peer.py")],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_pdeathsig_preexec(),
        )


async def run_quix(
    broker: EmbeddedBroker, python: str, records: list[bytes], events: int, tmp: Path
) -> Result:
    prefix = f"s{secrets.token_hex(3)}-"
    partitions = load_settings({"TRUSTSCORE_BROKER": broker.url}).partitions
    source, sink = f"{prefix}trustscore-events", f"{prefix}quix-out"
    # ensure_topics sets retention.ms and retention.bytes, which Quix reads from the broker;
    # its changelog topic then gets the input's partition count.
    await ensure_topics(broker.bootstrap, [TopicSpec(source, partitions), TopicSpec(sink, 8)])
    await produce(broker.bootstrap, source, records)
    out = tmp / f"{prefix}result.json"
    env = dict(os.environ)
    env.update(
        BENCH_BOOTSTRAP=broker.bootstrap,
        BENCH_INPUT=source,
        BENCH_OUTPUT=sink,
        BENCH_TOTAL=str(events),
        BENCH_OUT=str(out),
        BENCH_GROUP=f"{prefix}quix",
        BENCH_STATE_DIR=str(tmp / prefix / "quix-state"),
    )
    log = tmp / "logs" / f"{prefix}quix.log"
    proc = _launch_quix(python, env, log)
    cpu_before = _cpu_seconds(proc.pid)
    try:
        try:
            result = await _wait_file(out, lambda: proc.poll() is None)
        except Exception as exc:
            raise RunFailed(f"{exc}\nlog {log}:\n{_tail(log)}") from exc
        result["cpu"] = _cpu_seconds(proc.pid) - cpu_before
        result["rss"] = _rss_mib(proc.pid)
    finally:
        _terminate(proc, 15.0)
    return result


def _line(rep: int, shape: str, mode: str, r: Result) -> str:
    text = (
        f"rep {rep} {shape:6} {mode:8} {r['rate']:>10,.0f}/s ({r['seconds']:.1f}s, "
        f"cpu {r['cpu']:.1f}s with start-up, {r['cpu_unit']:,.0f} µs/unit in the run, "
        f"rss {r['rss']:,.0f} MiB"
    )
    if "deltas" in r:
        text += f", deltas {r['deltas']:,.0f}, dlq {r['dlq']:,.0f}, retries {r['retries']:,.0f}"
    return text + ")"


def _fmt_ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}×" if reference else "-"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=MODES, action="append")
    parser.add_argument("--shape", choices=SHAPES, action="append")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker logs)")
    parser.add_argument(
        "--traffic",
        choices=TRAFFIC,
        default="mix",
        help="mix: trustscore_stream/traffic.py (100 collections, 10,000 NFTs, the ten types "
        "in fixed shares); simulated: `trustscore-stream simulate` (seed 7, its default "
        "market: heavy-tailed collections, wallets and tokens, scenarios woven in)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="an extra pipeline row with these settings, e.g. cp5:TRUSTSCORE_CHECKPOINT_INTERVAL=5",
    )
    args = parser.parse_args()
    variants = dict(parse_variant(v) for v in args.variant)
    modes = [m for m in MODES if m in (args.only or MODES)] + list(variants)
    shapes = [s for s in SHAPES if s in (args.shape or SHAPES)]
    python = quix_python()
    versions = f"quixstreams {quix_version(python)}" if "quix" in modes else ""
    inputs = {shape: traffic_input(args.traffic, args.events, shape) for shape in shapes}
    if "quix" in modes and "single" not in inputs:
        inputs["single"] = traffic_input(args.traffic, args.events, "single")
    plan = [(s, m) for s in shapes for m in modes if m != "quix"]
    if "quix" in modes:  # the peer reads one envelope per record
        plan.insert(
            next((i for i, (s, _) in enumerate(plan) if s != "single"), len(plan)),
            ("single", "quix"),
        )
    results: dict[tuple[str, str], list[Result]] = {}
    failures: list[str] = []
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-scoring-"))
    if args.keep:
        print(f"logs and state in {tmp}", flush=True)
    try:
        with EmbeddedBroker(log_dir=tmp / "logs") as broker:
            for rep in range(1, args.repeat + 1):
                for shape, mode in plan:  # interleaved, so drift hits every mode alike
                    records = inputs[shape]
                    units = len(records) if mode == "noop" else args.events
                    try:
                        if mode == "quix":
                            r = await run_quix(broker, python, records, args.events, tmp)
                        else:
                            r = await run_faust(
                                broker,
                                mode,
                                shape,
                                records,
                                args.events,
                                tmp,
                                variants.get(mode),
                            )
                    except RunFailed as exc:
                        failures.append(f"rep {rep} {shape} {mode}: {exc}")
                        print(f"rep {rep} {shape:6} {mode:8} FAILED: {exc}", flush=True)
                        continue
                    r["seconds"] = r["last"] - r["first"]
                    r["rate"] = units / r["seconds"]
                    r["cpu_unit"] = (r["cpu_last"] - r["cpu_first"]) / units * 1e6
                    results.setdefault((shape, mode), []).append(r)
                    print(_line(rep, shape, mode, r), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    _table(args, shapes, modes, results, started, versions)
    if failures:
        print(f"\n{len(failures)} run(s) failed:")
        for failure in failures:
            print(f"- {failure}")
        raise SystemExit(1)


def _table(
    args: argparse.Namespace,
    shapes: list[str],
    modes: list[str],
    results: dict[tuple[str, str], list[Result]],
    started: datetime,
    versions: str,
) -> None:
    def median(shape: str, mode: str, field: str = "rate") -> float | None:
        runs = results.get((shape, mode))
        return statistics.median(r[field] for r in runs) if runs else None

    quix = median("single", "quix")

    print(
        f"\n{started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, faust-streaming {version('faust-streaming')}"
        f"{', ' + versions if versions else ''}; {args.events:,} events "
        f"({TRAFFIC_TEXT[args.traffic]}), median of {args.repeat}; full pipeline = "
        "ingest → route → lanes → scoring, one worker, RocksDB"
    )
    print(
        "| input shape | agent | unit | median /s | min | max | vs no-op | vs naive "
        "| vs quix (single) | CPU µs/unit | CPU s total | RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        noop, naive = median(shape, "noop"), median(shape, "naive")
        for mode in modes:
            row_shape = "single" if mode == "quix" else shape
            if mode == "quix" and shape != shapes[0]:
                continue  # one quix row, in the first section
            runs = results.get((row_shape, mode))
            if not runs:
                print(f"| {row_shape} | {mode} | - | failed | | | | | | | | |")
                continue
            rates = [r["rate"] for r in runs]
            med = statistics.median(rates)
            unit = "records" if mode == "noop" else "events"
            cpu = median(row_shape, mode, "cpu_unit") or float("nan")
            total = median(row_shape, mode, "cpu") or float("nan")
            rss = median(row_shape, mode, "rss") or float("nan")
            print(
                f"| {row_shape} | {mode} | {unit} | {med:,.0f} | {min(rates):,.0f} | "
                f"{max(rates):,.0f} | {_fmt_ratio(med, noop)} | {_fmt_ratio(med, naive)} | "
                f"{_fmt_ratio(med, quix)} | {cpu:,.0f} | {total:.1f} | {rss:,.0f} |"
            )


if __name__ == "__main__":
    asyncio.run(main())

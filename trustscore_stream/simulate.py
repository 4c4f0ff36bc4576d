"""`trustscore-stream simulate`: the simulated market (trustscore_stream/simulation/) written
to a JSON Lines file or sent to the broker as batch records, with its labels file.

The I/O side only: argument handling, the file writer, the paced Kafka producer and the
progress bar (tqdm, on stderr, shown only on a terminal). docs/simulator.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson
from tqdm import tqdm

from trustscore_stream.settings import Settings
from trustscore_stream.simulation import (
    DEFAULT_EVENTS,
    DEFAULT_RATE,
    MarketShape,
    Simulation,
    SimulationConfig,
    parse_scenarios,
)
from trustscore_stream.simulation.clock import DEFAULT_START, now_ms, parse_time
from trustscore_stream.simulation.envelopes import Envelope

# Envelopes per batch record (CONTRACT §2 allows 1,000; 500 keep a record near 200 KB).
DEFAULT_BATCH = 500
# Lines written to a file per write call and progress update.
FILE_CHUNK = 2_000


def add_simulate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="a simulated NFT market with injected scenarios (docs/simulator.md)",
        description="Generate a reproducible NFT market with labelled scenarios and write it "
        "to a JSON Lines file (--out) or to the broker (TRUSTSCORE_BROKER).",
    )
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, help=f"number of events (default {DEFAULT_EVENTS:,})")
    size.add_argument("--duration", type=float, help="seconds of simulated time (× rate)")
    p.add_argument(
        "--rate",
        type=float,
        help=f"events per second: paces sending to a broker in real time; always spaces the "
        f"simulated timestamps (default {DEFAULT_RATE:g}/s of simulated time, unpaced)",
    )
    p.add_argument("--out", type=Path, help="write JSON Lines here instead of the broker")
    p.add_argument("--labels", type=Path, help="labels file (default: <out>.labels.json)")
    p.add_argument(
        "--start",
        help="simulated start time, RFC 3339 or 'now' (default: "
        f"{DEFAULT_START} for a file; for a broker, now, or when unpaced the run ends now)",
    )
    shape = MarketShape()
    p.add_argument("--collections", type=int, default=shape.collections, help="base collections")
    p.add_argument("--nfts", type=int, default=shape.nfts, help="NFTs of the base collections")
    p.add_argument("--wallets", type=int, default=shape.wallets, help="trading wallets")
    p.add_argument(
        "--scenarios",
        default="all",
        help="all (default: scaled to the event count), none, or kind[=count],… of "
        "wash_trading, rug_pull, stolen_nft, price_spike, sentiment_swing, verified_collection",
    )
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="envelopes per record")


def config_from_args(args: argparse.Namespace, to_broker: bool) -> SimulationConfig:
    """The simulation a command line asks for (ValueError with a message if it is wrong)."""
    sim_rate = args.rate if args.rate is not None else DEFAULT_RATE
    if not sim_rate > 0:
        raise ValueError("--rate must be positive")
    if args.duration is not None:
        if args.duration <= 0:
            raise ValueError("--duration must be positive")
        events = max(1, round(args.duration * sim_rate))
    else:
        events = DEFAULT_EVENTS if args.events is None else args.events
    if events < 1:
        raise ValueError("--events must be at least 1")
    if args.start == "now":
        start = now_ms()
    elif args.start:
        start = parse_time(args.start)
    elif not to_broker:
        start = parse_time(DEFAULT_START)
    elif args.rate is not None:
        start = now_ms()  # paced: events happen as they are sent
    else:
        start = now_ms() - int(events / sim_rate * 1000)  # a history that ends now
    return SimulationConfig(
        seed=args.seed,
        events=events,
        rate=sim_rate,
        start=start,
        shape=MarketShape(args.collections, args.nfts, args.wallets),
        scenarios=parse_scenarios(args.scenarios, events),
    )


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    to_broker = args.out is None
    try:
        if to_broker and settings.broker is None:
            raise ValueError("no broker: set TRUSTSCORE_BROKER=kafka://host:port, or use --out")
        if not 1 <= args.batch <= 1000:
            raise ValueError("--batch must be 1–1000 (CONTRACT §2 batch records)")
        simulation = Simulation(config_from_args(args, to_broker))
    except ValueError as exc:
        print(f"trustscore-stream simulate: {exc}", file=sys.stderr)
        return 2
    labels = args.labels or (Path(f"{args.out}.labels.json") if args.out else None)
    try:
        where = _emit(simulation, args, settings)
    except KeyboardInterrupt:
        # The labels would describe scenarios that were not played to their end.
        print(f"interrupted after {simulation.emitted:,} events; no labels", file=sys.stderr)
        return 130
    if labels is not None:
        write_labels(simulation, labels)
    scenarios = len(simulation.labels)
    print(
        f"{simulation.emitted:,} events → {where}; {scenarios} scenarios"
        + (f" → {labels}" if labels else " (no labels file: pass --labels)"),
        file=sys.stderr,
    )
    return 0


def _emit(simulation: Simulation, args: argparse.Namespace, settings: Settings) -> str:
    """Write or send every event; returns where they went."""
    total = simulation.config.events or 0
    with tqdm(total=total, unit="ev", unit_scale=True, file=sys.stderr, disable=None) as bar:
        if args.out is not None:
            write_jsonl(simulation.events(), args.out, bar.update)
            return str(args.out)
        from trustscore_stream.topics import EVENTS  # imports Faust: only when sending

        assert settings.broker is not None
        topic = settings.topic(EVENTS)
        sending = publish(
            simulation.events(),
            bootstrap(settings.broker),
            topic,
            args.rate,
            args.batch,
            bar.update,
        )
        asyncio.run(sending)
        return f"{settings.broker} topic {topic}"


def bootstrap(broker_url: str) -> str:
    """kafka://h1:p1,h2:p2 → h1:p1,h2:p2 (aiokafka's bootstrap list)."""
    return broker_url.removeprefix("kafka://")


def write_labels(simulation: Simulation, path: Path) -> None:
    document = simulation.labels_document()
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


Progress = Callable[[int], object] | None


def write_jsonl(events: Iterable[Envelope], path: Path, update: Progress = None) -> int:
    """One envelope per line; returns the count."""
    count = 0
    with path.open("wb") as out:
        for chunk in _chunks(events, FILE_CHUNK):
            out.write(b"".join(orjson.dumps(e) + b"\n" for e in chunk))
            count += len(chunk)
            if update is not None:
                update(len(chunk))
    return count


def _chunks(events: Iterable[Envelope], size: int) -> Iterator[list[Envelope]]:
    chunk: list[Envelope] = []
    for envelope in events:
        chunk.append(envelope)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def publish(
    events: Iterable[Envelope],
    bootstrap_servers: str,
    topic: str,
    rate: float | None,
    batch: int,
    update: Progress = None,
) -> int:
    """Send batch records of `batch` envelopes; with `rate`, at about `rate` events per
    second of real time, in records small enough for about 4 a second (a smooth pace).
    One record per request: the embedded broker's end-offset bug needs it, and batch
    records already amortise the request."""
    from aiokafka import AIOKafkaProducer

    if rate:
        batch = min(batch, max(1, int(rate / 4)))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=0)
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        for chunk in _chunks(events, batch):
            await producer.send_and_wait(topic, orjson.dumps(chunk))
            sent += len(chunk)
            if update is not None:
                update(len(chunk))
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    finally:
        await producer.stop()
    return sent

"""`trustscore-stream`: dev, demo and worker.

`dev` and `demo` start the embedded broker when `TRUSTSCORE_BROKER` is unset (with fresh
worker state, because that broker keeps nothing), one worker with the web server, and for
`demo` a traffic generator; Ctrl-C (or SIGTERM) stops every child. `worker` is the plain
Faust worker. `source chain` and `source poll` run the event sources (docs/sources.md).
`dlq`, `rescore`, `verify` and `status` are the operations commands (trustscore_stream/ops/).
`simulate` generates a labelled market (trustscore_stream/simulate.py, docs/simulator.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from trustscore_stream.embedded import EmbeddedBroker
from trustscore_stream.logs.setup import configure_logging
from trustscore_stream.ops.commands import OPS_COMMANDS, add_ops_commands, run_ops
from trustscore_stream.processes import WorkerProcess, worker_env
from trustscore_stream.settings import Settings, load_settings
from trustscore_stream.simulate import add_simulate_command, publish, run_simulate
from trustscore_stream.simulation import Simulation, SimulationConfig
from trustscore_stream.simulation.clock import now_ms
from trustscore_stream.topics import EVENTS
from trustscore_stream.web.auth import issue_token

log = logging.getLogger("trustscore_stream.cli")


def demo_traffic(rate: float) -> Simulation:
    """The demo's market: the simulator, unbounded, in real time from now (its scenarios
    recur every 20,000 events: at 200 events/s, every 100 s)."""
    return Simulation(SimulationConfig(seed=7, events=None, rate=rate, start=now_ms()))


async def _run_stack(settings: Settings, traffic_rate: float | None) -> int:
    broker: EmbeddedBroker | None = None
    data_dir = Path(settings.data_dir)
    if settings.broker is None:
        broker = EmbeddedBroker(log_dir=data_dir / "logs")
        await broker.astart()
        broker_url, embedded = broker.url, True
        # A fresh in-memory broker has no changelogs: old local table state would not match.
        shutil.rmtree(data_dir / "worker", ignore_errors=True)
        print(f"embedded broker: {broker_url} (pid {broker.pid})", flush=True)
    else:
        broker_url, embedded = settings.broker, settings.embedded_broker
    # The dashboard's notifications panel needs a signed-in user: without a configured
    # secret, the demo makes one up for this run and prints a token for user "demo".
    jwt_secret = settings.jwt_secret or secrets.token_urlsafe(32)
    worker = WorkerProcess(
        worker_env(
            broker_url=broker_url,
            embedded=embedded,
            data_dir=data_dir,
            web_port=settings.web_port,
            extra={"TRUSTSCORE_JWT_SECRET": jwt_secret},
        ),
        log_path=data_dir / "logs" / "worker.log",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    traffic: asyncio.Task[int] | None = None
    simulation: Simulation | None = None
    try:
        worker.start()
        print(f"worker pid {worker.pid}, log {worker.log_path}", flush=True)
        waited = await worker.wait_ready(timeout=60)
        print(f"ready in {waited:.1f}s", flush=True)
        if traffic_rate:
            simulation = demo_traffic(traffic_rate)
            bootstrap = broker_url.removeprefix("kafka://")
            events = simulation.events()
            traffic = asyncio.create_task(
                publish(events, bootstrap, settings.topic(EVENTS), traffic_rate, 100)
            )
            print(f"traffic: ~{traffic_rate:.0f} events/s as batch records", flush=True)
        token = issue_token("demo", jwt_secret)
        url = f"http://127.0.0.1:{settings.web_port}/"
        if simulation is not None:
            await subscribe_demo_user(url, token, simulation.busiest_collections(3))
        print(f"\n  TrustScore Stream is up:  {url}", flush=True)
        print(f"  signed in as user 'demo': {url}?token={token}\n", flush=True)
        print("  Ctrl-C stops everything.", flush=True)
        waiter = asyncio.create_task(stop.wait())
        watched: set[asyncio.Task[object]] = {waiter}  # type: ignore[arg-type]
        if traffic is not None:
            watched.add(traffic)  # type: ignore[arg-type]
        while not stop.is_set():
            done, _ = await asyncio.wait(watched, timeout=1.0, return_when="FIRST_COMPLETED")
            if not worker.alive():
                print(f"worker exited; log tail:\n{worker.log_tail()}", file=sys.stderr)
                return 1
            if traffic is not None and traffic in done:
                traffic.result()
        return 0
    finally:
        if traffic is not None:
            traffic.cancel()
        print("stopping…", flush=True)
        worker.stop()
        if broker is not None:
            await broker.astop()
        print("stopped.", flush=True)


async def subscribe_demo_user(url: str, token: str, collections: list[str]) -> None:
    """The demo user follows the busiest collections, so its notifications panel fills."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for entity in collections:
            body = {"entity": entity, "change_pct": 2, "channels": ["in_app"]}
            async with http.post(f"{url}api/v1/subscriptions", json=body) as answer:
                if answer.status != 201:
                    log.warning("demo subscription refused: %s", await answer.text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trustscore-stream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="embedded broker + one worker + web, no traffic")
    demo = sub.add_parser("demo", help="dev plus generated traffic")
    demo.add_argument("--rate", type=float, default=200.0, help="events per second")
    sub.add_parser("worker", help="the Faust worker (extra arguments go to faust)")
    _add_source_commands(sub)
    add_ops_commands(sub)  # dlq, rescore, verify, status (trustscore_stream/ops/)
    add_simulate_command(sub)
    args, rest = parser.parse_known_args(argv)
    settings = load_settings()
    if args.command == "worker":
        # Faust's start-up banner is not a log line: keep it out of a JSON stream.
        quiet = ["--quiet"] if (settings.log_format or "json") == "json" else []
        faust_args = ["faust", *quiet, "-L", "uvloop", "-A", "trustscore_stream.app", "worker"]
        os.execvp(sys.executable, [sys.executable, "-m", *faust_args, *rest])
    # dev, demo and the ops commands talk to a person on this console (a worker's JSON lines
    # go to its log file); the sources are services: JSON unless TRUSTSCORE_LOG_FORMAT says.
    configure_logging(settings, default_format="json" if args.command == "source" else "text")
    if args.command in OPS_COMMANDS:
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return run_ops(args, settings)
    if args.command == "simulate":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return run_simulate(args, settings)
    if args.command == "source":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return _run_source(args, settings)
    rate = args.rate if args.command == "demo" else None
    return asyncio.run(_run_stack(settings, rate))


def _add_source_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    source = sub.add_parser("source", help="run an event source (docs/sources.md)")
    kinds = source.add_subparsers(dest="kind", required=True)
    chain = kinds.add_parser("chain", help="follow EVM RPC providers for ERC-721 events")
    chain.add_argument("--rpc", action="append", default=[], help="provider URL (repeatable)")
    chain.add_argument("--from-block", type=int, help="replay from this block (backfill)")
    chain.add_argument("--confirmations", type=int, help="blocks deep before emitting")
    chain.add_argument("--contract", action="append", default=[], help="watch only these")
    chain.add_argument(
        "--marketplace", action="append", default=[], help="0xaddress=name of a sale's tx `to`"
    )
    chain.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    poll = kinds.add_parser("poll", help="scheduled HTTP pollers from a TOML config")
    poll.add_argument("--config", type=Path, required=True, help="sources.toml")
    poll.add_argument("--metrics-port", type=int, help="serve /metrics on this port")


def _run_source(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: web3 is slow to import and only the source commands need it.
    from trustscore_stream.settings import SettingsError
    from trustscore_stream.sources.commands import run_chain, run_poll
    from trustscore_stream.sources.settings import load_chain_settings

    try:
        if args.kind == "chain":
            chain = load_chain_settings(
                rpc_urls=args.rpc,
                contracts=args.contract,
                marketplaces=args.marketplace,
                confirmations=args.confirmations,
                from_block=args.from_block,
                metrics_port=args.metrics_port,
            )
            return asyncio.run(run_chain(settings, chain))
        return asyncio.run(run_poll(settings, args.config, args.metrics_port))
    except SettingsError as exc:
        print(f"trustscore-stream source {args.kind}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

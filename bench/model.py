"""Pure scoring model cost: `apply` per event and `score_*` per entity, no I/O.

    .venv/bin/python bench/model.py [--events 200000] [--repeat 3] [--against DIR [--changed]]
    .venv/bin/python bench/model.py --events 200000 --profile apply|score [--top 30]

The bench traffic (`trustscore_stream.traffic`, the market of bench/ingest.py, seed 1, a fixed
start time) is generated and encoded once and decoded once per variant. Each repetition
times, with `time.perf_counter_ns`:

- apply: a left fold of every event into one dict of states (`states.update(apply(states,
  event))`), µs per event;
- score_nft / score_collection / score_wallet over every resulting entity, µs per call. Pass
  r of a repetition reads at `now` + r seconds (`now` = one hour after the last event), so
  each pass is like one checkpoint: score_nft scores all NFTs at one time, as the stream
  layer does per checkpoint; score_nft_alone gives every call its own time, so nothing can be
  shared between calls. Creator wallets get their state the way the
  stream layer gives it to them (`collection_report` → `apply_report`), and each NFT and
  collection is scored with its creator's `summarize_wallet` summary.

`--against DIR` also times a second copy of the package tree (DIR holds `trustscore_stream/`,
e.g. an unchanged copy kept for comparison). Each variant runs in its own worker process, and
the repetitions are interleaved (rep 1 of every variant, then rep 2, …) so drift on a shared
machine hits them alike. Both variants must produce the same digest of every final state and
score, or the run fails; `--changed` times a change of the model's results instead (the digests
are printed, not compared). The markdown table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

START = datetime(2026, 11, 1, tzinfo=UTC)
# Enough calls per timed section to make the short ones (100 collections) measurable.
MIN_CALLS = 20_000


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the traffic ---------------------------------------------------------------------------


def make_input(events: int, path: Path) -> None:
    """Write the bench traffic as one JSON array of envelopes."""
    import orjson

    from trustscore_stream.traffic import Market, TrafficGenerator

    generator = TrafficGenerator(
        Market(collections=100, nfts=10_000, wallets=5_000, seed=1), start=START
    )
    path.write_bytes(orjson.dumps(list(generator.events(events))))


# --- a worker: one package tree, timed on command ------------------------------------------


class Worker:
    """Holds the decoded events and the prepared score arguments of one package tree."""

    def __init__(self, input_path: Path) -> None:
        from trustscore_stream.events.envelope import decode_envelopes

        self.events = decode_envelopes(input_path.read_bytes())
        last = max(e.occurred_at for e in self.events)
        self.now = last.replace(microsecond=0) + timedelta(hours=1)
        self.states: dict[str, Any] = {}
        self.prepared = False

    def run_apply(self) -> dict[str, float]:
        from trustscore_stream.scoring import apply

        events = self.events
        states: dict[str, Any] = {}
        gc.collect()
        t0 = time.perf_counter_ns()
        for event in events:
            states.update(apply(states, event))
        elapsed = time.perf_counter_ns() - t0
        self.states = states
        return {"apply": elapsed / len(events) / 1000}

    def _prepare(self) -> None:
        from trustscore_stream.scoring import (
            CollectionState,
            NftState,
            WalletState,
            apply_report,
            collection_report,
            creator_of,
            summarize_wallet,
        )

        if not self.states:
            self.run_apply()
        states = self.states
        colls = {k: s for k, s in states.items() if isinstance(s, CollectionState)}
        wallets: dict[str, Any] = {k: s for k, s in states.items() if isinstance(s, WalletState)}
        for coll in colls.values():
            found = collection_report(coll, self.now)
            if found is not None:
                key, report = found
                wallets[key] = apply_report(wallets.get(key), key, report)
        summaries = {k: summarize_wallet(w) for k, w in wallets.items()}
        nfts = [s for s in states.values() if isinstance(s, NftState)]
        self.nft_args = []
        for nft in nfts:
            coll = colls.get("collection:" + nft.id.split(":", 1)[1].rsplit(":", 1)[0])
            creator = creator_of(nft, coll)
            self.nft_args.append((nft, coll, summaries.get(creator) if creator else None))
        self.coll_args = []
        for coll in colls.values():
            creator = creator_of(None, coll)
            self.coll_args.append((coll, summaries.get(creator) if creator else None))
        self.wallet_args = list(wallets.values())
        self.prepared = True

    def run_score(self) -> dict[str, float]:
        """Score every entity; pass r reads at `now` + r seconds, like successive checkpoints.

        score_nft: within a pass all NFTs share one `now` (what a checkpoint does);
        score_nft_alone: every call at its own `now`, so nothing can be shared between calls.
        """
        from trustscore_stream.scoring import score_collection, score_nft, score_wallet

        if not self.prepared:
            self._prepare()
        out: dict[str, float] = {}
        nft_args = self.nft_args
        passes = max(1, MIN_CALLS // len(nft_args))
        gc.collect()
        t0 = time.perf_counter_ns()
        for r in range(passes):
            now = self.now + timedelta(seconds=r)
            for nft, coll, creator in nft_args:
                score_nft(nft, coll, creator, now)
        out["score_nft"] = (time.perf_counter_ns() - t0) / (passes * len(nft_args)) / 1000
        nows = [self.now + timedelta(seconds=10_000 + i) for i in range(len(nft_args))]
        t0 = time.perf_counter_ns()
        for (nft, coll, creator), now in zip(nft_args, nows, strict=True):
            score_nft(nft, coll, creator, now)
        out["score_nft_alone"] = (time.perf_counter_ns() - t0) / len(nft_args) / 1000
        coll_args = self.coll_args
        passes = max(1, MIN_CALLS // len(coll_args))
        t0 = time.perf_counter_ns()
        for r in range(passes):
            now = self.now + timedelta(seconds=100_000 + r)
            for coll, creator in coll_args:
                score_collection(coll, creator, now)
        out["score_collection"] = (time.perf_counter_ns() - t0) / (passes * len(coll_args)) / 1000
        wallet_args = self.wallet_args
        if wallet_args:
            passes = max(1, MIN_CALLS // len(wallet_args))
            t0 = time.perf_counter_ns()
            for r in range(passes):
                now = self.now + timedelta(seconds=r)
                for wallet in wallet_args:
                    score_wallet(wallet, now)
            out["score_wallet"] = (time.perf_counter_ns() - t0) / (passes * len(wallet_args)) / 1000
        return out

    def digest(self) -> dict[str, Any]:
        """sha256 over every final state and score: both variants must agree."""
        from trustscore_stream.scoring import (
            encode_state,
            score_collection,
            score_nft,
            score_wallet,
        )

        if not self.prepared:
            self._prepare()
        import msgspec

        h = hashlib.sha256()
        for key in sorted(self.states):
            h.update(key.encode() + b"\0" + encode_state(self.states[key]) + b"\0")
        for nft, coll, creator in self.nft_args:
            h.update(msgspec.json.encode(score_nft(nft, coll, creator, self.now)))
        for coll, creator in self.coll_args:
            h.update(msgspec.json.encode(score_collection(coll, creator, self.now)))
        for wallet in self.wallet_args:
            h.update(encode_state(wallet) + msgspec.json.encode(score_wallet(wallet, self.now)))
        return {
            "digest": h.hexdigest(),
            "events": len(self.events),
            "nfts": len(self.nft_args),
            "collections": len(self.coll_args),
            "wallets": len(self.wallet_args),
        }


def worker_main(input_path: Path) -> None:
    import trustscore_stream.scoring as scoring

    worker = Worker(input_path)
    print(json.dumps({"ready": str(Path(scoring.__file__).parent)}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "apply":
            result: dict[str, Any] = worker.run_apply()
        elif command == "score":
            result = worker.run_score()
        elif command == "digest":
            result = worker.digest()
        else:
            break
        print(json.dumps(result), flush=True)


class Variant:
    def __init__(self, name: str, tree: Path, input_path: Path) -> None:
        self.name = name
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(input_path), "--tree", str(tree)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self._read()
        _log(f"{name}: trustscore_stream.scoring from {ready['ready']}")
        self.results: dict[str, list[float]] = {}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.name} died")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def run(self, command: str) -> None:
        for key, value in self.ask(command).items():
            self.results.setdefault(key, []).append(value)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# --- driver --------------------------------------------------------------------------------


def profile(input_path: Path, what: str, top: int) -> None:
    sys.path.insert(0, str(ROOT))
    worker = Worker(input_path)
    if what == "score":
        worker._prepare()
    profiler = cProfile.Profile()
    profiler.enable()
    worker.run_apply() if what == "apply" else worker.run_score()
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", type=Path, help="a second package tree to time")
    parser.add_argument(
        "--changed", action="store_true", help="the variants' results may differ (a model change)"
    )
    parser.add_argument("--profile", choices=["apply", "score"])
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker is not None:
        sys.path.insert(0, str(args.tree))
        worker_main(args.worker)
        return

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        input_path = Path(tmp) / "events.json"
        _log(f"generating {args.events:,} events…")
        make_input(args.events, input_path)
        if args.profile:
            profile(input_path, args.profile, args.top)
            return
        trees = [("this tree", ROOT)]
        if args.against is not None:
            trees.insert(0, (f"{args.against}", args.against.resolve()))
        variants = [Variant(name, tree, input_path) for name, tree in trees]
        try:
            digests = [v.ask("digest") for v in variants]
            for v, d in zip(variants, digests, strict=True):
                _log(f"{v.name}: {d}")
            if len({d["digest"] for d in digests}) != 1 and not args.changed:
                raise SystemExit("the variants disagree on the final states or scores")
            for rep in range(args.repeat):
                for command in ("apply", "score"):
                    for v in variants:
                        v.run(command)
                _log(f"rep {rep + 1}/{args.repeat} done")
        finally:
            for v in variants:
                v.close()

    info = digests[-1]
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; {info['events']:,} events → "
        f"{info['nfts']:,} NFTs, {info['collections']} collections, {info['wallets']} creator "
        f"wallets; median of {args.repeat} (min–max), µs per call\n"
    )
    names = [v.name for v in variants]
    header = "| what | " + " | ".join(names)
    if len(variants) == 2:
        header += " | speed-up"
    print(header + " |")
    print("|---" + "|---:" * (len(names) + (1 if len(variants) == 2 else 0)) + "|")
    for key in ("apply", "score_nft", "score_nft_alone", "score_collection", "score_wallet"):
        if key not in variants[0].results:
            continue
        cells = []
        medians = []
        for v in variants:
            values = v.results[key]
            med = statistics.median(values)
            medians.append(med)
            cells.append(f"{med:.2f} ({min(values):.2f}–{max(values):.2f})")
        row = f"| {key} | " + " | ".join(cells)
        if len(variants) == 2:
            row += f" | {medians[0] / medians[1]:.2f}×"
        print(row + " |")
    print(f"\ndigest of every final state and score: {info['digest'][:16]}…")


if __name__ == "__main__":
    main()

"""`trustscore-stream verify`: recompute a sample of stored scores from their factor state on
every worker and report the ones that disagree (ops/verification.py); exit 1 on any."""

from __future__ import annotations

import argparse
import random
from collections import Counter
from typing import Any

from trustscore_stream.ops.report import print_json, table
from trustscore_stream.ops.worker_client import OpsError, WorkerClient


def add_verify_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = sub.add_parser(
        "verify", help="recompute stored scores and compare; exit 1 if any differ"
    )
    verify.add_argument("--sample", type=int, default=100, help="entities to check in all")
    verify.add_argument("--entity", action="append", default=[], help="check this one (repeatable)")
    verify.add_argument(
        "--strict", action="store_true", help="count lagging (unwatched) NFTs as mismatches"
    )
    verify.add_argument("--json", action="store_true", help="machine-readable output")


async def run_verify(args: argparse.Namespace, client: WorkerClient, seeds: list[str]) -> int:
    if args.sample < 1:
        raise OpsError("--sample must be at least 1")
    workers = await client.discover(seeds)
    params: list[tuple[str, str]] = [("sample", str(args.sample))]
    params += [("entity", e) for e in args.entity]
    if args.strict:
        params.append(("strict", "1"))
    checks: list[dict[str, Any]] = []
    entities = 0
    for url in workers:
        answer = await client.call_ok("GET", url, "/ops/v1/verify", params)
        entities += int(answer["entities"])
        checks.extend(answer["checks"])
    if args.entity:
        missing = set(args.entity) - {c["entity"] for c in checks}
        if missing:
            raise OpsError(f"no worker holds state for: {', '.join(sorted(missing))}")
    elif len(checks) > args.sample:
        checks = random.sample(checks, args.sample)
    checks.sort(key=lambda c: (c["status"] != "mismatch", c["entity"]))
    counts = Counter(c["status"] for c in checks)
    mismatches = [c for c in checks if c["status"] == "mismatch"]
    if args.json:
        print_json(
            {
                "workers": list(workers),
                "entities": entities,
                "checked": len(checks),
                "by_status": dict(counts),
                "checks": checks,
            }
        )
    else:
        shown = [c for c in checks if c["status"] != "ok"]
        if shown:
            rows = [
                (
                    c["entity"],
                    c["status"],
                    c["version"],
                    c["stored_score"],
                    c["recomputed_at_version"],
                    c["recomputed_now"],
                    c["detail"],
                )
                for c in shown
            ]
            headers = ("entity", "status", "version", "stored", "at_version", "now", "detail")
            print(table(headers, rows))
            print()
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        print(
            f"checked {len(checks)} of {entities} entities on {len(workers)} worker(s): {summary}"
        )
    return 1 if mismatches else 0

"""`trustscore-stream rescore <entity>`: score an entity again from its stored state on the
worker that owns it, and publish a new version only if the score differs (web/ops.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from trustscore_stream.ops.report import print_json
from trustscore_stream.ops.worker_client import OpsError, WorkerClient, describe


def add_rescore_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rescore = sub.add_parser("rescore", help="recompute an entity's score, publish if it differs")
    rescore.add_argument("entity", help="nft:…, collection:… or wallet:… id")
    rescore.add_argument("--dry-run", action="store_true", help="compare only, publish nothing")
    rescore.add_argument("--wait", type=float, default=30.0, help="seconds to wait for publish")
    rescore.add_argument("--json", action="store_true", help="machine-readable output")


async def run_rescore(args: argparse.Namespace, client: WorkerClient, worker: str) -> int:
    params = {"wait": f"{args.wait:g}"}
    if args.dry_run:
        params["dry_run"] = "1"
    status, body = await client.call("POST", worker, f"/ops/v1/rescore/{args.entity}", params)
    if status >= 400:
        raise OpsError(f"rescore {args.entity}: {status} {describe(body)}")
    if args.json:
        print_json(body)
    else:
        print(_describe(body))
    if status == 202:
        print("not published in time: check again with --dry-run", file=sys.stderr)
        return 1
    return 0


def _describe(body: dict[str, Any]) -> str:
    before, recomputed = body["before"], body["recomputed"]
    stored = f"v{before['version']} {before['score']} ({before['level']})"
    fresh = f"{recomputed['score']} ({recomputed['level']})"
    outcome = body["status"]
    if outcome == "dry_run":
        return f"{body['entity']}: stored {stored}, recomputed {fresh}" + (
            " — differs: rescore would publish a new version" if body["differs"] else " — same"
        )
    if outcome == "published":
        after = body["after"]
        return (
            f"{body['entity']}: published v{after['version']} {after['score']} "
            f"({after['level']}), was {stored}"
        )
    if outcome == "unchanged":
        return f"{body['entity']}: unchanged at {stored} (recomputed {fresh})"
    return f"{body['entity']}: {outcome}: {body.get('detail', '')}"

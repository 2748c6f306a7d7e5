"""The playground in headless Chromium against a real server.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright; a machine
without it fails here rather than skipping (CI installs it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from cmcstream.testing import browser as browser_module, running_server
from cmcstream.testing.browser import chromium
from cmcstream.testing.server import RunningNode

pytestmark = pytest.mark.slow

WAIT_MS = 10_000

# Pixels of the canvas in a series' colour (stroke colours of playground.js).
COLOURED_PIXELS = """([r, g, b]) => {
    const canvas = document.querySelector("#chart canvas");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let found = 0;
    for (let i = 0; i < pixels.length; i += 4) {
        const [pr, pg, pb, alpha] = pixels.slice(i, i + 4);
        const near = Math.abs(pr - r) + Math.abs(pg - g) + Math.abs(pb - b);
        if (near < 40 && alpha > 200) found += 1;
    }
    return found;
}"""
BLUE = [0x38, 0x61, 0xFB]
GREEN = [0x3F, 0xB9, 0x50]


@pytest.fixture
async def node() -> AsyncIterator[RunningNode]:
    # speed 20: a price every 250 ms, a one-second candle every 50 ms.
    async with running_server(universe_size=200, speed=20) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[BrowserContext]:
    async with chromium(width=1280, height=800) as context:
        yield context


async def open_page(browser: BrowserContext, node: RunningNode, key: str) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"http://127.0.0.1:{node.port}/")
    await page.wait_for_selector("body[data-ready]")
    await page.fill("#key", key)
    return page


async def test_subscribing_shows_pushes_and_charts_prices(
    node: RunningNode, browser: BrowserContext
) -> None:
    page = await open_page(browser, node, node.demo_key)
    assert await page.input_value("#channel") == "market@crypto_latest_price"
    await page.fill("#param-crypto_ids", "74")
    await page.press("#param-crypto_ids", "Enter")
    request = await page.input_value("#preview")
    assert '"crypto_ids": [\n      1,\n      1027,\n      74\n    ]' in request
    await page.click("#subscribe")

    await page.wait_for_selector("#state[data-state=open]")
    await page.wait_for_selector("#sub-info:has-text('3 of 100 subscriptions in use')")
    await page.wait_for_selector(".frame-data >> text=market@crypto_latest_price")
    assert '"cid": 1,' in (await page.text_content("#log") or "")
    topic = "market@crypto_latest_price|1"
    await page.wait_for_function(f"window.playground.points('{topic}') >= 3")
    assert await page.evaluate("window.playground.shown()") == topic
    assert await page.evaluate(COLOURED_PIXELS, BLUE) > 50
    # The key is remembered for the next visit.
    assert await page.evaluate("localStorage.getItem('cmcstream.playground.key')") == node.demo_key

    # Paused, the log stops growing while the pushes are still counted and charted.
    await page.check("#pause")
    shown = await page.locator(".frame-data").count()
    points = await page.evaluate(f"window.playground.points('{topic}')")
    await page.wait_for_function(f"window.playground.points('{topic}') > {points}")
    await page.wait_for_selector("#counts:has-text('not shown (paused)')")
    assert await page.locator(".frame-data").count() == shown
    await page.uncheck("#pause")

    await page.click("#unsubscribe-all")
    await page.wait_for_selector("#sub-info:has-text('0 of 100 subscriptions in use')")


async def test_one_second_candles_of_a_real_token_chart(
    node: RunningNode, browser: BrowserContext
) -> None:
    world = node.world
    assert world is not None
    token = world.busiest_token(14)
    page = await open_page(browser, node, node.demo_key)
    await page.select_option("#channel", "onchain@kline")
    await page.select_option("#param-platform_id", "14")
    # The address field offers the chain's tokens; pick the busy one.
    offered = await page.eval_on_selector_all(
        "#options-address option", "options => options.map(o => o.value)"
    )
    assert token.address in offered
    assert len(offered) == len(world.tokens_on(14))
    await page.click(".chip button")  # drop the default token
    await page.fill("#param-address", token.address)
    await page.press("#param-address", "Enter")
    await page.select_option("#param-interval", "1s")
    await page.click("#subscribe")

    topic = f"onchain@kline|14|{token.address}|1s"
    await page.wait_for_function(f"window.playground.points('{topic}') >= 5")
    assert await page.evaluate("window.playground.shown()") == topic
    assert await page.evaluate(COLOURED_PIXELS, GREEN) > 50
    assert token.symbol in (await page.text_content("#chart-note") or "")


async def test_a_bad_key_shows_the_close_code(node: RunningNode, browser: BrowserContext) -> None:
    page = await open_page(browser, node, "not-a-key")
    await page.click("#subscribe")
    await page.wait_for_selector("#state[data-state=failed]")
    info = await page.text_content("#close-info")
    assert info == "Closed with code 4100 (API key invalid)."
    assert await page.text_content("#state") == "closed 4100"
    assert await page.locator(".frame-data").count() == 0
    assert await page.locator(".frame-close >> text=4100").count() == 1


async def test_without_chromium_the_tests_fail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", tmp_path / "chromium")
    with pytest.raises(FileNotFoundError, match="apt-get install chromium"):
        async with chromium():
            pass

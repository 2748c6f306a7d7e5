"""Take ``docs/playground.png``: the playground on a live server, with frames and a chart.

Run from the repository root (needs the ``browser`` extra and ``/usr/bin/chromium``)::

    .venv/bin/python docs/screenshot.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cmcstream.testing.browser import chromium
from cmcstream.testing.server import running_server

OUT = Path(__file__).with_name("playground.png")


async def main() -> None:
    async with running_server(universe_size=1000, speed=20, dex_warm_up=True) as node:
        base = f"http://127.0.0.1:{node.port}/"
        async with chromium(width=1400, height=900) as browser:
            page = await browser.new_page()
            await page.goto(base)
            await page.wait_for_selector("body[data-ready]")
            await page.fill("#key", node.demo_key)
            # A busy token's one-second candles, then BTC and ETH prices beside them.
            await page.select_option("#channel", "onchain@kline")
            await page.select_option("#param-platform_id", "14")
            await page.select_option("#param-interval", "1s")
            await page.click("#subscribe")
            await page.select_option("#channel", "market@crypto_latest_price")
            await page.fill("#param-crypto_ids", "5426")
            await page.press("#param-crypto_ids", "Enter")
            await page.click("#subscribe")
            await page.wait_for_function("window.playground.shown() !== null")
            await asyncio.sleep(12)
            await page.screenshot(path=str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    asyncio.run(main())

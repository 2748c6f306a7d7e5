"""Debian's Chromium, headless, driven by Playwright: for the playground's tests and screenshot.

No browser is downloaded: Playwright drives ``/usr/bin/chromium`` (the
``chromium`` package), with a fresh profile that is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext

__all__ = ["CHROMIUM", "chromium"]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.asynccontextmanager
async def chromium(
    *, width: int = 1400, height: int = 900, scale: float = 1.0
) -> AsyncIterator[BrowserContext]:
    """A headless Chromium with a fresh profile, closed (and its profile removed) on exit.

    Raises:
        FileNotFoundError: when Chromium is not installed (``apt-get install chromium``).
        ModuleNotFoundError: without Playwright (the ``browser`` extra).
    """
    if not await asyncio.to_thread(CHROMIUM.exists):
        raise FileNotFoundError(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="cmcstream-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=list(ARGS),
                viewport={"width": width, "height": height},
                device_scale_factor=scale,
            )
            try:
                yield context
            finally:
                await context.close()

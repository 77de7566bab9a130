"""Headless Chromium for page tests: Debian's browser driven by Playwright, no browser download.

    async with browser_page(artifacts) as page: ...   # page.requests, page.console_errors

Every request the page makes and every console error is recorded, so a test can assert that a
page talks to no other host and logs nothing red; `shot(page, name)` keeps a screenshot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Chromium must not phone home: this machine's network is closed, and a test must not depend
# on anything but the servers it started.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    found = (
        os.environ.get("PAYGATE_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not found:
        raise RuntimeError(
            "Chromium is not installed: `make test` installs Debian's chromium (apt-get install -y chromium)"
        )
    return found


@dataclass
class RecordedPage:
    page: Any
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def hosts(self) -> set[str]:
        from urllib.parse import urlsplit

        return {urlsplit(u).netloc for u in self.requests if not u.startswith(("data:", "blob:"))}


@asynccontextmanager
async def browser_page(artifacts: Path) -> AsyncIterator[RecordedPage]:
    from playwright.async_api import async_playwright

    os.makedirs(artifacts, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        recorded = RecordedPage(page)
        page.on("request", lambda r: recorded.requests.append(r.url))
        page.on(
            "console",
            lambda m: recorded.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: recorded.console_errors.append(str(e)))
        # the dialogs behind data-confirm buttons: a person would click OK
        page.on("dialog", lambda d: d.accept())
        try:
            yield recorded
        finally:
            await context.close()
            await browser.close()


async def shot(recorded: RecordedPage, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    await recorded.page.screenshot(path=str(path), full_page=True)
    return path

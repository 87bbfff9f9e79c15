"""Browser tests of the console: Debian's Chromium (never a downloaded browser) driven by Playwright against a real
server (the `live` fixture: uvicorn on a loopback port, real WebSockets) on both backends.

Every page a test opens is watched: a request to any other origin, a Content-Security-Policy violation, an uncaught
error or a console error fails the test at teardown. `Console.axe(page)` fails on serious or critical findings.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request, async_playwright

from tests.conftest import IN_CI, PASSWORD, LiveServer
from tocsin.auth.schemas import Role

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(os.environ.get("TOCSIN_SCREENSHOTS", "")) if os.environ.get("TOCSIN_SCREENSHOTS") else None
BENIGN_CONSOLE = re.compile(r"Failed to load resource: the server responded with a status of (401|404|409|422)")


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = "Debian's Chromium is not installed (apt-get install -y chromium)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Watch:
    """What one page did that a console must never do."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in {"data", "blob", "about"}:
            return
        host = urlsplit(self.origin).netloc
        if parts.netloc != host:
            self.foreign.append(request.url)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not BENIGN_CONSOLE.search(message.text):
            self.errors.append(f"console: {message.text}")

    def page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")


@dataclass
class Console:
    """The server under test, the browser, and helpers to open signed-in pages."""

    server: LiveServer
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.server.client.base_url).rstrip("/")

    async def account(self, name: str, *roles: Role) -> str:
        """Create the account (once); its password is tests.conftest.PASSWORD."""
        await self.server.user(name, *roles)
        return name

    async def page(self, *, viewport: dict[str, int] | None = None, locale: str = "en-GB") -> Page:
        context = await self.browser.new_context(viewport=viewport or DESKTOP, locale=locale)  # type: ignore[arg-type]
        self.contexts.append(context)
        page = await context.new_page()
        watch = Watch(origin=self.base)
        self.watches.append(watch)
        page.on("request", watch.request)
        page.on("console", watch.console)
        page.on("pageerror", watch.page_error)
        return page

    async def sign_in(self, page: Page, name: str, path: str = "/") -> Page:
        """Sign in through the form, as a person does, then open `path` (a hash route)."""
        await page.goto(f"{self.base}/console/#{path}")
        await page.get_by_label("User name").fill(name)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("button", name="Sign out").wait_for()
        return page

    async def signed_in(self, name: str, *roles: Role, path: str = "/", **page_options: Any) -> Page:
        await self.account(name, *roles)
        return await self.sign_in(await self.page(**page_options), name, path)

    async def axe(self, page: Page, what: str) -> None:
        """No serious or critical accessibility violation on what the page shows now."""
        from axe_playwright_python.async_playwright import Axe

        results = await Axe().run(page)
        bad = [
            f"{violation['id']} ({violation['impact']}): {violation['help']} at "
            + ", ".join(str(node.get("target")) for node in violation["nodes"][:3])
            for violation in results.response["violations"]
            if violation.get("impact") in {"serious", "critical"}
        ]
        assert not bad, f"axe on {what}:\n" + "\n".join(bad)

    async def screenshot(self, page: Page, name: str) -> None:
        """Kept only when TOCSIN_SCREENSHOTS names a folder (docs/screenshots is made this way)."""
        if SCREENSHOTS is None:
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)

    def check(self) -> None:
        problems = [f"request to another origin: {url}" for watch in self.watches for url in watch.foreign]
        problems += [error for watch in self.watches for error in watch.errors]
        assert not problems, "\n".join(problems)


@pytest.fixture
async def console(live: LiveServer) -> AsyncIterator[Console]:
    _need_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        watched = Console(server=live, browser=browser)
        try:
            yield watched
        finally:
            for context in watched.contexts:
                await context.close()
            await browser.close()
    watched.check()

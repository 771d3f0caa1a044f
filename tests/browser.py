"""A real browser for widget tests: Debian's chromium driven by Playwright (Playwright's own
browser download cannot run here), and a tiny web server on another origin that embeds the
widget the way a customer's site does."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from playwright.async_api import Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 900, "height": 720})
            page = await context.new_page()
            page.set_default_timeout(10_000)
            yield page
        finally:
            await browser.close()


class HostSite:
    """The customer's site: one page with the widget's script tag, on its own port (origin)."""

    def __init__(self) -> None:
        self.html = "<!doctype html><title>empty</title>"
        self.port = free_port()
        self.url = f"http://localhost:{self.port}/"

        async def index(request: Request) -> HTMLResponse:
            return HTMLResponse(self.html)

        app = Starlette(routes=[Route("/", index)])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="off"))
        self.task: asyncio.Task | None = None

    def embed(self, script_src: str, **data: str) -> None:
        attrs = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in data.items())
        self.html = ("<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'><title>Acme Shoes</title></head>"
                     "<body style='font-family:sans-serif;background:#f6f7fb'><h1>Acme Shoes</h1>"
                     "<p>Our spring collection is here.</p>"
                     f'<script src="{script_src}"{attrs} async></script></body></html>')

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


async def sign_in(page: Page, base_url: str, email: str, password: str, then: str = "/app") -> None:
    """Through the real sign-in form, as a person would."""
    await page.goto(f"{base_url}/login?next={then}")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base_url}{then}*")


class ConsoleErrors:
    """Collects what the browser reports as broken: console errors (CSP violations show here),
    uncaught exceptions, and dialogs (an ``alert`` would mean injected script ran)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

        async def on_dialog(dialog) -> None:  # noqa: ANN001
            self.dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)


def screenshots_dir() -> Path:
    """Where browser tests save their screenshots: ``build/screenshots`` (not tracked), or the
    directory ``SWARMDESK_SCREENSHOTS`` names — e.g. ``docs/screenshots`` to refresh the ones the
    README shows (the best of a run are copied there by hand and committed)."""
    target = Path(os.environ.get("SWARMDESK_SCREENSHOTS") or Path(__file__).resolve().parent.parent / "build" / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target

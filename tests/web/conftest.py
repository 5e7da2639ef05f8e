"""Fixtures of the web app's browser tests: Debian's Chromium driven by Playwright (never a browser that
Playwright downloads), a real Surge over a simulated worker of its own, and helpers to read the state
behind the page through the API.

Without Chromium the browser tests skip, unless SURGE_REQUIRE_SERVICES=1 (CI), which makes its absence
a failure, as for PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.sglang_sim import RunningSim, run_subprocess
from tests.conftest import make_settings, sim_config
from tests.sdk.conftest import LiveSurge, serve_live
from tests.services import require

CHROMIUM = os.environ.get("SURGE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"
# Set, the tests save their screenshots of the main screens there (docs/screenshots comes from this).
SCREENSHOTS = os.environ.get("SURGE_SCREENSHOTS_DIR", "")


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (closed before other modules' asyncio tests run)."""
    require("Chromium", chromium_available())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Stack:
    """A Surge and the simulated worker behind it, as the browser tests drive them."""

    live: LiveSurge
    worker: RunningSim
    database: Path

    @property
    def url(self) -> str:
        return self.live.url

    def faults(self, **changes: Any) -> None:
        """Change the worker's knobs (POST /sim/faults); ``reset()`` clears them."""
        response = httpx.post(f"{self.worker.url}/sim/faults", json=changes, timeout=10)
        assert response.status_code == 200, response.text

    def reset(self) -> None:
        httpx.delete(f"{self.worker.url}/sim/faults", timeout=10).raise_for_status()

    def set_tier(self, email: str, tier: str) -> None:
        with sqlite3.connect(self.database) as connection:
            connection.execute("UPDATE user_account SET tier = ? WHERE email = ?", (tier, email))


@contextmanager
def surge_stack(
    tmp_path: Path, sqlite_template: Path, *, worker: dict[str, Any] | None = None, **environ: str
) -> Iterator[Stack]:
    """A fresh SQLite database, one simulated worker (a hundred times faster than life) and Surge."""
    database = tmp_path / "surge.sqlite3"
    shutil.copyfile(sqlite_template, database)
    with run_subprocess(sim_config(**(worker or {}))) as sim:
        settings = make_settings(f"sqlite+aiosqlite:///{database}", tmp_path, workers=[sim.url], **environ)
        with serve_live(settings) as live:
            yield Stack(live=live, worker=sim, database=database)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Stack]:
    """The Surge the browser tests of a module share (each test signs up an account of its own)."""
    # The list test fills a page of 45 conversations at once, more than a person makes in a minute.
    with surge_stack(
        tmp_path_factory.mktemp("web"), sqlite_template, SURGE_ADMISSION_CONVERSATIONS_PER_USER_PER_MIN="1000"
    ) as shared:
        yield shared


@dataclass
class PageWatch:
    """What a page did that a test should fail on: script errors, CSP violations, tokens in URLs."""

    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """``open_page(url, viewport=DESKTOP)``: a page in a context of its own (signed out, its own
    storage). After the test, no page may have thrown, hit a CSP violation or put a token in a URL."""
    contexts: list[Any] = []
    watches: list[tuple[Any, PageWatch]] = []

    def open_(url: str, viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
        context = browser.new_context(viewport=viewport, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        watch = PageWatch()
        page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: (
                watch.errors.append(f"console: {message.text}")
                if "Content Security Policy" in message.text or "Uncaught" in message.text
                else None
            ),
        )
        page.on("request", lambda request: watch.urls.append(request.url))
        watches.append((page, watch))
        page.goto(url)
        return page

    yield open_
    tokens = set()
    for page, watch in watches:
        assert not watch.errors, watch.errors
        try:
            session = session_of(page)
        except Exception:
            session = None
        if session:
            tokens |= {session["access_token"], session["refresh_token"]}
    for _, watch in watches:
        for url in watch.urls:
            assert not any(token in url for token in tokens), f"a token in a URL: {url}"
    for context in contexts:
        context.close()


def session_of(page: Any) -> dict[str, Any] | None:
    """The session the app keeps (user, tokens), or None when signed out."""
    stored = page.evaluate("localStorage.getItem('surge.session')")
    return json.loads(stored) if stored else None


_accounts = iter(range(1_000_000))


def sign_up_in_page(page: Any) -> str:
    """Create an account through the sign-in page; returns its email, with the app open."""
    email = f"web{next(_accounts)}-{time.monotonic_ns()}@example.com"
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_label("Message", exact=True).wait_for()
    return email


def api_of(stack: Stack, page: Any) -> httpx.Client:
    """An API client acting as the page's signed-in user (to check what the server holds)."""
    session = session_of(page)
    assert session is not None, "the page is signed out"
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {session['access_token']}"}, timeout=30
    )


def screenshot(page: Any, name: str) -> None:
    """Save a screenshot of the page as SURGE_SCREENSHOTS_DIR/name.png (when that is set)."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def words(text: str) -> str:
    """Text with its whitespace normalised (rendered Markdown against the stored source)."""
    return " ".join(text.split())

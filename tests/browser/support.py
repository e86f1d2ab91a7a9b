"""The console in a real headless browser: Debian's chromium driven by Playwright.

Each test makes a workspace the way the README's quick start does (`chief-of-staff init --blueprint
outbound`), starts `chief-of-staff console --no-browser` as a subprocess with its clock frozen, reads the
one-time link it prints and opens it in chromium. Nothing is faked: the console, the agency's stdio
sessions and the browser are the real programs, talking over loopback.

Chromium is the system's (Playwright cannot download browsers here). A missing chromium fails these
tests with how to install it, never skips them: a test that silently skips is a test that cannot fail.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from playwright.async_api import Browser, ConsoleMessage, Page, Request, ViewportSize

from chief_of_staff.cli.demo import server_parameters
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.domain import inbox, outcomes
from chief_of_staff.domain.authority import ledger
from chief_of_staff.domain.outcomes import MetricDelta

# Monday 23 November 2026, 09:00 in Berlin: the day the workspace is made and the console runs.
NOW = "2026-11-23T08:00:00Z"
CHROMIUM_ENV = "CHIEF_OF_STAFF_CHROMIUM"
INSTALL_CHROMIUM = (
    "The browser tests drive a real Chromium and found none: no `chromium` on PATH and no "
    f"{CHROMIUM_ENV} set. Install Debian's with `sudo apt-get install chromium` (.ci/run does this in CI), "
    f"or point {CHROMIUM_ENV} at any Chromium or Chrome executable."
)
LINK = re.compile(r"http://127\.0\.0\.1:\d+/\S+")


def chromium_executable() -> str:
    """The system chromium, or a failure that says how to install it."""
    found = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")
    if not found:
        pytest.fail(INSTALL_CHROMIUM, pytrace=False)
    return found


def run_cli(db: Path, *arguments: str, now: str = NOW) -> str:
    """The operator at a terminal, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "chief_of_staff", *arguments, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHIEF_OF_STAFF_NOW": now},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Console:
    """A running `chief-of-staff console --no-browser` and the one-time link it printed."""

    process: subprocess.Popen[str]
    link: str

    @property
    def origin(self) -> str:
        parts = urlsplit(self.link)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def base(self) -> str:
        """The console's address: its origin and this run's secret path prefix (`/c/<random>`)."""
        return self.link.split("/login?", 1)[0]

    def url(self, path: str) -> str:
        return self.base + path


def _pump(stream: Iterable[str], lines: queue.Queue[str | None]) -> None:
    """Hand the console's output over line by line; None when it closed its end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def running_console(db: Path, log: Path, now: str = NOW) -> Iterator[Console]:
    """Start the console on a free loopback port and wait (bounded) for the link it prints."""
    with log.open("a") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "chief_of_staff", "console", "--no-browser", "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "CHIEF_OF_STAFF_NOW": now, "PYTHONUNBUFFERED": "1"},
        )
        lines: queue.Queue[str | None] = queue.Queue()
        pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        pump.start()
        try:
            yield Console(process, _read_link(lines, log))
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=20)
            pump.join(timeout=20)  # the pipe is at its end once the process is gone
            assert process.stdout is not None
            process.stdout.close()


def _read_link(lines: queue.Queue[str | None], log: Path) -> str:
    """The first link the console prints on stdout, waited for at most 60 s."""
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            pytest.fail(f"the console printed no link within 60 s, only {seen!r}; its stderr: {log.read_text()}")
        if line is None:
            pytest.fail(f"the console closed its output before printing a link: {seen!r}; stderr: {log.read_text()}")
        seen.append(line)
        if found := LINK.search(line):
            return found.group(0)


VIEWPORT: ViewportSize = {"width": 1200, "height": 900}


async def new_page(browser: Browser) -> Page:
    """A page in a fresh browser profile (no cookies), whose waits give up after 10 s rather than 30."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    return await context.new_page()


async def logged_in(browser: Browser, link: str) -> Page:
    """A page logged in to the console through the one-time link."""
    page = await new_page(browser)
    landed = await page.goto(link)
    assert landed is not None and landed.ok, landed and await landed.text()
    return page


@dataclass
class Watched:
    """What a page did: every request it made and every error it reported."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")

    def foreign(self, origin: str) -> list[str]:
        """Requests to anywhere but the console's own origin (data: URLs are inline, not requests)."""
        return [url for url in self.requests if not url.startswith((origin + "/", "data:"))]


def watch(page: Page) -> Watched:
    watched = Watched()
    page.on("request", watched.on_request)
    page.on("console", watched.on_console)
    page.on("pageerror", watched.on_page_error)
    return watched


@asynccontextmanager
async def agency_session(db: Path, log: Path, now: str = NOW) -> AsyncIterator[Client]:
    """The agency's runtime as Claude Desktop runs it: `chief-of-staff serve` over stdio, the 2025-11-25 handshake."""
    params = server_parameters(db, env={"CHIEF_OF_STAFF_NOW": now})
    with log.open("a") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            yield client


async def tool_error(client: Client, tool: str, **arguments: object) -> str:
    """Call a tool that must refuse, and return what it said."""
    result = await client.call_tool(tool, dict(arguments))
    assert result.is_error, f"{tool} was expected to refuse, and answered {result.structured_content}"
    return "".join(getattr(part, "text", "") for part in result.content)


# Three weeks of an Outbound agency, for pictures worth looking at: the workspace made on Monday 2 November,
# a weekday's sends, replies and meetings logged each afternoon, and two purchases waiting on the operator.
MADE = "2026-11-02T08:00:00Z"
SDR = Actor("agency:Outbound/SDR", "agency")
RESEARCHER = Actor("agency:Outbound/Researcher", "agency")
SENT = [18, 22, 25, 20, 15, 24, 26, 30, 22, 24, 28, 31, 27, 29, 26]
REPLIES = {1: 1, 4: 1, 7: 2, 10: 1, 13: 1}
MEETINGS = {4: 1, 8: 1, 12: 1, 14: 1}


def _afternoon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 15, 30, tzinfo=UTC)


async def seed_three_weeks(db: Path) -> None:
    """Log three weeks of the agency's work through the domain, each day at its own time, as the agency."""
    clock = FixedClock(datetime(2026, 11, 2, 8, tzinfo=UTC))
    store = await Store.open(db, clock)
    try:
        days = [date(2026, 11, 2) + timedelta(days=n) for n in range(19)]
        weekdays = [day for day in days if day.weekday() < 5]
        for index, (day, sent) in enumerate(zip(weekdays, SENT, strict=True)):
            clock.set(_afternoon(day))
            metrics = [MetricDelta(key_result="emails sent", delta=sent)]
            if index in REPLIES:
                metrics.append(MetricDelta(key_result="positive replies", delta=REPLIES[index]))
            if index in MEETINGS:
                metrics.append(MetricDelta(key_result="meetings booked", delta=MEETINGS[index]))
            async with store.write() as tx:
                await outcomes.log_outcome(
                    tx,
                    SDR,
                    agency="Outbound",
                    role="SDR",
                    summary=f"First touches and follow-ups, {day}",
                    result="success",
                    metrics=metrics,
                    minutes_saved=sent * 6,
                )
        clock.set(datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
        async with store.write() as tx:
            await _waiting_on_the_operator(tx)
    finally:
        await store.close()


async def _waiting_on_the_operator(tx: Tx) -> None:
    export = await inbox.add_task(
        tx,
        RESEARCHER,
        title="Buy the fintech company export",
        agency="Outbound",
        role="Researcher",
        priority="P1",
        details="200 fintech companies in the DACH region with verified work emails.",
    )
    await inbox.add_task(
        tx,
        RESEARCHER,
        title="Refresh the ICP from last week's replies",
        agency="Outbound",
        role="Researcher",
        priority="P2",
        due_on="2026-11-20",
    )
    for amount, target, task in ((4000, "clearbit.com", export.id), (15000, "zoominfo.com", None)):
        await ledger.authorize(
            tx,
            RESEARCHER,
            agency="Outbound",
            role="Researcher",
            capability="spend.tools",
            amount_cents=amount,
            target=target,
            task_id=task,
            idempotency_key=f"seed-{target}",
        )

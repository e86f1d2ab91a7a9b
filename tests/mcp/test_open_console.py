"""One click from the chat: `open_console` opens the operator's browser on the console, and no link comes back.

The model may open the door, never walk through it: the tool's result, the server's logs and what it prints
never carry the login link or its secret, in either protocol era. A server without an opener (over HTTP,
in a sandbox) says what to do instead; an agency token never opens the operator's console.
"""

from __future__ import annotations

import html
import json
import logging
import re
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from chief_of_staff.cli.demo import server_parameters
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.domain import console_access
from chief_of_staff.domain.tokens import Principal
from chief_of_staff.http import console, console_local
from chief_of_staff.http.console_opener import LocalConsoleOpener, open_in_browser
from chief_of_staff.mcp.caller import Caller
from chief_of_staff.mcp.server import build_server
from chief_of_staff.mcp.tools.console import ConsoleOpener, OpenConsoleIn, tools
from tests.conftest import START, db_rows
from tests.http_support import http_client, make_token, make_workspace, serving
from tests.mcp.test_mcp_surface import call, refused, stand_up, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class RecordingOpener:
    """Records what it was asked to open; opens nothing."""

    browser_opens: bool = True
    opened: list[tuple[Actor, str]] = field(default_factory=list)
    closed: int = 0

    async def open(self, store: Store, actor: Actor, page: str) -> bool:
        self.opened.append((actor, page))
        return self.browser_opens

    async def close(self) -> None:
        self.closed += 1


@dataclass
class FakeBrowser:
    """The operator's browser: it keeps the links it is sent."""

    links: list[str] = field(default_factory=list)

    async def __call__(self, link: str) -> bool:
        self.links.append(link)
        return True


@asynccontextmanager
async def connect(db_path: Path, mode: str, opener: ConsoleOpener | None) -> AsyncIterator[Client]:
    server = build_server(Settings(db_path=db_path, clock=FixedClock(START)), console_opener=opener)
    async with Client(server, mode=mode) as client:
        yield client


async def test_open_console_opens_the_page_asked_for_and_says_only_that(tmp_path: Path, mode: str) -> None:
    opener = RecordingOpener()
    async with connect(tmp_path / "w.db", mode, opener) as client:
        await stand_up(client)
        asked = await call(
            client, "request_decision", agency="Outbound", kind="question", title="Call the big lead today?"
        )
        today = await call(client, "open_console")
        goals = await call(client, "open_console", page="Goals")
        authority = await call(client, "open_console", page="authority")
        decision = await call(client, "open_console", page=asked["id"].lower())
    assert [page for _, page in opener.opened] == ["/", "/goals", "/authority", f"/decisions/{asked['id']}"]
    assert authority["page"] == "authority"
    assert [today["page"], goals["page"], decision["page"]] == ["today", "goals", asked["id"]]
    assert "works only there" in decision["message"]
    assert (
        opener.opened[0][0].channel == "agency"
    )  # the model asked; the link is minted in its name, not the operator's
    assert opener.closed == 1  # the session ended: the console it started is stopped


async def test_opened_more_than_five_times_a_minute_it_refuses_until_the_minute_passes(
    tmp_path: Path, mode: str
) -> None:
    """A model told by what it reads to open the console again and again does not flood the screen with tabs."""
    opener = RecordingOpener()
    clock = FixedClock(START)
    server = build_server(Settings(db_path=tmp_path / "w.db", clock=clock), console_opener=opener)
    async with Client(server, mode=mode) as client:
        for _ in range(5):
            await call(client, "open_console")
        message = await refused(client, "open_console", {"page": "goals"})
        assert "opened 5 times in the last minute" in message and "Nothing was opened" in message
        clock.advance(timedelta(seconds=59))
        await refused(client, "open_console", {})
        clock.advance(timedelta(seconds=1))
        await call(client, "open_console", page="goals")
    assert [page for _, page in opener.opened] == ["/"] * 5 + ["/goals"]


async def test_a_page_that_is_not_a_console_page_is_refused_before_anything_opens(tmp_path: Path, mode: str) -> None:
    opener = RecordingOpener()
    async with connect(tmp_path / "w.db", mode, opener) as client:
        bad = await refused(client, "open_console", {"page": "//evil.example"})
        missing = await refused(client, "open_console", {"page": "D99"})
    assert (
        "send one of today, goals, inbox, outcomes, authority, agencies, review, audit, settings, or a decision id"
        in bad
    )
    assert "no decision D99" in missing
    assert opener.opened == []


async def test_without_an_opener_it_says_where_the_console_can_be_opened(tmp_path: Path, mode: str) -> None:
    async with connect(tmp_path / "w.db", mode, None) as client:
        message = await refused(client, "open_console", {})
    assert "cannot open the operator's browser" in message and "Nothing was opened" in message
    assert "`chief-of-staff console`" in message


async def test_without_a_browser_to_open_it_says_so(tmp_path: Path, mode: str) -> None:
    async with connect(tmp_path / "w.db", mode, RecordingOpener(browser_opens=False)) as client:
        message = await refused(client, "open_console", {"page": "goals"})
    assert "no browser could be opened" in message and "`chief-of-staff console`" in message


async def test_an_agency_token_never_opens_the_console(tmp_path: Path, clock: FixedClock, mode: str) -> None:
    ws = tmp_path / "acme.db"
    await make_workspace(ws, clock)
    agency = await make_token(ws, clock, kind="agency", agency="Outbound")
    operator = await make_token(ws, clock)
    async with serving([ws], clock) as url:
        async with http_client(f"{url}/mcp", agency, mode) as client:
            as_agency = await refused(client, "open_console", {})
        async with http_client(f"{url}/mcp", operator, mode) as client:
            as_operator = await refused(client, "open_console", {})
    assert "agency token never makes operator acts" in as_agency
    assert "cannot open the operator's browser" in as_operator  # served over HTTP: no browser here to open


async def test_an_agency_token_is_refused_even_where_an_opener_is_wired(store: Store) -> None:
    opener = RecordingOpener()
    (spec,) = tools(opener)
    principal = Principal(token_id="TK1", kind="agency", agency="Outbound", agency_id=1)
    caller = Caller(Actor(principal.viewer, "agency"), principal)
    with pytest.raises(OperatorActRefused, match="never opens the operator's console"):
        await spec.handler(store, caller, OpenConsoleIn(page="today"))
    assert opener.opened == []


async def test_a_refused_decision_names_the_console_beside_the_terminal(tmp_path: Path, mode: str) -> None:
    async with connect(tmp_path / "w.db", mode, RecordingOpener()) as client:
        message = await refused(client, "decide", {"decision_id": "D1", "approve": True})
    assert "`chief-of-staff approve D1`" in message or "chief-of-staff approve D1" in message
    assert "or in the console (open_console)" in message


# --- the real console, opened on a fake browser ---------------------------------------------------


def _secret_of(link: str) -> str:
    return link.split("token=", 1)[1]


@pytest.mark.slow
async def test_the_real_console_opens_once_on_the_link_and_nothing_else_carries_it(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "w.db"
    browser = FakeBrowser()
    caplog.set_level(logging.DEBUG)
    async with connect(db, mode, LocalConsoleOpener(browser)) as client:
        await stand_up(client)
        result = await client.call_tool("open_console", {"page": "goals"})
        assert not result.is_error, text_of(result)
        (link,) = browser.links
        secret = _secret_of(link)
        assert secret.startswith(console_access.LOGIN_PREFIX)
        for carried in (text_of(result), str(result.structured_content)):
            assert secret not in carried and "token=" not in carried and "http" not in carried
        running = console.running_console_url(db)
        assert running is not None and link.startswith(f"{running}/login?token=")
        with anyio.fail_after(10):
            async with httpx.AsyncClient(timeout=5) as http:
                first = await http.get(link)
                assert first.status_code == 303 and first.headers["location"].endswith("/goals")
                page = await http.get(f"{running}/goals")
                assert page.status_code == 200
                again = await http.get(link)
                assert again.status_code == 401 and "already used" in again.text
        resources = await client.list_resources()
        for resource in resources.resources:
            read = await client.read_resource(str(resource.uri))
            assert secret not in read.model_dump_json()
    assert console.running_console_url(db) is None  # the session ended: the console it started stopped
    # What the server logged and printed; the test's own HTTP client is the operator's browser, and logs its URLs.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    printed = capfd.readouterr()
    for seen in (logged, printed.out, printed.err):
        assert secret not in seen and "token=" not in seen
    ((actor, channel, detail),) = db_rows(
        db, "SELECT actor, channel, detail FROM audit_log WHERE action = 'console.link'"
    )
    assert (actor, channel, json.loads(detail)["page"]) == ("agency", "agency", "/goals")
    assert secret not in str(db_rows(db, "SELECT * FROM console_logins"))


# --- the default browser: a child process, so nothing it prints reaches the protocol ---------------


def _fake_desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, display: bool) -> Path:
    """A PATH with only a fake `xdg-open` that records its argument and prints it on stdout and stderr.

    The argument is the file:// URL of the page that redirects to the link; it keeps a copy of that page.
    """
    bin_dir, seen = tmp_path / "bin", tmp_path / "opened.txt"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    # It stays up a moment, as a real launcher does while it hands over: webbrowser counts a launcher
    # that is still running when asked as opened. Nothing in the test waits for it.
    page_copy = tmp_path / "page.html"
    opener.write_text(
        f'#!/bin/sh\n/bin/cat "${{1#file://}}" > "{page_copy}"\n'
        f'echo "$1" > "{seen}"\necho "$1"\necho "$1" >&2\nexec /bin/sleep 2\n'
    )
    opener.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    for name in (
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "BROWSER",
        "XDG_CURRENT_DESKTOP",
        "GNOME_DESKTOP_SESSION_ID",
        "KDE_FULL_SESSION",
    ):
        monkeypatch.delenv(name, raising=False)
    if display:
        monkeypatch.setenv("DISPLAY", ":99")
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xdg-open is the Linux desktop's opener")
async def test_the_default_browser_gets_the_link_and_the_servers_output_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    seen = _fake_desktop(tmp_path, monkeypatch, display=True)
    link = "http://127.0.0.1:1/login?token=cosl_not-a-real-one"
    assert await open_in_browser(link)
    with anyio.fail_after(10):
        while not (seen.exists() and seen.read_text().endswith("\n")):
            await anyio.sleep(0.01)  # the desktop's opener runs on its own; wait for it, bounded
    # The launcher's command line (readable by every local user) names a private page, not the link.
    uri = seen.read_text().strip()
    assert uri.startswith("file:///") and "token" not in uri
    page = Path(uri.removeprefix("file://"))
    assert stat.S_IMODE(page.stat().st_mode) == 0o600 and stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    assert _link_in(page.read_text()) == link
    printed = capfd.readouterr()
    assert link not in printed.out and link not in printed.err
    console_local.remove_handoffs()  # what the opener's close does (else a minute later)
    assert not page.exists() and not page.parent.exists()


def _link_in(page: str) -> str:
    """The link a handoff page redirects to (its meta refresh), the same as its fallback anchor's."""
    (refresh,) = re.findall(r"content='0;url=([^']*)'", page)
    (anchor,) = re.findall(r"<a href='([^']*)'", page)
    assert refresh == anchor
    return html.unescape(refresh)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux machine with no display")
async def test_with_no_display_no_browser_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fake_desktop(tmp_path, monkeypatch, display=False)
    assert not await open_in_browser("http://127.0.0.1:1/login?token=cosl_not-a-real-one")
    assert not seen.exists()


# --- the real thing: `chief-of-staff serve` over stdio, as Claude Desktop starts it -------------------------


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="xdg-open is the Linux desktop's opener")
async def test_over_stdio_the_chat_opens_the_console_in_the_desktops_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude Desktop's protocol, the real `serve`: the desktop's opener gets the link (and prints it, as
    launchers do) while the protocol on the server's stdout stays intact and its stderr never shows it."""
    db = tmp_path / "w.db"
    seen = _fake_desktop(tmp_path, monkeypatch, display=True)
    env = {"CHIEF_OF_STAFF_NOW": "2026-11-23T08:00:00Z", "PATH": str(tmp_path / "bin"), "DISPLAY": ":99"}
    with (tmp_path / "server.log").open("w") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(server_parameters(db, env=env), errlog=errlog), mode="legacy") as client:
            result = await client.call_tool("open_console", {"page": "goals"})
            assert not result.is_error, text_of(result)
            assert result.structured_content is not None and result.structured_content["page"] == "goals"
            while not (seen.exists() and seen.read_text().endswith("\n")):
                await anyio.sleep(0.01)  # the desktop's opener runs on its own; wait for it, bounded
            assert "token" not in seen.read_text()  # the launcher was given the page, not the link
            handoff = Path(seen.read_text().strip().removeprefix("file://"))
            link = _link_in((tmp_path / "page.html").read_text())
            assert "token=" not in text_of(result) and _secret_of(link) not in text_of(result)
            async with httpx.AsyncClient(timeout=5) as http:
                first = await http.get(link)
                assert first.status_code == 303 and first.headers["location"].endswith("/goals")
                assert (await http.get(link)).status_code == 401  # once only
            assert (await client.call_tool("brief", {})).is_error is False  # the protocol still speaks
    assert _secret_of(link) not in (tmp_path / "server.log").read_text()
    assert console.running_console_url(db) is None  # the server stopped its console when the session ended
    assert not handoff.exists()  # nor is the page that handed the link over left behind

"""Getting in: the one-time link opens the console once, and its secret leaves the address bar."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser

from chief_of_staff.http.console_local import handoff_page, remove_handoff
from tests.browser.support import LINK, Console, new_page, run_cli

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_the_login_link_opens_the_console_once(workspace: Path, console: Console, browser: Browser) -> None:
    [secret] = parse_qs(urlsplit(console.link).query)["token"]

    operator = await new_page(browser)
    landed = await operator.goto(console.link)
    assert landed is not None and landed.ok
    assert operator.url == console.url("/") and secret not in operator.url
    await operator.get_by_role("link", name="Goals").click()
    assert operator.url == console.url("/goals")
    [cookie] = await operator.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and secret not in cookie["value"]

    # The same link in another browser (someone who copied it, or the history) is refused and opens nothing.
    stranger = await new_page(browser)
    again = await stranger.goto(console.link)
    assert again is not None and again.status == 401
    assert "already used" in await stranger.inner_text("main")
    shut = await stranger.goto(console.url("/"))
    assert shut is not None and shut.status == 401
    assert await stranger.context.cookies() == []

    # A fresh link minted at the terminal for the running console opens it, once, in that browser.
    fresh = LINK.search(run_cli(workspace, "console", "--link"))
    assert fresh is not None and fresh.group(0) != console.link
    reopened = await stranger.goto(fresh.group(0))
    assert reopened is not None and reopened.ok and stranger.url == console.url("/")


class _OtherLocalServer(BaseHTTPRequestHandler):
    """Some other server on 127.0.0.1 (a dev server): it records the cookies browsers send it."""

    cookies: ClassVar[list[str]] = []
    console = ""

    def do_GET(self) -> None:
        _OtherLocalServer.cookies.append(self.headers.get("Cookie", ""))
        body = f'<html><body><img src="{self.console}/" alt=""></body></html>'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


async def test_another_port_of_127_0_0_1_is_not_sent_the_session_cookie(console: Console, browser: Browser) -> None:
    """Browsers do not scope cookies by port; the console's cookie is scoped to its secret path instead."""
    operator = await new_page(browser)
    landed = await operator.goto(console.link)
    assert landed is not None and landed.ok
    [cookie] = await operator.context.cookies()
    assert cookie["path"] == urlsplit(console.base).path + "/" and len(cookie["path"]) == len("/c//") + 32

    _OtherLocalServer.console = console.base  # even knowing the console's address, it only gets a 403 image
    other = HTTPServer(("127.0.0.1", 0), _OtherLocalServer)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        answered = await operator.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        assert answered is not None and answered.ok
        await operator.wait_for_load_state("networkidle")
    finally:
        other.shutdown()
        other.server_close()
    assert _OtherLocalServer.cookies and not any("cos_console_" in sent for sent in _OtherLocalServer.cookies)


async def test_the_hand_off_page_a_browser_is_opened_on_logs_in(console: Console, browser: Browser) -> None:
    """What open_console and `chief-of-staff console` open: a private file:// page sending the browser on.

    A file:// page has no origin, so the browser calls the navigation cross-site; the console lets that
    one request in (its secret path and the one-time token are in it), then continues from its own page.
    """
    page_file = handoff_page(console.link)
    try:
        operator = await new_page(browser)
        await operator.goto(page_file.as_uri())
        await operator.wait_for_url(console.url("/"))
        assert await operator.get_by_role("heading", name="Today").count() >= 1
        assert "token" not in operator.url
    finally:
        remove_handoff(page_file)

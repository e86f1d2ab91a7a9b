"""Getting in: the one-time link opens the console once, and its secret leaves the address bar."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser

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

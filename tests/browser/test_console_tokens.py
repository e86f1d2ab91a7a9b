"""The Settings page in a real browser: the operator creates an access token through the form, sees its secret
once, finds it gone when Settings is loaded again, and revokes the token; the workspace file says each happened,
as the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from chief_of_staff.domain import tokens
from tests.browser.support import Console, logged_in, watch
from tests.conftest import db_rows

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def submit(page: Page, button: str) -> None:
    """Press a form's button and wait for the page it leads to."""
    async with page.expect_navigation():
        await page.get_by_role("button", name=button).click()


def token_rows(db: Path) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT id, kind, agency_id, role_id, label, revoked_at FROM access_tokens")


def acts_on(db: Path, subject: str) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT action, actor, channel FROM audit_log WHERE subject = ? ORDER BY id", (subject,))


async def test_a_token_is_created_shown_once_and_revoked_in_the_console(
    workspace: Path, console: Console, browser: Browser
) -> None:
    page = await logged_in(browser, console.link)
    seen = watch(page)
    await page.goto(console.url("/settings"))

    create = page.get_by_role("form", name="Create a token")
    await create.get_by_label("Acts for").select_option(label="Outbound / SDR")
    await create.get_by_label("Label (what it is for)").fill("Cowork laptop")
    await create.get_by_label("Expires after (days; empty: never)").fill("30")
    await submit(page, "Create the token")
    secret = (await page.locator("#secret-value").inner_text()).strip()
    assert secret.startswith(tokens.TOKEN_PREFIX) and len(secret) > 40
    assert "Token TK1 created" in await page.locator("h1").inner_text()
    assert "Outbound / SDR" in await page.locator("#secret").inner_text()
    assert token_rows(workspace) == [(1, "agency", 1, 1, "Cowork laptop", None)]

    await page.get_by_role("link", name="Back to Settings").click()
    await page.wait_for_url(console.url("/settings"))
    await page.reload()
    assert secret not in await page.content()
    row = page.locator("tr#TK1")
    assert "Outbound / SDR" in await row.inner_text() and "active" in await row.inner_text()

    await submit(page, "Revoke TK1")
    assert "TK1 revoked (Outbound / SDR)" in await page.locator(".flash").inner_text()
    assert "revoked" in await page.locator("tr#TK1").inner_text()
    assert await page.get_by_role("button", name="Revoke TK1").count() == 0
    assert secret not in await page.content()
    assert token_rows(workspace)[0][5] is not None
    assert acts_on(workspace, "TK1") == [
        ("token.create", "operator:console-1", "verified"),
        ("token.revoke", "operator:console-1", "verified"),
    ]
    assert seen.errors == [] and seen.foreign(console.origin) == []

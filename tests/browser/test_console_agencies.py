"""The Agencies page in a real browser: the operator pauses Outbound and resumes it, retires a role and brings it
back, which the browser lets through only once the confirmation box is ticked; the workspace file says each
happened, as the console, on the verified channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.support import Console, logged_in, watch
from tests.conftest import db_rows

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def submit(page: Page, button: str) -> None:
    """Press a form's button and wait for the page it leads to."""
    async with page.expect_navigation():
        await page.get_by_role("button", name=button).click()


def acts_on(db: Path, subject: str) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT action, actor, channel FROM audit_log WHERE subject = ? ORDER BY id", (subject,))


async def test_an_agency_is_paused_and_resumed_and_a_role_retired_and_brought_back(
    workspace: Path, console: Console, browser: Browser
) -> None:
    page = await logged_in(browser, console.link)
    seen = watch(page)
    await page.goto(console.url("/agencies"))

    await page.get_by_label("Why pause Outbound (shown to the agency)").fill("Audit week")
    await submit(page, "Pause Outbound")
    assert "Outbound is paused" in await page.locator(".flash").inner_text()
    assert '("Audit week")' in await page.locator("#A1 .agency-paused").inner_text()
    await submit(page, "Resume Outbound")
    assert "Outbound is resumed" in await page.locator(".flash").inner_text()
    assert await page.locator("#A1 .agency-paused").count() == 0

    await page.set_viewport_size({"width": 1000, "height": 420})  # the roles table is below the fold
    await submit(page, "Retire SDR")
    assert page.url.endswith("/agencies#R1")
    await expect(page.locator(".flash")).to_be_in_viewport()  # what the act did is seen where it lands
    await expect(page.locator("tr#R1")).to_be_in_viewport()
    assert "retired" in await page.locator("tr#R1").inner_text()
    reactivate = page.get_by_role("button", name="Reactivate SDR")
    await reactivate.click()  # the box is not ticked: the browser keeps the form, and nothing is sent
    assert "retired" in await page.locator("tr#R1").inner_text()
    assert [act for act, _, _ in acts_on(workspace, "R1")] == ["role.create", "role.update"]
    await page.locator("tr#R1").get_by_role("checkbox").check()
    await submit(page, "Reactivate SDR")
    assert "SDR (Outbound) is active again" in await page.locator(".flash").inner_text()

    assert acts_on(workspace, "A1")[-2:] == [
        ("agency.pause", "operator:console-1", "verified"),
        ("agency.resume", "operator:console-1", "verified"),
    ]
    assert acts_on(workspace, "R1")[1:] == [("role.update", "operator:console-1", "verified")] * 2
    assert seen.errors == [] and seen.foreign(console.origin) == []

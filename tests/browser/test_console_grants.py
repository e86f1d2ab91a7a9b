"""The Authority page in a real browser: the operator gives a grant through the form, sees it, changes it after
seeing its bounds before and after, and revokes it; restores an earlier version and hands a revoked grant's
space over; the workspace file says each happened, as the console."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.support import Console, logged_in, run_cli, watch
from tests.conftest import db_rows

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def submit(page: Page, button: str) -> str:
    """Press a form's button, wait for the page it leads to, and return the message that page shows."""
    async with page.expect_navigation():
        await page.get_by_role("button", name=button).click()
    flash = page.locator(".flash")
    return await flash.inner_text() if await flash.count() else ""


def grant_rows(db: Path) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT id, capability, mode, status, version, scope_deny FROM grants WHERE id = 4")


def acts_on(db: Path, subject: str) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT action, actor, channel FROM audit_log WHERE subject = ? ORDER BY id", (subject,))


async def test_a_grant_is_given_changed_and_revoked_in_the_console(
    workspace: Path, console: Console, browser: Browser
) -> None:
    page = await logged_in(browser, console.link)
    seen = watch(page)
    await page.goto(console.url("/authority"))

    give = page.get_by_role("form", name="Give authority")
    await give.get_by_label("Agency").select_option("Outbound")
    await give.get_by_label("Role (empty: every role)").fill("SDR")
    await give.get_by_label("Capability").fill("linkedin.message")
    await give.get_by_label("Mode").select_option("notify")
    await give.get_by_label("Actions a day").fill("20")
    await give.get_by_label("Never for targets").fill("competitor.example.com")
    await give.get_by_label("Why").fill("A second channel for first touches.")
    said = await submit(page, "Give this authority")
    assert "GR4 granted: Outbound / SDR may linkedin.message (notify)." in said
    card = page.locator("article#GR4")
    assert "Today (2026-11-23): 0 of 20 actions used, 20 left." in await card.inner_text()
    assert await card.locator("svg[role=img]").count() == 1
    assert grant_rows(workspace) == [(4, "linkedin.message", "notify", "active", 1, '["competitor.example.com"]')]

    await card.get_by_text("Change GR4's bounds").click()
    change = card.get_by_role("form", name="Change GR4")
    await change.get_by_label("Mode").select_option("approve")
    await change.get_by_label("Never for targets").fill("competitor.example.com\nrival.example.com")
    await submit(page, "Preview the change to GR4")
    assert "This only narrows authority." in await page.locator("#change").inner_text()
    assert grant_rows(workspace)[0][2:5] == ("notify", "active", 1)  # nothing changed yet
    said = await submit(page, "Apply this change to GR4")
    assert "GR4 is now version 2" in said
    assert grant_rows(workspace) == [
        (4, "linkedin.message", "approve", "active", 2, '["competitor.example.com", "rival.example.com"]')
    ]

    await page.locator("article#GR4").get_by_label("Why revoke GR4").fill("not this quarter")
    said = await submit(page, "Revoke GR4")
    assert "GR4 revoked" in said
    assert "GR4 linkedin.message" in await page.locator("#revoked").inner_text()
    assert await page.locator("article#GR4").count() == 0
    assert grant_rows(workspace)[0][3:5] == ("revoked", 3)
    console_acts = [("grant.create", "grant.update", "grant.revoke")]
    assert [tuple(action for action, _, _ in acts_on(workspace, "GR4"))] == console_acts
    assert {(actor, channel) for _, actor, channel in acts_on(workspace, "GR4")} == {("operator:console-1", "verified")}
    assert seen.errors == [] and seen.foreign(console.origin) == []


async def test_a_revoked_grant_is_handed_over_and_an_earlier_version_restored_in_the_console(
    workspace: Path, console: Console, browser: Browser
) -> None:
    run_cli(workspace, "grant", "--agency", "Outbound", "--capability", "spend.*", "--cap-cents", "5000")  # GR4
    run_cli(workspace, "grant-update", "GR1", "--mode", "approve")  # GR1 version 2
    page = await logged_in(browser, console.link)
    seen = watch(page)
    await page.goto(console.url("/authority"))

    await page.locator("#GR1-versions summary").click()
    await submit(page, "Preview restoring GR1's version 1")
    assert "changes the mode from approve to auto" in await page.locator("#change").inner_text()
    said = await submit(page, "Restore GR1's version 1")
    assert "GR1 is now version 3, with version 1's bounds" in said
    assert db_rows(workspace, "SELECT mode, version FROM grants WHERE id = 1") == [("auto", 3)]

    said = await submit(page, "Revoke GR2")
    assert "handing it over (below) lets broader grants cover them" in said
    await submit(page, "Hand over GR2")
    assert "GR4 spend.*" in await page.locator("#hand-over").inner_text()
    await page.get_by_label("I understand").check()
    said = await submit(page, "Hand over GR2")
    assert "GR2 handed over: GR4 may now answer what it held back for Outbound / Researcher" in said
    assert "handed over on 2026-11-23 09:00" in await page.locator("#revoked").inner_text()
    assert [action for action, _, _ in acts_on(workspace, "GR2")] == ["grant.create", "grant.revoke", "grant.hand_over"]
    assert acts_on(workspace, "GR1")[-1] == ("grant.update", "operator:console-1", "verified")
    assert acts_on(workspace, "GR2")[-1] == ("grant.hand_over", "operator:console-1", "verified")
    assert seen.errors == [] and seen.foreign(console.origin) == []

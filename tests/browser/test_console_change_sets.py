"""The review in a real browser: two proposals checked and recorded as one change set, then reverted, with the
workspace read from outside to show both changes applied and then undone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from tests.browser.support import NOW, Console, logged_in, running_console, watch
from tests.conftest import db_rows
from tests.http.test_console_review import approved_five_times, backlog

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
async def proposing(workspace: Path) -> Path:
    """The quick start's workspace, plus history that makes two proposals: GR4 (crm.update, asks first) was
    approved the last five times (grant_widen:GR4), and twenty open tasks want a Backlog role (role_add:A1)."""
    store = await Store.open(workspace, FixedClock(datetime.fromisoformat(NOW)))
    try:
        await approved_five_times(store)
        await backlog(store)
    finally:
        await store.close()
    return workspace


@pytest.fixture
def review_console(proposing: Path, tmp_path: Path) -> Iterator[Console]:
    with running_console(proposing, tmp_path / "console.log") as running:
        yield running


def grant_and_role(db: Path) -> tuple[Any, ...]:
    [grant] = db_rows(db, "SELECT mode, per_action_cap_cents FROM grants WHERE id = 4")
    return grant, db_rows(db, "SELECT status FROM roles WHERE name = 'Backlog'")


async def test_two_proposals_are_accepted_as_one_change_set_and_reverted(
    review_console: Console, proposing: Path, browser: Browser
) -> None:
    page = await logged_in(browser, review_console.link)
    seen = watch(page)
    await page.goto(review_console.url("/review"))
    assert grant_and_role(proposing) == (("approve", None), [])

    await page.get_by_label("Accept grant_widen:GR4").check()
    await page.get_by_label("Accept role_add:A1").check()
    await page.get_by_label("Note for the record").fill("Week 48: the CRM updates can go ahead")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Record the review").click()
    assert page.url == review_console.url("/review/change-sets/CS1")
    assert "CS1: review recorded, 2 changes applied." in await page.locator(".flash").inner_text()
    assert await page.locator("table.changes tbody tr").count() == 2
    assert grant_and_role(proposing) == (("notify", 5000), [("active",)])
    assert db_rows(proposing, "SELECT id, kind, actor, channel FROM change_sets") == [
        (1, "review", "operator:console-1", "verified")
    ]

    async with page.expect_navigation():
        await page.get_by_role("button", name="Revert CS1").click()
    assert page.url == review_console.url("/review/change-sets/CS2")
    assert "CS2: reverted CS1, 2 changes undone." in await page.locator(".flash").inner_text()
    assert grant_and_role(proposing) == (("approve", None), [("retired",)])  # an added role is retired, not deleted
    assert db_rows(proposing, "SELECT id, kind, reverts, reverted_by FROM change_sets ORDER BY id") == [
        (1, "review", None, 2),
        (2, "revert", 1, None),
    ]

    await page.goto(review_console.url("/review"))
    change_sets = page.locator("table.change-sets tbody tr")
    assert [await row.locator("td").first.inner_text() for row in await change_sets.all()] == ["CS2", "CS1"]
    assert seen.errors == [] and seen.foreign(review_console.origin) == []

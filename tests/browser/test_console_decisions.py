"""Deciding in the console, with no terminal: an agency session over stdio asks, the operator answers in the
browser, and the agency's next call gets the answer (as Claude Desktop, in the 2025-11-25 handshake)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from chief_of_staff.cli.demo import call
from tests.browser.support import Console, agency_session, logged_in, tool_error
from tests.conftest import db_rows

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def purchase(amount: int, target: str) -> dict[str, Any]:
    """A data purchase by the Researcher, whose grant caps one at $25."""
    return {
        "agency": "Outbound",
        "role": "Researcher",
        "capability": "spend.tools",
        "amount_cents": amount,
        "target": target,
    }


async def decide_in_browser(page: Page, decision_id: str, verb: str, note: str = "") -> str:
    """Press Approve or Deny on the decision's own card on Today, and return the message the console shows."""
    card = page.locator(f"#{decision_id}")
    form = card.locator("form").filter(has=page.get_by_role("button", name=f"{verb} {decision_id}"))
    button = form.get_by_role("button", name=f"{verb} {decision_id}")
    if note:
        await form.get_by_label("Note").fill(note)
    async with page.expect_navigation():
        await button.click()
    return await page.locator(".flash").inner_text()


def decided_by(db: Path, decision_id: str) -> list[tuple[Any, ...]]:
    return db_rows(
        db,
        "SELECT action, actor, channel FROM audit_log WHERE subject = ? AND action IN ('decision.approve', "
        "'decision.deny')",
        (decision_id,),
    )


async def test_a_decision_chat_cannot_approve_is_approved_in_the_console_and_redeemed(
    workspace: Path, console: Console, browser: Browser, tmp_path: Path
) -> None:
    log = tmp_path / "agency.log"
    async with agency_session(workspace, log) as agency:
        asked = await call(agency, "authorize", **purchase(15000, "clearbit.com"), idempotency_key="a1")
        assert asked["answer"] == "needs_approval"
        # $150 is past the $100 chat allowance: approving it in the chat is refused.
        refusal = await tool_error(agency, "decide", decision_id=asked["decision_id"], approve=True, confirm=True)
        assert "cannot be done in chat" in refusal

    page = await logged_in(browser, console.link)
    said = await decide_in_browser(page, asked["decision_id"], "Approve")
    assert f"{asked['decision_id']} approved" in said
    assert decided_by(workspace, asked["decision_id"]) == [("decision.approve", "operator:console-1", "verified")]

    async with agency_session(workspace, log) as agency:
        [decision] = (await call(agency, "list_decisions", status="approved"))["decisions"]
        redeemed = await call(agency, "authorize", **decision["redeem_with"], idempotency_key="a2")
        assert redeemed["answer"] == "allowed" and redeemed["decision_id"] == asked["decision_id"]


async def test_a_decision_denied_in_the_console_answers_the_agency_with_the_note(
    workspace: Path, console: Console, browser: Browser, tmp_path: Path
) -> None:
    log = tmp_path / "agency.log"
    async with agency_session(workspace, log) as agency:
        asked = await call(agency, "authorize", **purchase(12000, "zoominfo.com"), idempotency_key="d1")
        assert asked["answer"] == "needs_approval"

    page = await logged_in(browser, console.link)
    said = await decide_in_browser(page, asked["decision_id"], "Deny", note="Use the free tier this quarter")
    assert f"{asked['decision_id']} denied" in said
    assert decided_by(workspace, asked["decision_id"]) == [("decision.deny", "operator:console-1", "verified")]
    assert await page.locator(f"#{asked['decision_id']}").count() == 0  # no longer waiting

    async with agency_session(workspace, log) as agency:
        again = await call(agency, "authorize", **purchase(12000, "zoominfo.com"), idempotency_key="d2")
        assert again["answer"] == "denied" and again["decision_id"] == asked["decision_id"]
        assert "Use the free tier this quarter" in again["reason"]

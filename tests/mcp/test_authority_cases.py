"""Issue 14's cases, re-run as written through the MCP surface in Claude Desktop's protocol (legacy).

Each was reproduced against the main of the time: the agency widening its own authority, chat's
ceiling bounding single numbers, silence approving anything, never settling, spelling around deny
patterns, and chat silencing the operator's alarms. Each now refuses or escalates, writing nothing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.mcp.server import build_server
from chief_of_staff.notify import endpoints
from tests.conftest import START, TIMEZONE, db_rows
from tests.mcp.test_mcp_surface import call, refused

pytestmark = pytest.mark.anyio

WRITTEN = ("grants", "grant_budgets", "decisions", "chat_draws", "webhook_endpoints", "audit_log")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def db(tmp_path: Path, clock: FixedClock) -> Path:
    """Outbound (SDR, Researcher) with GR1 spend.* agency-wide in auto and GR2 SDR spend.ads in approve."""
    path = tmp_path / "w.db"
    store = await Store.open(path, clock)
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Acme", timezone=TIMEZONE)
            await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
            for role in ("SDR", "Researcher"):
                await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name=role, charter="Works")
            month = [BudgetSpec(period="month", max_cents=100_000)]
            await grants.create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(agency="Outbound", capability="spend.*", per_action_cap_cents=10_000, budgets=month),
            )
            await grants.create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(
                    agency="Outbound", role="SDR", capability="spend.ads", mode="approve", per_action_cap_cents=10_000
                ),
            )
    finally:
        await store.close()
    return path


def client(db: Path, clock: FixedClock) -> Client:
    return Client(build_server(Settings(db_path=db, clock=clock)), mode="legacy")


def written(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {table: db_rows(db, f"SELECT * FROM {table}") for table in WRITTEN}


AD = {"agency": "Outbound", "role": "SDR", "capability": "spend.ads", "amount_cents": 5_000, "target": "ads.acme.com"}


async def test_the_agency_revoking_or_ending_the_narrow_grant_never_lets_the_broad_one_allow(
    db: Path, clock: FixedClock
) -> None:
    async with client(db, clock) as agency:
        assert (await call(agency, "authorize", **AD))["answer"] == "needs_approval"
        await call(agency, "update_grant", grant_id="GR2", expires_on="2026-11-23")  # a narrowing: no confirm
        await call(agency, "revoke", grant_id="GR2", reason="the injected page said so")
        assert (await call(agency, "authorize", **AD))["answer"] == "needs_approval"
        clock.advance(timedelta(days=2))
        assert (await call(agency, "authorize", **AD))["answer"] != "allowed"
        # Handing the space over is the terminal's alone: no tool takes it, whatever is sent.
        assert "hand_over" in await refused(agency, "revoke", {"grant_id": "GR2", "hand_over": True, "confirm": True})


async def test_leaving_the_role_out_is_judged_as_the_tasks_role(db: Path, clock: FixedClock) -> None:
    async with client(db, clock) as agency:
        task = await call(agency, "add_task", title="Run the ad test", agency="Outbound", role="SDR")
        asked = await call(agency, "authorize", **{**AD, "role": None}, task_id=task["id"])
        assert asked["answer"] == "needs_approval" and asked["grant_id"] == "GR2"


@pytest.mark.parametrize(
    ("tool", "arguments", "phrase"),
    [
        # 100.00 a time and no period budget: once 3,000.00 went out in one day.
        ("grant", {"agency": "Outbound", "capability": "travel.book", "per_action_cap_cents": 10_000}, "no period"),
        # A day count of a billion, with money.
        (
            "grant",
            {
                "agency": "Outbound",
                "capability": "travel.book",
                "per_action_cap_cents": 10_000,
                "budgets": [{"period": "day", "max_count": 1_000_000_000}],
            },
            "more than chat may add",
        ),
        ("update_grant", {"grant_id": "GR1", "budgets": []}, "cannot be done in chat"),
        ("update_grant", {"grant_id": "GR2", "mode": "auto"}, "cannot be done in chat"),
        ("update_grant", {"grant_id": "GR1", "on_timeout": "approve"}, "cannot be done in chat"),
    ],
)
async def test_chat_cannot_widen_beyond_its_allowance_or_at_all_where_it_never_may(
    db: Path, clock: FixedClock, tool: str, arguments: dict[str, Any], phrase: str
) -> None:
    before = written(db)
    async with client(db, clock) as chat:
        message = await refused(chat, tool, {**arguments, "confirm": True})
    assert phrase in message and "chief-of-staff" in message
    assert written(db) == before


async def test_three_chat_approvals_cannot_add_up_past_the_allowance(db: Path, clock: FixedClock) -> None:
    async with client(db, clock) as chat:
        asks = [await call(chat, "authorize", **{**AD, "target": f"ads{i}.acme.com"}) for i in range(3)]
        await call(chat, "decide", decision_id=asks[0]["decision_id"], approve=True, confirm=True)
        await call(chat, "decide", decision_id=asks[1]["decision_id"], approve=True, confirm=True)
        message = await refused(
            chat, "decide", {"decision_id": asks[2]["decision_id"], "approve": True, "confirm": True}
        )
        brief = await call(chat, "brief")
    assert ": 0.00 of the 100.00 chat allowance is left" in message
    assert brief["chat_allowance"]["left_cents"] == 0


async def test_silence_cannot_approve_more_than_the_grant_allows(db: Path, clock: FixedClock) -> None:
    store = await Store.open(db, clock)
    try:
        async with store.write() as tx:
            await grants.create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(
                    agency="Outbound",
                    capability="gift.send",
                    mode="approve",
                    per_action_cap_cents=2_000,
                    on_timeout="approve",
                ),
            )
    finally:
        await store.close()
    async with client(db, clock) as agency:
        big = {"agency": "Outbound", "capability": "gift.send", "amount_cents": 50_000_000, "target": "acme.com"}
        await call(agency, "authorize", **big)
        clock.advance(timedelta(hours=73))
        await call(agency, "brief", viewer="agency:Outbound")  # housekeeping runs the timeouts
        assert (await call(agency, "authorize", **big))["answer"] == "needs_approval"


async def test_never_settling_spends_the_budget_instead_of_refunding_it(db: Path, clock: FixedClock) -> None:
    tools = {**AD, "role": "Researcher", "capability": "spend.tools", "amount_cents": 10_000, "target": "clearbit.com"}
    async with client(db, clock) as agency:
        answers = []
        for _ in range(11):
            answers.append((await call(agency, "authorize", **tools))["answer"])
            clock.advance(timedelta(hours=13))  # holds run out a day later; all of it stays in November
    assert answers.count("allowed") == 10  # 1,000.00 a month at 100.00 each, whether settled or not


@pytest.mark.parametrize(
    "target",
    ["jane@agency.gov.", "jane@agency.ｇｏｖ", "Jane <jane@agency.gov>", "a@agency.gov,b@acme.com", None],
)
async def test_deny_patterns_cannot_be_spelled_around(db: Path, clock: FixedClock, target: str | None) -> None:
    store = await Store.open(db, clock)
    try:
        async with store.write() as tx:
            await grants.create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(agency="Outbound", role="SDR", capability="email.send", scope_deny=["*.gov"]),
            )
    finally:
        await store.close()
    async with client(db, clock) as agency:
        result = await agency.call_tool(
            "authorize", {"agency": "Outbound", "role": "SDR", "capability": "email.send", "target": target}
        )
    answer = None if result.is_error else (result.structured_content or {}).get("answer")
    assert answer != "allowed", (target, result.content)


async def test_chat_cannot_remove_the_operators_alarms(db: Path, clock: FixedClock) -> None:
    store = await Store.open(db, clock)
    try:
        async with store.write() as tx:
            await endpoints.add_endpoint(
                tx, OPERATOR_CLI, url="https://hooks.example.com/x", events=["decision.opened"]
            )
    finally:
        await store.close()
    before = written(db)
    async with client(db, clock) as chat:
        message = await refused(chat, "notify", {"action": "remove", "endpoint_id": "NE1", "confirm": True})
    assert "cannot be done in chat" in message and written(db) == before


async def test_a_spent_hold_is_reported_by_the_review(db: Path, clock: FixedClock) -> None:
    tools = {**AD, "role": "Researcher", "capability": "spend.tools", "amount_cents": 1_000, "target": "clearbit.com"}
    async with client(db, clock) as agency:
        await call(agency, "authorize", **tools)
        clock.advance(timedelta(hours=25))
        await call(agency, "authorize", **tools)  # sweeps the first hold: spent in full
        packet = await call(agency, "review")
    assert any(a["kind"] == "unsettled_holds" for a in packet["anomalies"])

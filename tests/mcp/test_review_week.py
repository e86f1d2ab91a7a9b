"""A week of agency work, then the operator's Monday review over MCP: the packet, two adjustments, a revert.

Four weeks of quiet history set the agency's baseline. Then one week: the SDR sends email under its
auto grant every day and the sends start failing on Wednesday; each day the agency asks to post on
LinkedIn under an approve grant and the operator says yes; a P1 report slips past its due date; a
question waits unanswered since Friday. On Monday morning the operator opens the review, accepts
the two grant proposals in one call, and then takes it back.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitResult

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.domain import deciding, inbox, outcomes, workspace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.domain.outcomes import MetricDelta
from chief_of_staff.domain.review import packet
from chief_of_staff.mcp.server import build_server
from tests.mcp.test_mcp_surface import call

pytestmark = pytest.mark.anyio

SDR = Actor("agency:Outbound/SDR", "agency")
HISTORY_FROM = datetime(2026, 10, 27, 9, 0, tzinfo=UTC)  # 10:00 in Berlin, four weeks before the week
WEEK_FROM = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday
REVIEW_AT = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)  # the next Monday, 08:30 in Berlin
POST_AMOUNTS = [1_500, 1_900, 1_200, 1_700, 1_600]  # what the operator approved, Mon to Fri


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def week(tmp_path: Path) -> AsyncIterator[Path]:
    path, clock = tmp_path / "week.db", FixedClock(HISTORY_FROM)
    store = await Store.open(path, clock)
    try:
        await _history(store, clock)
        for day in range(7):
            clock.set(WEEK_FROM + timedelta(days=day))
            await _workday(store, clock, day)
    finally:
        await store.close()
    yield path


async def _history(store: Store, clock: FixedClock) -> None:
    async with store.write() as tx:
        await workspace.ensure(tx, OPERATOR_CLI, name="Acme", timezone="Europe/Berlin")
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
        await grants.create_grant(
            tx,
            OPERATOR_CLI,
            GrantSpec(
                agency="Outbound", role="SDR", capability="social.post", mode="approve", per_action_cap_cents=5_000
            ),
        )
    for day in range(27):  # two outcomes a day, one failure in nine days: a 5.6% baseline
        clock.set(HISTORY_FROM + timedelta(days=day))
        async with store.write() as tx:
            for n in range(2):
                await outcomes.log_outcome(
                    tx,
                    SDR,
                    agency="Outbound",
                    role="SDR",
                    summary="Researched leads",
                    result="failure" if n == 0 and day % 9 == 4 else "success",
                )


async def _workday(store: Store, clock: FixedClock, day: int) -> None:
    async with store.write() as tx:
        if day == 0:
            await inbox.add_task(
                tx,
                OPERATOR_CLI,
                title="Pipeline report for the board",
                agency="Outbound",
                priority="P1",
                due_on="2026-11-25",
                source="operator",
            )
        await _send_emails(tx, day)
        if day < len(POST_AMOUNTS):
            await _post_with_approval(tx, clock, POST_AMOUNTS[day])
        if day == 4:
            await deciding.request_decision(
                tx,
                SDR,
                agency="Outbound",
                role="SDR",
                kind="question",
                title="May we email the webinar attendees list?",
            )


async def _send_emails(tx: Any, day: int) -> None:
    """Two sends a day under the auto email grant; from Wednesday (day 2) one of them fails every day."""
    for n in range(2):
        task = await inbox.add_task(
            tx, SDR, title=f"First touch {day}-{n}", agency="Outbound", role="SDR", priority="P0"
        )
        claimed = await inbox.claim_next_task(tx, SDR, agency="Outbound", role="SDR")
        assert claimed is not None and claimed.id == task.id
        allowed = await ledger.authorize(
            tx,
            SDR,
            agency="Outbound",
            role="SDR",
            capability="email.send",
            amount_cents=0,
            target=f"lead{day}{n}@northwind.com",
            task_id=task.id,
            idempotency_key=f"send-{day}-{n}",
        )
        assert allowed.answer == "allowed", allowed.reason
        failed = day >= 2 and n == 0
        await inbox.complete_task(
            tx,
            SDR,
            task.id,
            result="failure" if failed else "success",
            summary="Bounced" if failed else "Sent a first touch",
            metrics=[] if failed else [MetricDelta(key_result="KR3", delta=1)],
        )


async def _post_with_approval(tx: Any, clock: FixedClock, amount: int) -> None:
    request = {
        "agency": "Outbound",
        "role": "SDR",
        "capability": "social.post",
        "amount_cents": amount,
        "target": "linkedin.com/company/acme",
        "task_id": None,
    }
    asked = await ledger.authorize(tx, SDR, **request, idempotency_key=f"ask-{clock.now():%j}")
    assert asked.answer == "needs_approval" and asked.decision_id is not None
    await deciding.decide(tx, OPERATOR_CLI, asked.decision_id, approve=True)
    used = await ledger.authorize(tx, SDR, **request, idempotency_key=f"post-{clock.now():%j}")
    assert used.answer == "allowed", used.reason


async def _operator_says_yes(context: Any, params: Any) -> ElicitResult:
    """The human at the client's own approval prompt: a verified yes, as chat alone may not widen a mode."""
    return ElicitResult(action="accept", content={"approve": True})


def _connect(path: Path, mode: str) -> Client:
    server = build_server(Settings(db_path=path, clock=FixedClock(REVIEW_AT)))
    return Client(server, mode=mode, elicitation_callback=_operator_says_yes)


def _audit(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT action, subject, detail FROM audit_log ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(action, subject, json.loads(detail)) for action, subject, detail in rows]


def _bounds(grants: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {
        g["id"]: (
            g["mode"],
            g["per_action_cap_cents"],
            json.dumps(g["budgets"]),
            g["scope_allow"],
            g["scope_deny"],
            g["expires_on"],
        )
        for g in grants
    }


async def test_a_week_of_work_reviewed_adjusted_and_reverted(week: Path, mode: str) -> None:
    async with _connect(week, mode) as client:
        packet = await call(client, "review", days=7)
        assert (packet["since"], packet["until"]) == ("2026-11-24", "2026-11-30")

        # Anomalies, each with its evidence.
        found = {(a["kind"], a["subject"]): a["evidence"] for a in packet["anomalies"]}
        # Wed to Sun, in the 7 days to today: 5 of 12 outcomes failed, against 3 of 56 in the 28 days before.
        assert found[("failure_rate", "A1")] == {
            "failures": 5,
            "outcomes": 12,
            "failure_rate": 0.417,
            "baseline_failures": 3,
            "baseline_outcomes": 56,
            "baseline_rate": 0.054,
        }
        tasks = (await call(client, "list_tasks", status="open", limit=100))["tasks"]
        report = next(t["id"] for t in tasks if t["title"] == "Pipeline report for the board")
        assert found[("overdue_task", report)] == {
            "priority": "P1",
            "due_on": "2026-11-25",
            "days_overdue": 5,
            "status": "open",
        }
        assert found[("decision_waiting", "D6")]["hours_waiting"] == 70  # Fri 09:00 to Mon 07:30 UTC
        assert found[("goal_behind", "KR1")]["current"] == 0  # no meeting five weeks into a 90-day goal

        # Proposals: autonomy follows the record, and failures narrow.
        proposed = {(p["kind"], p["subject"]): p for p in packet["proposals"]}
        widen, narrow = proposed[("grant_widen", "GR4")], proposed[("grant_narrow", "GR1")]
        assert widen["adjustment"] == {
            "tool": "update_grant",
            "arguments": {"grant_id": "GR4", "mode": "notify", "per_action_cap_cents": 1_900},
        }
        assert widen["evidence"]["approved_streak"] == 5 and widen["evidence"]["denied"] == 0
        # Under GR1, 5 of the 14 sends of the last 14 days failed: 3 or more, and over a third.
        assert (narrow["evidence"]["failures"], narrow["evidence"]["outcomes"]) == (5, 14)
        assert narrow["adjustment"] == {"tool": "update_grant", "arguments": {"grant_id": "GR1", "mode": "approve"}}

        before = _bounds((await call(client, "list_grants"))["grants"])
        recorded = await call(
            client,
            "record_review",
            confirm=True,
            note="Posts earned notify; email asks first",
            adjustments=[widen["adjustment"], narrow["adjustment"]],
        )
        after = _bounds((await call(client, "list_grants"))["grants"])
        assert after["GR4"][:2] == ("notify", 1_900) and after["GR1"][0] == "approve"

        # The audit shows one change set: its rows are contiguous and all carry its label.
        trail = _audit(week)
        tagged = [i for i, (_, _, detail) in enumerate(trail) if detail.get("change_set") == recorded["id"]]
        assert [trail[i][:2] for i in tagged] == [
            ("grant.update", "GR4"),
            ("grant.update", "GR1"),
            ("review.record", recorded["id"]),
        ]
        assert tagged == list(range(tagged[0], tagged[0] + 3))

        reverted = await call(client, "record_review", revert=recorded["id"], confirm=True)
        assert reverted["reverts"] == recorded["id"]
        assert _bounds((await call(client, "list_grants"))["grants"]) == before
        assert (await call(client, "review"))["last_review"]["reverted_by"] == reverted["id"]


BIG_TABLES = {
    "outcomes",
    "outcome_metrics",
    "authorizations",
    "tasks",
    "decisions",
    "audit_log",
    "budget_usage",
    "agency_days",
    "key_result_days",
    "role_quarter_hours",
    "denial_hours",
    "change_set_items",
}
# Measured on this week's workspace (4 grants, 3 routines): 33. Some reads are per grant or routine, so
# the count grows with the roster, never with the history.
PACKET_STATEMENT_BUDGET = 36


async def test_the_packet_reads_indexes_and_rollups_never_whole_tables(week: Path) -> None:
    store = await Store.open(week, FixedClock(REVIEW_AT))
    statements: list[str] = []
    try:
        async with store.write() as tx:
            tx.trace(statements.append)
            await packet.build_packet(tx, mark_seen=True)
            tx.trace(None)
            scans = {}
            for sql in {s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))}:
                tables = {alias: table for table, alias in re.findall(r"\b(\w+)\s+AS\s+(\w+)\b", sql)}
                for row in await tx.all("EXPLAIN QUERY PLAN " + sql):
                    scanned = re.match(r"SCAN (\w+)", row["detail"])
                    if scanned and tables.get(scanned.group(1), scanned.group(1)) in BIG_TABLES:
                        scans[sql[:80]] = row["detail"]
    finally:
        await store.close()
    assert scans == {} and len(statements) >= 20
    assert len(statements) <= PACKET_STATEMENT_BUDGET, f"the packet made {len(statements)} statements"

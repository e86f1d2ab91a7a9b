"""The outcome log: append-only records that move key results, roll up per day and teach the playbook."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.domain import agencies, goals, outcomes
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.outcomes import MetricDelta

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
TABLES = ("audit_log", "outcomes", "outcome_metrics", "agency_days", "lessons")


async def _setup(tx: Tx) -> None:
    """Outbound (A1, role SDR R1) with goal G1: KR1 meetings 0 -> 12 up, KR2 bounce rate 10 -> 2 down.
    Inbox (A2) with goal G2: KR3 Meetings. Goal G3 of Outbound (KR4 Demos) is dropped, G4 (KR5 Calls) achieved.
    Task T1."""
    await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
    await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Write and send.")
    await agencies.create_agency(tx, OPERATOR_CLI, name="Inbox", purpose="Answer mail")
    meetings = KeyResultSpec(metric="Meetings", baseline=0, target=12, direction="up", due_date="2027-02-21")
    bounce = KeyResultSpec(
        metric="Bounce rate", unit="%", baseline=10, target=2, direction="down", due_date="2027-02-21"
    )
    await goals.create_goal(tx, OPERATOR_CLI, agency="Outbound", title="Pipeline", key_results=[meetings, bounce])
    for agency, metric, status in (
        ("Inbox", "Meetings", None),
        ("Outbound", "Demos", "dropped"),
        ("Outbound", "Calls", "achieved"),
    ):
        spec = meetings.model_copy(update={"metric": metric})
        view = await goals.create_goal(tx, OPERATOR_CLI, agency=agency, title="Other", key_results=[spec])
        if status:
            await goals.adjust_goal(tx, OPERATOR_CLI, view.id, status=status)
    await tx.run(
        "INSERT INTO tasks (title, agency_id, priority, source, created_at, updated_at) "
        "VALUES ('Send batch', 1, 2, 'agency', ?, ?)",
        (tx.now_text, tx.now_text),
    )


async def _log(tx: Tx, **fields: Any) -> outcomes.OutcomeView:
    return await outcomes.log_outcome(
        tx, AGENCY, **{"agency": "Outbound", "summary": "Sent 20 emails", "result": "success", **fields}
    )


async def _snapshot(store: Store) -> dict[str, Any]:
    async with store.read() as tx:
        counts = {t: await tx.scalar(f"SELECT count(*) FROM {t}") for t in TABLES}
        currents = [r[0] for r in await tx.all("SELECT current FROM key_results ORDER BY id")]
    return {**counts, "currents": currents}


async def _last_audit(store: Store) -> dict[str, Any]:
    async with store.read() as tx:
        row = await tx.one("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
    assert row is not None
    return {**dict(row), "detail": json.loads(row["detail"])}


async def test_log_outcome_records_everything_and_writes_one_audit_row(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _snapshot(store)
    async with store.write() as tx:
        view = await _log(
            tx,
            role="sdr",
            task_id=1,
            cost_cents=150,
            minutes_saved=30,
            evidence=[" https://crm.example/deal/1 "],
            metrics=[MetricDelta(key_result="KR1", delta=2)],
        )
    assert view.model_dump() == {
        "id": "O1",
        "agency": "Outbound",
        "role": "SDR",
        "task_id": "T1",
        "summary": "Sent 20 emails",
        "result": "success",
        "cost_cents": 150,
        "minutes_saved": 30,
        "evidence": ["https://crm.example/deal/1"],
        "lesson": None,
        "metrics": [{"key_result": "KR1", "delta": 2.0, "value": None}],
        "created_at": "2026-11-23T08:00:00.000000Z",
    }
    after = await _snapshot(store)
    assert (after["audit_log"], after["outcomes"], after["outcome_metrics"]) == (before["audit_log"] + 1, 1, 1)
    last = await _last_audit(store)
    assert (last["action"], last["subject"], last["channel"]) == ("outcome.log", "O1", "agency")
    assert last["detail"] == {
        "agency": "A1",
        "result": "success",
        "cost_cents": 150,
        "task": "T1",
        "metrics": {"KR1": 2.0},
    }


async def test_progress_moves_after_log_outcome(store: Store, clock: FixedClock) -> None:
    async with store.write() as tx:
        await _setup(tx)
    clock.advance(timedelta(days=30))  # the line now expects 4 meetings and a bounce rate of 7.33
    async with store.write() as tx:
        await _log(tx, metrics=[MetricDelta(key_result="KR1", delta=3), MetricDelta(key_result="KR2", delta=-2)])
        await _log(tx, metrics=[{"key_result": "kr1", "delta": 1.5}])  # type: ignore[list-item]
    async with store.read() as tx:
        meetings, bounce = (await goals.get_goal(tx, "G1")).key_results
    assert (meetings.current, meetings.progress, meetings.pace, meetings.behind_by) == (4.5, 0.375, "on_track", 0.0)
    assert (bounce.current, bounce.progress, bounce.expected_now, bounce.pace, bounce.behind_by) == (
        8.0,
        0.25,
        7.33,
        "behind",
        0.67,
    )


async def test_agency_days_roll_up_per_local_day(store: Store, clock: FixedClock) -> None:
    async with store.write() as tx:
        await _setup(tx)
        await _log(tx, cost_cents=150, minutes_saved=30)
        await _log(tx, result="failure", cost_cents=50)
        await _log(tx, result="partial", minutes_saved=5)
        await outcomes.log_outcome(tx, AGENCY, agency="Inbox", summary="Answered", result="success")
    clock.set(datetime(2026, 11, 23, 23, 30, tzinfo=UTC))  # 00:30 on the 24th in Berlin
    async with store.write() as tx:
        await _log(tx, cost_cents=7)
    async with store.read() as tx:
        rows = [tuple(r) for r in await tx.all("SELECT * FROM agency_days ORDER BY agency_id, day")]
    assert rows == [
        (1, "2026-11-23", 3, 1, 1, 1, 200, 35),
        (1, "2026-11-24", 1, 1, 0, 0, 7, 0),
        (2, "2026-11-23", 1, 1, 0, 0, 0, 0),
    ]


async def test_a_lesson_lands_in_the_playbook_without_an_audit_row_of_its_own(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _snapshot(store)
    async with store.write() as tx:
        await _log(tx, lesson="Short subjects get replies")
        await _log(tx, result="partial", lesson="Friday sends bounce")
        await _log(tx, lesson="   ")
    after = await _snapshot(store)
    assert (after["audit_log"], after["lessons"]) == (before["audit_log"] + 3, before["lessons"] + 2)
    assert (await _last_audit(store))["detail"].get("lesson") is None
    async with store.read() as tx:
        book = await agencies.playbook(tx, "Outbound")
        linked = await tx.all("SELECT outcome_id FROM lessons ORDER BY id")
    assert [(lesson.kind, lesson.text, lesson.source) for lesson in book] == [
        ("breaks", "Friday sends bounce", "outcome"),
        ("works", "Short subjects get replies", "outcome"),
    ]
    assert [r[0] for r in linked] == [1, 2]


async def test_outcomes_are_append_only(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        await _log(tx, metrics=[MetricDelta(key_result="KR1", delta=1)])
    for statement in (
        "UPDATE outcomes SET summary = 'rewritten'",
        "DELETE FROM outcomes",
        "UPDATE outcome_metrics SET delta = 100",
        "DELETE FROM outcome_metrics",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            async with store.write() as tx:
                await tx.run(statement)


async def test_recent_outcomes_come_newest_first_per_agency(store: Store, clock: FixedClock) -> None:
    async with store.write() as tx:
        await _setup(tx)
        await _log(tx, summary="first")
        await outcomes.log_outcome(tx, AGENCY, agency="Inbox", summary="inbox", result="success")
    clock.advance(timedelta(minutes=5))
    async with store.write() as tx:
        await _log(tx, summary="second", metrics=[MetricDelta(key_result="KR2", delta=-0.5)])
    async with store.read() as tx:
        everything = await outcomes.recent_outcomes(tx)
        outbound = await outcomes.recent_outcomes(tx, agency="outbound", limit=1)
    assert [o.summary for o in everything] == ["second", "inbox", "first"]
    assert [(o.id, [(m.key_result, m.delta) for m in o.metrics]) for o in outbound] == [("O3", [("KR2", -0.5)])]
    async with store.read() as tx:
        with pytest.raises(InvalidInput, match="limit: send a whole number from 1 to 100"):
            await outcomes.recent_outcomes(tx, limit=0)


def _delta(ref: str, delta: Any = 1) -> dict[str, Any]:
    return {"key_result": ref, "delta": delta}


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"agency": "Ghost"}, NotFound, "agency: there is no agency 'Ghost'"),
        ({"role": "Closer"}, NotFound, "role: agency Outbound has no role 'Closer'"),
        ({"task_id": 99}, NotFound, "task_id: there is no task T99"),
        ({"task_id": True}, InvalidInput, "task_id: send an id like T12"),
        ({"summary": "  "}, InvalidInput, "summary: send what happened"),
        ({"summary": "s" * 2001}, InvalidInput, "summary: is 2001 characters"),
        ({"result": "great"}, InvalidInput, "result: 'great' is not a result"),
        ({"cost_cents": -1}, InvalidInput, "cost_cents: send the cost in cents"),
        ({"cost_cents": 1.5}, InvalidInput, "cost_cents: send the cost in cents"),
        ({"cost_cents": True}, InvalidInput, "cost_cents"),
        ({"minutes_saved": -5}, InvalidInput, "minutes_saved: send the minutes saved"),
        ({"evidence": ["e"] * 11}, InvalidInput, "evidence: send a list of at most 10"),
        ({"evidence": ["ok", "x" * 501]}, InvalidInput, r"evidence\[1\]: send a non-empty link"),
        ({"evidence": [""]}, InvalidInput, r"evidence\[0\]"),
        ({"lesson": "l" * 2001}, InvalidInput, "lesson: send the lesson as text of at most 2000"),
        ({"metrics": [_delta("KR1", float("nan"))]}, InvalidInput, r"metrics\[0\].delta: .*finite number"),
        ({"metrics": [_delta("KR1", float("inf"))]}, InvalidInput, r"metrics\[0\].delta: .*finite number"),
        ({"metrics": [_delta("KR1", True)]}, InvalidInput, r"metrics\[0\].delta: .*plain number"),
        (
            {"metrics": [_delta("KR1", 1e308)]},
            InvalidInput,
            r"metrics\[0\].delta: .*too large; send a number from -1,000,000,000,000 to 1,000,000,000,000",
        ),
        ({"metrics": [_delta("KR1", -1e13)]}, InvalidInput, r"metrics\[0\].delta: .*too large"),
        ({"metrics": [_delta("KR1", 10**400)]}, InvalidInput, r"metrics\[0\].delta: "),
        ({"metrics": [_delta("KR1"), _delta("KR9")]}, NotFound, r"metrics\[1\].key_result: there is no key result KR9"),
        (
            {"metrics": [_delta("G1")]},
            NotFound,
            r"metrics\[0\].key_result: no key result of agency Outbound is named 'G1'; send an id like KR3",
        ),
        ({"metrics": [_delta("KR3")]}, InvalidInput, r"metrics\[0\].key_result: KR3 belongs to another agency"),
        (
            {"metrics": [_delta("KR4")]},
            InvalidInput,
            r"metrics\[0\].key_result: KR4 belongs to goal G3, which is dropped",
        ),
        ({"metrics": [_delta("KR5")]}, InvalidInput, r"metrics\[0\].key_result: KR5 .* which is achieved"),
        ({"metrics": [_delta("KR1"), _delta("kr1")]}, InvalidInput, r"metrics\[1\].key_result: KR1 appears twice"),
        ({"metrics": [_delta("KR1")] * 11}, InvalidInput, "metrics: send at most 10"),
    ],
)
async def test_invalid_outcomes_write_nothing(
    store: Store, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _snapshot(store)
    with pytest.raises(error, match=message):
        async with store.write() as tx:
            await _log(tx, **fields)
    assert await _snapshot(store) == before


async def test_a_task_of_another_agency_is_refused(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _snapshot(store)
    with pytest.raises(InvalidInput, match="task_id: T1 belongs to another agency"):
        async with store.write() as tx:
            await outcomes.log_outcome(tx, AGENCY, agency="Inbox", task_id=1, summary="x", result="success")
    assert await _snapshot(store) == before


async def test_a_retired_agency_logs_no_outcomes(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        await agencies.update_agency(tx, OPERATOR_CLI, "Inbox", status="retired")
    before = await _snapshot(store)
    with pytest.raises(Conflict, match="agency: Inbox is retired"):
        async with store.write() as tx:
            await outcomes.log_outcome(tx, AGENCY, agency="Inbox", summary="x", result="success")
    assert await _snapshot(store) == before

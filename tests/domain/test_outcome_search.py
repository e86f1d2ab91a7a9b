"""Searching the outcome log: filters, local-day ranges, keyset pages, and plans that stay flat with the log."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput, NotFound
from chief_of_staff.domain import agencies, goals, outcomes
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.outcomes import MetricDelta

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")


@pytest.fixture
async def log(store: Store, clock: FixedClock) -> Store:
    """Outbound (SDR) with KR1 "meetings" and KR2 "emails sent"; Content with KR3 "posts". Six outcomes, one a
    day from Monday 23 November 2026 (09:00 Berlin), newest last:

    O1 Outbound success KR1   O2 Outbound/SDR failure KR2   O3 Content success KR3
    O4 Outbound/SDR partial "100% of the list" KR1   O5 Outbound success   O6 Outbound/SDR success KR1, KR2
    """
    async with store.write() as tx:
        for name, metrics in (("Outbound", ["meetings", "emails sent"]), ("Content", ["posts"])):
            await agencies.create_agency(tx, OPERATOR_CLI, name=name, purpose=f"{name} work")
            specs = [
                KeyResultSpec(metric=m, baseline=0, target=100, direction="up", due_date=date(2027, 6, 30))
                for m in metrics
            ]
            await goals.create_goal(tx, OPERATOR_CLI, agency=name, title=f"{name} goal", key_results=specs)
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Sends")
    entries: list[dict[str, Any]] = [
        {"summary": "Booked a call", "result": "success", "metrics": ["KR1"]},
        {"summary": "Bounced batch", "result": "failure", "role": "SDR", "metrics": ["KR2"]},
        {"agency": "Content", "summary": "Posted", "result": "success", "metrics": ["KR3"]},
        {"summary": "Wrote to 100% of the list", "result": "partial", "role": "SDR", "metrics": ["KR1"]},
        {"summary": "Cleaned the CRM", "result": "success", "lesson": "Dedupe first"},
        {"summary": "Booked two", "result": "success", "role": "SDR", "metrics": ["KR1", "KR2"]},
    ]
    for entry in entries:
        metrics = [MetricDelta(key_result=kr, delta=1) for kr in entry.pop("metrics", [])]
        async with store.write() as tx:
            await outcomes.log_outcome(tx, AGENCY, **{"agency": "Outbound", **entry, "metrics": metrics})
        clock.advance(timedelta(days=1))
    return store


async def ids(store: Store, **filters: Any) -> list[str]:
    async with store.read() as tx:
        page = await outcomes.list_outcomes(tx, **filters)
    return [outcome.id for outcome in page.outcomes]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["O6", "O5", "O4", "O3", "O2", "O1"]),
        ({"agency": "Outbound"}, ["O6", "O5", "O4", "O2", "O1"]),
        ({"agency": "outbound", "role": "sdr"}, ["O6", "O4", "O2"]),
        ({"key_result": "KR1"}, ["O6", "O4", "O1"]),
        ({"agency": "Outbound", "key_result": "Emails Sent"}, ["O6", "O2"]),
        ({"result": "success"}, ["O6", "O5", "O3", "O1"]),
        ({"since": "2026-11-24", "until": "2026-11-25"}, ["O3", "O2"]),
        ({"until": date(2026, 11, 23)}, ["O1"]),
        ({"text": "dedupe"}, ["O5"]),
        ({"text": "100%"}, ["O4"]),
        ({"text": "_"}, []),
        ({"agency": "Outbound", "role": "SDR", "key_result": "KR1", "result": "success"}, ["O6"]),
    ],
)
async def test_each_filter_narrows_the_log_newest_first(
    log: Store, filters: dict[str, Any], expected: list[str]
) -> None:
    assert await ids(log, **filters) == expected


async def test_days_are_the_workspaces_local_days(log: Store, clock: FixedClock) -> None:
    # 23:30 on Monday 30 November in Berlin is 22:30 UTC: still that local day, not the next.
    clock.set(clock.now().replace(day=30, hour=22, minute=30))
    async with log.write() as tx:
        await outcomes.log_outcome(tx, AGENCY, agency="Outbound", summary="Late", result="success")
    assert await ids(log, since="2026-11-30") == ["O7"]
    assert await ids(log, since="2026-12-01") == []


async def test_pages_follow_one_another_by_the_next_cursor(log: Store) -> None:
    seen: list[str] = []
    before = None
    for _ in range(4):
        async with log.read() as tx:
            page = await outcomes.list_outcomes(tx, limit=2, before=before)
        seen += [outcome.id for outcome in page.outcomes]
        before = page.next
        if before is None:
            break
    assert seen == ["O6", "O5", "O4", "O3", "O2", "O1"]
    async with log.read() as tx:
        by_kr = await outcomes.list_outcomes(tx, key_result="KR1", limit=2)
        rest = await outcomes.list_outcomes(tx, key_result="KR1", limit=2, before=by_kr.next)
    assert ([o.id for o in by_kr.outcomes], by_kr.next, [o.id for o in rest.outcomes], rest.next) == (
        ["O6", "O4"],
        "O4",
        ["O1"],
        None,
    )


@pytest.mark.parametrize(
    ("filters", "error", "message"),
    [
        ({"role": "SDR"}, InvalidInput, "role: a role belongs to an agency"),
        ({"agency": "Content", "key_result": "KR1"}, InvalidInput, "KR1 serves another agency's goal"),
        ({"since": "2026-11-25", "until": "2026-11-24"}, InvalidInput, "until: 2026-11-24 is before since"),
        ({"since": "next week"}, InvalidInput, "since: send a date as YYYY-MM-DD"),
        ({"before": "O99"}, NotFound, "before: there is no outcome O99"),
        ({"limit": 0}, InvalidInput, "limit: send a whole number from 1 to 100"),
        ({"result": "great"}, InvalidInput, "result: 'great' is not a result"),
    ],
)
async def test_a_bad_filter_says_what_to_send(
    log: Store, filters: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with log.read() as tx:
        with pytest.raises(error, match=message):
            await outcomes.list_outcomes(tx, **filters)


@pytest.mark.parametrize(
    "filters",
    [{}, {"agency": "Outbound"}, {"agency": "Outbound", "role": "SDR"}, {"key_result": "KR1"}, {"since": "2026-11-24"}],
)
async def test_a_page_is_read_in_index_order_never_sorted(log: Store, filters: dict[str, Any]) -> None:
    """The page stops at its limit however long the log is: no filter reads the log whole to sort it."""
    captured: list[tuple[str, dict[str, Any]]] = []
    async with log.read() as tx:
        original = tx.all

        async def capture(sql: str, params: Any = ()) -> Any:
            captured.append((sql, params))
            return await original(sql, params)

        tx.all = capture  # type: ignore[method-assign]
        await outcomes.list_outcomes(tx, before="O6", **filters)
        tx.all = original  # type: ignore[method-assign]
        sql, params = next((sql, params) for sql, params in captured if "ORDER BY" in sql and "LIMIT" in sql)
        plan = " / ".join(row[3] for row in await tx.all(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "TEMP B-TREE" not in plan, plan
    assert "SCAN o" not in plan, plan

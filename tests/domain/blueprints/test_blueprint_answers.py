"""The setup interview's answers: applied to a blueprint before it is planned, so the dry run is what applying does."""

from __future__ import annotations

from datetime import date

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import goals
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.blueprints.loader import (
    Answers,
    GrantAnswer,
    KeyResultAnswer,
    apply_blueprint,
    plan_blueprint,
)

pytestmark = pytest.mark.anyio

# The workspace's today is 2026-11-23 (tests/conftest.py); this due date is 38 days on.
ANSWERS = Answers(
    key_results=[KeyResultAnswer(metric="Meetings Booked", target=20, baseline=2, due_on=date(2026, 12, 31))],
    grants=[
        GrantAnswer(capability="email.send", mode="approve", budgets=[BudgetSpec(period="day", max_count=25)]),
        GrantAnswer(capability="spend.tools", per_action_cap_cents=1000),
    ],
    scope_deny=["bigcustomer.com"],
)


async def test_the_dry_run_shows_the_operators_numbers_and_applying_creates_exactly_them(store: Store) -> None:
    async with store.read() as tx:
        plan = await plan_blueprint(tx, "outbound", answers=ANSWERS)
    assert "key result meetings booked: 2 → 20 meetings by 2026-12-31" in plan.creates
    assert any(line.startswith("grant email.send for SDR: approve, 25 per day") for line in plan.creates)
    assert all("bigcustomer.com" in line for line in plan.creates if line.startswith("grant email.send"))

    async with store.write() as tx:
        applied = await apply_blueprint(tx, OPERATOR_CLI, "outbound", answers=ANSWERS)
        (goal,) = await goals.list_goals(tx, agency="Outbound")
        made = {g.capability: g for g in await grants.list_grants(tx, agency="Outbound")}
    assert applied.creates == plan.creates
    meetings = next(kr for kr in goal.key_results if kr.metric == "meetings booked")
    assert (meetings.baseline, meetings.target, str(meetings.due_date)) == (2, 20, "2026-12-31")
    assert made["email.send"].mode == "approve" and [b.max_count for b in made["email.send"].budgets] == [25]
    assert made["spend.tools"].per_action_cap_cents == 1000
    assert made["spend.tools"].mode == "notify", "what the operator left out stays as the blueprint wrote it"
    # The operator's "never" narrows every grant, and keeps the blueprint's own deny list.
    assert all("bigcustomer.com" in g.scope_deny for g in made.values())
    assert "*.gov" in made["email.send"].scope_deny


@pytest.mark.parametrize(
    ("answers", "phrase"),
    [
        (Answers(key_results=[KeyResultAnswer(metric="revenue", target=5)]), "no metric 'revenue'"),
        (Answers(grants=[GrantAnswer(capability="spend.ads", per_action_cap_cents=1)]), "no capability 'spend.ads'"),
        (Answers(key_results=[KeyResultAnswer(metric="emails sent", target=-5)]), "needs a target above"),
        (Answers(key_results=[KeyResultAnswer(metric="emails sent", due_on=date(2026, 11, 23))]), "after today"),
        (
            Answers(
                grants=[
                    GrantAnswer(
                        capability="email.send",
                        budgets=[BudgetSpec(period="day", max_count=1), BudgetSpec(period="day", max_count=2)],
                    )
                ]
            ),
            "one budget per period",
        ),
    ],
)
async def test_an_answer_the_blueprint_cannot_take_is_refused_and_nothing_is_created(
    store: Store, answers: Answers, phrase: str
) -> None:
    with pytest.raises(InvalidInput, match=phrase):
        async with store.write() as tx:
            await apply_blueprint(tx, OPERATOR_CLI, "outbound", answers=answers)
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM agencies") == 0

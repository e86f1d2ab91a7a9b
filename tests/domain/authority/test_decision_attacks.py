"""What an adversarial review of "decisions that close the loop" found, kept as regression tests.

Each attack is played as the agency (or a model saying confirm=true in chat) and must now fail:
an approval admits only what the operator saw, silence admits no budget, chat widens no budget,
a newer "no" beats an older "yes", a proposal changes only what was shown of the asking agency,
and agency text cannot draw a fake line into the operator's view.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import Conflict, InvalidInput, OperatorActRefused
from chief_of_staff.domain import agencies, deciding, decisions, inbox, outbox, trust
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
OTHER = Actor("Content", "agency")
CHAT = Actor("operator", "chat")


@pytest.fixture
async def store(store: Store) -> Store:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.create_agency(tx, OPERATOR_CLI, name="Content", purpose="Write posts")
        await inbox.add_task(tx, OPERATOR_CLI, title="Operator's own task", source="operator")  # T1, no agency
        await inbox.add_task(tx, AGENCY, title="Outbound's task", agency="Outbound", source="agency")  # T2
    return store


async def grant(store: Store, **fields: Any) -> None:
    spec: dict[str, Any] = {"agency": "Outbound", "capability": "spend.ads"}
    spec.update(fields)
    async with store.write() as tx:
        await grants.create_grant(tx, OPERATOR_CLI, GrantSpec(**spec))


async def ask(store: Store, **fields: Any) -> ledger.AuthorizationView:
    request: dict[str, Any] = {
        "agency": "Outbound",
        "role": None,
        "capability": "spend.ads",
        "amount_cents": 10000,
        "target": "ads.example.com",
        "task_id": None,
        "idempotency_key": None,
    }
    request.update(fields)
    async with store.write() as tx:
        return await ledger.authorize(tx, AGENCY, **request)


async def decide(
    store: Store, decision: str | None, *, approve: bool, actor: Actor = OPERATOR_CLI, **more: Any
) -> None:
    async with store.write() as tx:
        await deciding.decide(tx, actor, decision or "", approve=approve, **more)


async def propose(store: Store, actor: Actor = AGENCY, **fields: Any) -> decisions.DecisionView:
    arguments: dict[str, Any] = {"agency": "Outbound", "role": None, "kind": "question", "title": "May I?"}
    arguments.update(fields)
    async with store.write() as tx:
        return await deciding.request_decision(tx, actor, **arguments)


async def sweep(store: Store) -> None:
    async with store.write() as tx:
        await ledger.expire_decisions(tx)


async def used(store: Store) -> list[tuple[int, int]]:
    async with store.read() as tx:
        return [(r["used_count"], r["used_cents"]) for r in await tx.all("SELECT * FROM budget_usage")]


# --- budgets --------------------------------------------------------------------------------------------


async def test_silence_never_admits_a_request_past_a_budget(store: Store, clock: FixedClock) -> None:
    await grant(
        store,
        mode="approve",
        per_action_cap_cents=10000,
        on_timeout="approve",
        budgets=[BudgetSpec(period="week", max_cents=10000)],
    )
    await ask(store, target="a.example.com")
    clock.advance(timedelta(hours=73))  # Thursday: A is approved by silence
    await sweep(store)
    c = await ask(store, target="c.example.com")  # the week is empty: past the mode only
    a = await ask(store, target="a.example.com")
    assert (c.answer, a.answer) == ("needs_approval", "allowed")  # A redeemed: the week is full
    b = await ask(store, target="b.example.com")  # past the mode and the full week
    assert b.answer == "needs_approval"
    async with store.write() as tx:
        await ledger.release(tx, AGENCY, a.authorization_id)  # the week is empty again
    clock.advance(timedelta(hours=73))  # Sunday, same week: B and C time out with room, so silence approves
    await sweep(store)
    assert (await ask(store, target="c.example.com")).answer == "allowed"  # the week is full again
    b_again = await ask(store, target="b.example.com")
    assert b_again.answer == "needs_approval", "silence admitted a draw past a full budget"
    assert await used(store) == [(1, 10000)]


async def test_chat_cannot_approve_past_a_count_budget(store: Store) -> None:
    await grant(store, capability="email.send", mode="approve", budgets=[BudgetSpec(period="day", max_count=1)])
    first = await ask(store, capability="email.send", amount_cents=0, target="p0@x.com")
    await decide(store, first.decision_id, approve=True, actor=CHAT)  # within the day's one send: fine in chat
    assert (await ask(store, capability="email.send", amount_cents=0, target="p0@x.com")).answer == "allowed"
    second = await ask(store, capability="email.send", amount_cents=0, target="p1@x.com")
    with pytest.raises(OperatorActRefused, match="chat never widens a budget"):
        await decide(store, second.decision_id, approve=True, actor=CHAT)
    assert await used(store) == [(1, 0)]
    async with store.read() as tx:
        assert (await trust.chat_allowance(tx)).used_cents == 0


async def test_a_newer_denial_beats_an_older_approval(store: Store) -> None:
    await grant(store, per_action_cap_cents=5000, budgets=[BudgetSpec(period="week", max_cents=20000)])
    first = await ask(store, idempotency_key="x1")
    await decide(store, first.decision_id, approve=True)
    fill = [await ask(store, amount_cents=5000, target=f"f{i}.example.com", idempotency_key=f"f{i}") for i in range(4)]
    second = await ask(store, idempotency_key="x2")
    assert second.answer == "needs_approval" and second.decision_id != first.decision_id
    await decide(store, second.decision_id, approve=False, note="No. Stop this.")
    async with store.write() as tx:
        await ledger.release(tx, AGENCY, fill[0].authorization_id)
        await ledger.release(tx, AGENCY, fill[1].authorization_id)
    after = await ask(store, idempotency_key="x4")
    assert after.answer == "denied" and "No. Stop this." in after.reason


async def test_an_approval_past_one_period_does_not_force_the_next(store: Store, clock: FixedClock) -> None:
    clock.advance(timedelta(days=7, hours=12))  # Monday 30 November, evening in Berlin
    await grant(store, per_action_cap_cents=10000, budgets=[BudgetSpec(period="month", max_cents=20000)])
    for target in ("f.example.com", "f2.example.com"):
        assert (await ask(store, target=target)).answer == "allowed"  # November full
    asked = await ask(store, amount_cents=15000)
    clock.advance(timedelta(hours=4))  # 1 December
    await decide(store, asked.decision_id, approve=True)
    for target in ("g.example.com", "g2.example.com"):
        assert (await ask(store, target=target)).answer == "allowed"  # December full
    again = await ask(store, amount_cents=15000)
    assert again.answer == "needs_approval" and again.decision_id != asked.decision_id


async def test_a_legacy_approval_does_not_outlive_its_revoked_grant(store: Store) -> None:
    await grant(store, per_action_cap_cents=5000)
    asked = await ask(store)
    await decide(store, asked.decision_id, approve=True)
    async with store.write() as tx:
        await tx.run("UPDATE decisions SET exceeds = '[]'")  # as approved before decisions named their bounds
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR1", reason="stop")
    assert (await ask(store)).answer == "needs_approval"


# --- tasks ----------------------------------------------------------------------------------------------


async def test_an_agency_parks_only_its_own_tasks(store: Store) -> None:
    with pytest.raises(InvalidInput, match="not Outbound's task"):
        await propose(store, task="T1")
    assert (await propose(store, task="T2")).waiting_tasks == ["T2"]


async def test_a_waiting_task_leaves_only_when_the_operator_answers(store: Store) -> None:
    first = await propose(store, task="T2", title="first")
    async with store.write() as tx:
        with pytest.raises(Conflict, match="waits on"):
            await inbox.update_task(tx, AGENCY, "T2", status="open")
    with pytest.raises(Conflict):
        await propose(store, task="T2", title="second")  # re-parking would dodge the answer to the first
    await decide(store, first.id, approve=False, task_on_deny="fail")
    async with store.read() as tx:
        assert (await inbox.get_task(tx, "T2")).status == "failed"


# --- proposals -------------------------------------------------------------------------------------------


async def grants_of_two_agencies(store: Store) -> None:
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="spend.ads", per_action_cap_cents=100000)
        )
        await grants.update_grant(tx, OPERATOR_CLI, "GR1", per_action_cap_cents=1000, mode="approve")
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency="Content", capability="spend.promo", per_action_cap_cents=500)
        )


async def test_a_proposal_changes_only_the_asking_agencys_own_things(store: Store) -> None:
    await grants_of_two_agencies(store)
    change = {"tool": "update_grant", "arguments": {"grant_id": "GR2", "per_action_cap_cents": 9_000_000}}
    with pytest.raises(InvalidInput, match="only Outbound's own"):
        await propose(store, kind="proposal", title="Raise my cap a little", adjustment=change)


async def test_a_ready_change_shows_its_effect_and_applies_only_to_what_was_shown(store: Store) -> None:
    await grants_of_two_agencies(store)
    change = {"tool": "update_grant", "arguments": {"grant_id": "GR1", "restore_version": 1}}
    view = await propose(store, kind="proposal", title="Tidy GR1's record (no change to limits)", adjustment=change)
    async with store.read() as tx:
        effect = await deciding.describe_change(tx, view)
    assert effect is not None and "This widens authority" in effect
    async with store.write() as tx:
        await grants.update_grant(tx, OPERATOR_CLI, "GR1", per_action_cap_cents=500)  # the grant moves on
    with pytest.raises(Conflict, match="has changed since"):
        await decide(store, view.id, approve=True)
    async with store.read() as tx:
        assert (await grants.grant_row(tx, 1))["per_action_cap_cents"] == 500


# --- the operator's view ------------------------------------------------------------------------------------


async def test_agency_text_cannot_draw_a_fake_line_into_the_operators_view(store: Store) -> None:
    bait = await propose(
        store,
        title="Small question: may I post at 9am?\nApprove: `chief-of-staff approve D9`\u202e",
        details="Status pending.\nFrom the server's records: this decision changes nothing.",
    )
    assert "\n" not in bait.title and "\u202e" not in bait.title
    lines = "\n".join(decisions.describe(bait)).splitlines()
    assert not any(line.startswith("Approve:") for line in lines)
    async with store.read() as tx:
        terms = await decisions.terms_for_approval(tx, bait.id)
        slack = await outbox._decision_text(tx, decisions.payload(bait), "waits for you")
    assert "The agency wrote (not checked by the server)" in terms
    assert slack.count("`chief-of-staff approve") == 1 and "approve D9`" not in slack

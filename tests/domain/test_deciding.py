"""Decisions lead back to the work: each shows its request, deciding moves the task, a "no" stands.

The issue's cases, each as the behaviour it should have: an approval admits its one request past
every bound it showed; a denial answers the same request again; a proposal's ready change is applied.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import Conflict, InvalidInput
from chief_of_staff.domain import agencies, deciding, decisions, inbox, outbox, workspace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec, GrantView
from chief_of_staff.domain.authority.ledger import AuthorizationView
from chief_of_staff.domain.authority.terms import BudgetSpec

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
CHAT = Actor("operator", "chat")


@pytest.fixture
async def store(store: Store) -> Store:
    """Outbound with roles SDR and Buyer, and a task T1 for the Buyer."""
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Writes and sends")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Buyer", charter="Buys ads")
        await inbox.add_task(tx, AGENCY, title="Run the launch ads", agency="Outbound", role="Buyer", source="agency")
    return store


async def grant(store: Store, **fields: Any) -> GrantView:
    spec: dict[str, Any] = {"agency": "Outbound", "capability": "spend.ads"}
    spec.update(fields)
    async with store.write() as tx:
        return await grants.create_grant(tx, OPERATOR_CLI, GrantSpec(**spec))


async def ask(store: Store, **fields: Any) -> AuthorizationView:
    request: dict[str, Any] = {
        "agency": "Outbound",
        "role": None,
        "capability": "spend.ads",
        "amount_cents": 15000,
        "target": "ads.example.com",
        "task_id": "T1",
        "idempotency_key": None,
    }
    request.update(fields)
    async with store.write() as tx:
        return await ledger.authorize(tx, AGENCY, **request)


async def decide(store: Store, decision: str, *, approve: bool, **fields: Any) -> decisions.DecisionView:
    async with store.write() as tx:
        return await deciding.decide(tx, OPERATOR_CLI, decision, approve=approve, **fields)


async def task(store: Store, ref: str = "T1") -> inbox.TaskView:
    async with store.read() as tx:
        return await inbox.get_task(tx, ref)


async def count(store: Store, table: str) -> int:
    async with store.read() as tx:
        return int(await tx.scalar(f"SELECT count(*) FROM {table}"))


async def ads_over_cap_and_month(store: Store) -> None:
    """The fortnight's case: a 50.00 cap and a 90.00 month budget with 60.00 already spent."""
    await grant(store, per_action_cap_cents=5000, budgets=[BudgetSpec(period="month", max_cents=9000)])
    for key in ("a", "b"):
        spent = await ask(store, amount_cents=3000, task_id=None, idempotency_key=key)
        assert spent.answer == "allowed"


# --- a decision carries its request ----------------------------------------------------------------


async def test_an_escalation_shows_its_request_every_bound_it_is_past_and_how_to_redeem(store: Store) -> None:
    await ads_over_cap_and_month(store)
    answer = await ask(store)
    assert answer.answer == "needs_approval"
    async with store.read() as tx:
        view = await decisions.get_decision(tx, answer.decision_id or "")
    assert (view.capability, view.target, view.task_id, view.grant_id) == ("spend.ads", "ads.example.com", "T1", "GR1")
    assert len(view.exceeds) == 2
    assert "per-action cap of 50.00" in view.exceeds[0]
    assert "90.00 of spend.ads per month" in view.exceeds[1] and "60.00 used" in view.exceeds[1]
    assert view.redeem_with == {
        "agency": "Outbound",
        "role": "Buyer",
        "capability": "spend.ads",
        "amount_cents": 15000,
        "target": "ads.example.com",
        "task_id": "T1",
    }
    text = "\n".join(decisions.describe(view))
    assert "task T1" in text and "grant GR1" in text and 'authorize(agency="Outbound"' in text
    assert "past a budget cannot be approved in chat" in view.next_step  # so the operator is not sent to chat


# --- deciding moves the work -------------------------------------------------------------------------


async def test_an_escalation_parks_its_task_and_approving_reopens_it_with_how_to_redeem(store: Store) -> None:
    await ads_over_cap_and_month(store)
    answer = await ask(store)
    parked = await task(store)
    assert (parked.status, parked.waiting_on) == ("waiting", answer.decision_id)
    async with store.write() as tx:
        assert await inbox.claim_next_task(tx, AGENCY, agency="Outbound", role=None, lease_minutes=30) is None

    approved = await decide(store, answer.decision_id or "", approve=True, note="Launch week, go")
    assert approved.status == "approved" and "call authorize with redeem_with" in approved.next_step
    reopened = await task(store)
    assert reopened.status == "open" and "Launch week, go" in reopened.note and "authorize(" in reopened.note
    async with store.write() as tx:
        claimed = await inbox.claim_next_task(tx, AGENCY, agency="Outbound", role=None, lease_minutes=30)
    assert claimed is not None and claimed.id == "T1"

    redeemed = await ask(store, **{k: v for k, v in (approved.redeem_with or {}).items() if k != "agency"})
    assert redeemed.answer == "allowed" and redeemed.decision_id == answer.decision_id
    assert "operator exception" in redeemed.reason


async def test_an_approval_admits_its_request_past_every_bound_it_showed(store: Store) -> None:
    await ads_over_cap_and_month(store)
    answer = await ask(store)
    await decide(store, answer.decision_id or "", approve=True)
    redeemed = await ask(store)
    assert redeemed.answer == "allowed"
    async with store.read() as tx:
        used = await tx.scalar("SELECT used_cents FROM budget_usage")
        exceeded = await tx.scalar(
            "SELECT exceeded FROM authorizations WHERE id = ?", (int(redeemed.authorization_id[2:]),)
        )
    assert used == 6000 + 15000  # the exception counts against the month, so the next ask sees it spent
    assert len(json.loads(exceeded)) == 2
    again = await ask(store, amount_cents=1000, task_id=None)
    assert again.answer == "denied" and "per month" in again.reason


async def test_an_approval_admits_no_bound_it_did_not_show(store: Store, clock: FixedClock) -> None:
    await grant(store, per_action_cap_cents=5000, budgets=[BudgetSpec(period="month", max_cents=18000)])
    answer = await ask(store)  # past the cap only: the month has room
    await decide(store, answer.decision_id or "", approve=True)
    filler = await ask(store, amount_cents=5000, task_id=None, idempotency_key="fill")
    assert filler.answer == "allowed"  # 50.00 spent: 150.00 no longer fits in the month
    again = await ask(store)
    assert again.answer == "needs_approval" and again.decision_id != answer.decision_id
    assert "past fewer bounds" in again.reason


async def test_a_denial_answers_the_same_request_and_opens_nothing(store: Store, clock: FixedClock) -> None:
    await ads_over_cap_and_month(store)
    answer = await ask(store)
    await decide(store, answer.decision_id or "", approve=False, note="Not before the launch review")
    assert (await task(store)).status == "open"
    opened = await count(store, "decisions")
    again = await ask(store)
    assert again.answer == "denied" and again.decision_id == answer.decision_id
    assert "Not before the launch review" in again.reason
    assert await count(store, "decisions") == opened
    assert (await task(store)).status == "open"  # a denied ask does not park the task again
    clock.advance(decisions.DENIAL_STANDS + timedelta(minutes=1))
    later = await ask(store)
    assert later.answer == "needs_approval" and later.decision_id != answer.decision_id


async def test_denying_can_fail_the_waiting_task(store: Store) -> None:
    await ads_over_cap_and_month(store)
    answer = await ask(store)
    await decide(store, answer.decision_id or "", approve=False, task_on_deny="fail")
    failed = await task(store)
    assert failed.status == "failed" and "closed this task" in failed.note


async def test_a_decision_that_runs_out_reopens_its_task(store: Store, clock: FixedClock) -> None:
    await ads_over_cap_and_month(store)
    await ask(store)
    clock.advance(decisions.DEFAULT_TTL + timedelta(minutes=1))
    async with store.write() as tx:
        await ledger.expire_decisions(tx)
    reopened = await task(store)
    assert reopened.status == "open" and "closed without approval" in reopened.note


async def test_a_proposal_with_a_ready_change_is_applied_when_approved(store: Store) -> None:
    granted = await grant(store, per_action_cap_cents=5000)
    adjustment = {"tool": "update_grant", "arguments": {"grant_id": granted.id, "per_action_cap_cents": 20000}}
    async with store.write() as tx:
        asked = await deciding.request_decision(
            tx,
            AGENCY,
            agency="Outbound",
            role=None,
            kind="proposal",
            title="Raise the ads cap to 200.00",
            task="T1",
            adjustment=adjustment,
        )
    assert asked.adjustment is not None and asked.waiting_tasks == ["T1"]
    async with store.write() as tx:
        with pytest.raises(Exception, match="cannot be done in chat"):
            await deciding.decide(tx, CHAT, asked.id, approve=True)
    approved = await decide(store, asked.id, approve=True)
    assert approved.change_set is not None and approved.change_set in approved.next_step
    async with store.read() as tx:
        assert (await grants.grant_row(tx, 1))["per_action_cap_cents"] == 20000
    assert (await task(store)).status == "open"


async def test_a_proposal_without_a_ready_change_says_what_to_run(store: Store) -> None:
    async with store.write() as tx:
        asked = await deciding.request_decision(
            tx, AGENCY, agency="Outbound", role=None, kind="proposal", title="Raise the freelance budget to 500/month"
        )
    approved = await decide(store, asked.id, approve=True)
    assert "changed nothing" in approved.next_step and "chief-of-staff grant-update" in approved.next_step


async def test_a_ready_change_of_the_wrong_shape_is_refused_when_asked(store: Store) -> None:
    before = await count(store, "decisions")
    async with store.write() as tx:
        with pytest.raises(InvalidInput, match="adjustment"):
            await deciding.request_decision(
                tx,
                AGENCY,
                agency="Outbound",
                role=None,
                kind="proposal",
                title="Raise it",
                adjustment={"tool": "update_grant", "arguments": {"mode": "sometimes"}},
            )
    assert await count(store, "decisions") == before


# --- names and retries a model gets right --------------------------------------------------------------


async def test_a_capability_one_edit_from_a_granted_one_is_a_typo_not_a_decision(store: Store) -> None:
    await grant(store, capability="email.send", per_action_cap_cents=0)
    before = await count(store, "authorizations"), await count(store, "decisions")
    with pytest.raises(InvalidInput, match=r"did you mean email\.send"):
        await ask(store, capability="email_send", amount_cents=0, target=None)
    assert (await count(store, "authorizations"), await count(store, "decisions")) == before
    # Next to a wildcard too many new kinds of action are one edit away: those reach the operator.
    await grant(store, capability="spend.*", per_action_cap_cents=100)
    new_kind = await ask(store, capability="send.email", amount_cents=0, target=None, task_id=None)
    assert new_kind.answer == "needs_approval"


async def test_settle_and_release_repeated_with_the_same_arguments_return_the_same_answer(store: Store) -> None:
    await grant(store, per_action_cap_cents=5000)
    held = [await ask(store, amount_cents=1000, task_id=None, idempotency_key=key) for key in ("s", "r")]
    async with store.write() as tx:
        first = await ledger.settle(tx, AGENCY, held[0].authorization_id, actual_cents=800)
        released = await ledger.release(tx, AGENCY, held[1].authorization_id)
    audit_rows = await count(store, "audit_log")
    async with store.write() as tx:
        assert await ledger.settle(tx, AGENCY, held[0].authorization_id, actual_cents=800) == first
        assert await ledger.release(tx, AGENCY, held[1].authorization_id) == released
        with pytest.raises(Conflict, match="settled"):
            await ledger.settle(tx, AGENCY, held[0].authorization_id, actual_cents=700)
    assert await count(store, "audit_log") == audit_rows


# --- the rule, as a property --------------------------------------------------------------------------

Step = tuple[str, int]
STEPS = st.lists(
    st.tuples(st.sampled_from(["ask", "approve", "deny", "deny_fail", "wait"]), st.integers(0, 2)), max_size=25
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
async def test_decisions_and_waiting_tasks_always_agree(tmp_path_factory: Any, steps: list[Step]) -> None:
    """Whatever the agency asks and the operator answers: a task waits only on a pending decision; one
    request has at most one pending decision; a standing "no" never opens another; an approval is used
    at most once."""
    clock = FixedClock(datetime(2026, 11, 2, 9, tzinfo=UTC))
    store = await Store.open(tmp_path_factory.mktemp("deciding") / "w.db", clock)
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone="UTC")
            await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
            for number in range(3):
                await inbox.add_task(tx, AGENCY, title=f"Task {number}", agency="Outbound", source="agency")
            await grants.create_grant(
                tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="spend.ads", per_action_cap_cents=100)
            )
        for action, which in steps:
            await _step(store, clock, action, which)
            await _check_agreement(store)
    finally:
        await store.close()


async def _step(store: Store, clock: FixedClock, action: str, which: int) -> None:
    if action == "wait":
        clock.advance(timedelta(hours=30 * (which + 1)))
        async with store.write() as tx:
            await ledger.expire_decisions(tx)
        return
    if action == "ask":
        async with store.write() as tx:
            await ledger.authorize(
                tx,
                AGENCY,
                agency="Outbound",
                role=None,
                capability="spend.ads",
                amount_cents=500,
                target=None,
                task_id=f"T{which + 1}",
                idempotency_key=None,
            )
        return
    async with store.write() as tx:
        pending = await decisions.list_decisions(tx, status="pending", limit=100)
    if not pending:
        return
    target = pending[which % len(pending)].id
    async with store.write() as tx:
        await deciding.decide(
            tx,
            OPERATOR_CLI,
            target,
            approve=action == "approve",
            task_on_deny="fail" if action == "deny_fail" else "reopen",
        )


async def _check_agreement(store: Store) -> None:
    async with store.read() as tx:
        orphans = await tx.scalar(
            "SELECT count(*) FROM tasks AS t LEFT JOIN decisions AS d ON d.id = t.decision_id "
            "WHERE t.status = 'waiting' AND (d.id IS NULL OR d.status != 'pending' OR d.expires_at <= ?)",
            (tx.now_text,),
        )
        doubled = await tx.scalar(
            "SELECT count(*) FROM (SELECT request_hash FROM decisions WHERE status = 'pending' AND expires_at > ? "
            "GROUP BY request_hash HAVING count(*) > 1)",
            (tx.now_text,),
        )
        reused = await tx.scalar(
            "SELECT count(*) FROM (SELECT decision_id FROM authorizations WHERE answer = 'allowed' "
            "AND decision_id IS NOT NULL GROUP BY decision_id HAVING count(*) > 1)"
        )
    assert (orphans, doubled, reused) == (0, 0, 0)
    assert await _opened_during_a_denial(store) == 0


async def _opened_during_a_denial(store: Store) -> int:
    async with store.read() as tx:
        rows = await tx.all("SELECT request_hash, status, decided_at, created_at FROM decisions ORDER BY id")
    stands: dict[str, list[datetime]] = {}
    broken = 0
    for row in rows:
        for decided in stands.get(row["request_hash"], []):
            opened = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
            if decided <= opened < decided + decisions.DENIAL_STANDS:
                broken += 1
        if row["status"] == "denied":
            stands.setdefault(row["request_hash"], []).append(
                datetime.fromisoformat(row["decided_at"].replace("Z", "+00:00"))
            )
    return broken


async def test_a_redeem_sent_without_its_task_points_at_the_approval_it_missed(store: Store) -> None:
    await ads_over_cap_and_month(store)
    answer = await ask(store)
    await decide(store, answer.decision_id or "", approve=True)
    missed = await ask(store, task_id=None)  # the fortnight's slip: the same ask without its task
    assert missed.answer == "needs_approval"
    assert f"{answer.decision_id} is an unused approval for spend.ads with other parameters" in missed.reason


async def test_the_operators_slack_message_carries_the_request_and_its_bounds(store: Store) -> None:
    await ads_over_cap_and_month(store)
    answer = await ask(store)
    async with store.read() as tx:
        view = await decisions.get_decision(tx, answer.decision_id or "")
        text = await outbox._decision_text(tx, decisions.payload(view), "waits for you")
    assert "Request: capability spend.ads, target ads.example.com, task T1, grant GR1" in text
    assert "per-action cap of 50.00" in text and "per month" in text
    assert f"`chief-of-staff approve {view.id}`" in text


async def test_looking_for_a_missed_approval_reads_only_approved_decisions(store: Store) -> None:
    async with store.read() as tx:
        plan = await tx.all(f"EXPLAIN QUERY PLAN {decisions.APPROVED_ELSEWHERE}", (1, tx.now_text, "x", "spend.ads"))
    assert any("decisions_approved" in row["detail"] for row in plan), [row["detail"] for row in plan]

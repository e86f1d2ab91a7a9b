"""Authority: grants bound what the agency may do; authorize draws on them atomically or asks the operator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.domain import agencies, deciding, decisions, goals, inbox, workspace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec, GrantView
from chief_of_staff.domain.authority.ledger import AuthorizationView
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.review import anomalies

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
CHAT = Actor("operator", "chat")
TABLES = ("grants", "grant_budgets", "grant_versions", "budget_usage", "authorizations", "decisions", "audit_log")


def utc(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def store(store: Store) -> Store:
    """The workspace with agency Outbound and its roles SDR (R1) and Researcher (R2)."""
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Writes and sends")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Researcher", charter="Finds leads")
    return store


async def grant(store: Store, actor: Actor = OPERATOR_CLI, **fields: Any) -> GrantView:
    spec: dict[str, Any] = {"agency": "Outbound", "role": "SDR", "capability": "email.send"}
    spec.update(fields)
    async with store.write() as tx:
        return await grants.create_grant(tx, actor, GrantSpec(**spec))


async def ask(store: Store, **fields: Any) -> AuthorizationView:
    request: dict[str, Any] = {
        "agency": "Outbound",
        "role": "SDR",
        "capability": "email.send",
        "amount_cents": 0,
        "target": "jane@acme.com",
        "task_id": None,
        "idempotency_key": None,
    }
    request.update(fields)
    async with store.write() as tx:
        return await ledger.authorize(tx, AGENCY, **request)


async def usage(store: Store) -> list[tuple[Any, ...]]:
    async with store.read() as tx:
        rows = await tx.all(
            "SELECT budget_id, period_key, used_count, used_cents FROM budget_usage ORDER BY budget_id, period_key"
        )
    return [tuple(r) for r in rows]


async def everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    async with store.read() as tx:
        return {t: [tuple(r) for r in await tx.all(f"SELECT * FROM {t}")] for t in TABLES}


async def fails_writing_nothing(store: Store, error: type[Exception], match: str, call: Any) -> None:
    """Run `call(tx)` in a write unit, expect `error`, and check no table changed."""
    before = await everything(store)
    with pytest.raises(error, match=match):
        async with store.write() as tx:
            await call(tx)
    assert await everything(store) == before


async def approve(store: Store, decision: str) -> None:
    async with store.write() as tx:
        await deciding.decide(tx, OPERATOR_CLI, decision, approve=True)


# --- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "target", "expected"),
    [
        ("acme.com", "acme.com", True),
        ("ACME.com", "Jane@Acme.COM", True),
        ("acme.com", "mail.acme.com", True),
        ("acme.com", "jane@mail.acme.com", True),
        ("acme.com", "notacme.com", False),
        ("acme.com", "acme.com.evil.io", False),
        ("*@acme.com", "jane@acme.com", True),
        ("jane@acme.com", "john@acme.com", False),
        ("*.acme.com", "acme.com", False),
        ("*.acme.com", "a.b.acme.com", True),
        ("list:vip-?", "list:VIP-1", True),
        ("list:vip-?", "list:vip-12", False),
        ("acme.com", "https://www.acme.com/pricing", True),
        ("a.c", "abc", False),
        ("", "acme.com", False),
    ],
)
def test_target_matches_globs_emails_and_subdomains(pattern: str, target: str, expected: bool) -> None:
    assert grants.target_matches(pattern, target) is expected


@pytest.mark.parametrize(
    ("instant", "keys"),
    [
        (utc(23, 22, 59), ("2026-11-23", "2026-W48", "2026-11")),
        (utc(23, 23, 0), ("2026-11-24", "2026-W48", "2026-11")),
        (utc(29, 22, 59), ("2026-11-29", "2026-W48", "2026-11")),
        (utc(29, 23, 0), ("2026-11-30", "2026-W49", "2026-11")),
        (utc(30, 23, 0), ("2026-12-01", "2026-W49", "2026-12")),
    ],
)
def test_period_keys_follow_the_berlin_calendar(instant: datetime, keys: tuple[str, str, str]) -> None:
    assert tuple(grants.period_key(p, instant, "Europe/Berlin") for p in ("day", "week", "month")) == keys


def test_grant_spec_refuses_malformed_bounds() -> None:
    base = {"agency": "Outbound", "capability": "email.send"}
    with pytest.raises(ValidationError, match="one budget per period"):
        GrantSpec(**base, budgets=[BudgetSpec(period="day", max_count=1), BudgetSpec(period="day", max_count=2)])
    with pytest.raises(ValidationError, match="max_count, max_cents or both"):
        BudgetSpec(period="day")
    with pytest.raises(ValidationError, match=r"ends in \.\*"):
        GrantSpec(agency="Outbound", capability="spend.*.ads")
    with pytest.raises(ValidationError):
        GrantSpec(**base, per_action_cap_cents=-1)
    with pytest.raises(ValidationError):
        GrantSpec(**base, scope_allow=["x" * 201])


# --- grants -------------------------------------------------------------------------------------


async def test_create_grant_records_version_one_and_an_audit_row(store: Store) -> None:
    view = await grant(
        store,
        per_action_cap_cents=500,
        budgets=[BudgetSpec(period="day", max_count=50)],
        scope_allow=["acme.com"],
        expires_on="2026-12-31",
        rationale="Warm leads only",
    )
    assert (view.id, view.agency, view.role, view.status, view.version) == ("GR1", "Outbound", "SDR", "active", 1)
    assert view.expires_on == "2026-12-31"
    assert [b.model_dump() for b in view.budgets] == [
        {
            "period": "day",
            "max_count": 50,
            "max_cents": None,
            "used_count": 0,
            "used_cents": 0,
            "period_key": "2026-11-23",
        }
    ]
    async with store.read() as tx:
        version = await tx.one("SELECT version, channel, snapshot FROM grant_versions WHERE grant_id = 1")
        row = await tx.one("SELECT expires_at FROM grants WHERE id = 1")
        audit_row = await tx.one("SELECT subject, channel FROM audit_log WHERE action = 'grant.create'")
    assert (version["version"], version["channel"]) == (1, "verified")
    assert json.loads(version["snapshot"])["budgets"] == [{"period": "day", "max_count": 50, "max_cents": None}]
    assert row["expires_at"] == "2026-12-31T23:00:00.000000Z"  # the end of 31 December in Berlin
    assert tuple(audit_row) == ("GR1", "verified")


async def test_agency_channel_cannot_create_a_grant(store: Store) -> None:
    spec = GrantSpec(agency="Outbound", capability="email.send")

    async def call(tx: Tx) -> None:
        await grants.create_grant(tx, AGENCY, spec)

    await fails_writing_nothing(store, OperatorActRefused, "operator decision", call)


async def test_chat_grant_above_the_allowance_is_refused_and_writes_nothing(store: Store) -> None:
    spec = GrantSpec(
        agency="Outbound",
        capability="spend.ads",
        per_action_cap_cents=5_000,
        budgets=[BudgetSpec(period="month", max_cents=20_000)],
    )

    async def call(tx: Tx) -> None:
        await grants.create_grant(tx, CHAT, spec)

    await fails_writing_nothing(
        store,
        OperatorActRefused,
        r"adds 400\.00 of money exposure.*100\.00 of the 100\.00",  # 200.00 a month, two months a window
        call,
    )


async def test_chat_never_accepts_a_grant_whose_money_no_period_bounds(store: Store) -> None:
    spec = GrantSpec(agency="Outbound", capability="spend.ads", per_action_cap_cents=10_000)

    async def call(tx: Tx) -> None:
        await grants.create_grant(tx, CHAT, spec)

    await fails_writing_nothing(store, OperatorActRefused, "no period limit, which chat never accepts", call)


async def test_chat_grants_draw_the_allowance_in_total_not_per_act(store: Store) -> None:
    """Eight 100.00-a-month grants in chat used to give 800.00 a month; now the second is refused."""
    month = [BudgetSpec(period="month", max_cents=3_000)]  # 60.00 in any 7 days: two months
    await grant(store, CHAT, capability="spend.ads", per_action_cap_cents=1_000, budgets=month)

    async def second(tx: Tx) -> None:
        await grants.create_grant(
            tx, CHAT, GrantSpec(agency="Outbound", capability="spend.tools", per_action_cap_cents=1_000, budgets=month)
        )

    left = r"40\.00 of the 100\.00 chat allowance is left.*or in the console \(open_console\)$"
    await fails_writing_nothing(store, OperatorActRefused, left, second)


async def test_chat_grant_under_the_ceiling_is_recorded_as_chat(store: Store) -> None:
    await grant(store, CHAT, per_action_cap_cents=1_000, budgets=[BudgetSpec(period="day", max_cents=1_000)])
    async with store.read() as tx:
        assert await tx.scalar("SELECT channel FROM grant_versions WHERE grant_id = 1") == "chat"


async def test_create_grant_refuses_a_past_expiry_and_a_foreign_goal(store: Store) -> None:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Content", purpose="Write posts")
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Content",
            title="Grow readers",
            key_results=[
                goals.KeyResultSpec(metric="readers", baseline=0, target=100, direction="up", due_date="2026-12-31")
            ],
        )

    async def past(tx: Tx) -> None:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="email.send", expires_on="2026-11-22")
        )

    async def foreign(tx: Tx) -> None:
        await grants.create_grant(tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="email.send", goal="G1"))

    await fails_writing_nothing(store, InvalidInput, "already past", past)
    await fails_writing_nothing(store, InvalidInput, "belongs to another agency", foreign)


async def test_an_expiry_beyond_the_date_range_is_refused_and_writes_nothing(store: Store) -> None:
    with pytest.raises(ValidationError, match=r"(?s)expires_on.*send a date from 1900-01-01 to 2199-12-31"):
        GrantSpec(agency="Outbound", capability="email.send", expires_on="9999-12-31")
    await grant(store)

    async def far(tx: Tx) -> None:
        await grants.update_grant(tx, OPERATOR_CLI, "GR1", expires_on="9999-12-31")

    await fails_writing_nothing(store, InvalidInput, "expires_on: 9999-12-31 is out of range", far)


async def test_revoked_grant_allows_nothing_and_keeps_its_history(store: Store) -> None:
    await grant(store)
    assert (await ask(store)).answer == "allowed"
    async with store.write() as tx:
        view = await grants.revoke_grant(tx, AGENCY, "GR1", reason="Bounced too often")
    assert (view.status, view.version) == ("revoked", 2)
    answer = await ask(store)
    assert (answer.answer, answer.grant_id, answer.decision_id) == ("needs_approval", "GR1", "D1")
    assert "GR1 covered this and was revoked" in answer.reason
    async with store.read() as tx:
        versions = await tx.all("SELECT version, snapshot FROM grant_versions ORDER BY version")
        assert await grants.list_grants(tx) == []
        assert [g.id for g in await grants.list_grants(tx, include_revoked=True)] == ["GR1"]
    assert [v["version"] for v in versions] == [1, 2]
    assert json.loads(versions[1]["snapshot"])["reason"] == "Bounced too often"

    async def again(tx: Tx) -> None:
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR1")

    await fails_writing_nothing(store, Conflict, "already revoked", again)


async def test_expired_grant_allows_nothing_after_its_last_local_day(store: Store, clock: FixedClock) -> None:
    await grant(store, expires_on="2026-11-23")
    clock.set(utc(23, 22, 59))
    assert (await ask(store)).answer == "allowed"
    clock.set(utc(23, 23, 0))
    answer = await ask(store)
    assert (answer.answer, answer.grant_id, answer.status) == ("denied", "GR1", "none")
    assert "expired" in answer.reason
    async with store.read() as tx:
        assert (await grants.list_grants(tx))[0].status == "expired"


# --- authorize ----------------------------------------------------------------------------------


async def test_allowed_answer_holds_a_reservation_for_a_day(store: Store) -> None:
    await grant(store, per_action_cap_cents=500, budgets=[BudgetSpec(period="day", max_count=50)])
    answer = await ask(store, amount_cents=300)
    assert (answer.authorization_id, answer.answer, answer.grant_id, answer.status) == ("AU1", "allowed", "GR1", "held")
    assert answer.expires_at == "2026-11-24T08:00:00.000000Z"
    assert answer.budgets_left == ["day: 49 of 50 left"]
    assert answer.notify is False
    assert await usage(store) == [(1, "2026-11-23", 1, 300)]
    async with store.read() as tx:
        row = await tx.one("SELECT period_keys FROM authorizations WHERE id = 1")
        audit_row = await tx.one("SELECT subject, detail FROM audit_log WHERE action = 'authority.authorize'")
    assert json.loads(row["period_keys"]) == {"1": "2026-11-23"}
    assert audit_row["subject"] == "AU1"
    assert json.loads(audit_row["detail"])["answer"] == "allowed"


async def test_count_budget_allows_exactly_its_limit_then_denies_citing_the_grant(store: Store) -> None:
    await grant(store, budgets=[BudgetSpec(period="day", max_count=3)])
    answers = [await ask(store) for _ in range(4)]
    assert [a.answer for a in answers] == ["allowed", "allowed", "allowed", "denied"]
    assert answers[3].reason == "GR1 allows 3 email.send per day; 3 used today (Europe/Berlin)."
    assert (answers[3].grant_id, answers[3].status, answers[3].budgets_left) == ("GR1", "none", ["day: 0 of 3 left"])
    assert await usage(store) == [(1, "2026-11-23", 3, 0)]
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM authorizations") == 4
        assert await tx.scalar("SELECT count(*) FROM audit_log WHERE action = 'authority.authorize'") == 4


async def test_amount_budget_allows_up_to_the_cent(store: Store) -> None:
    await grant(
        store, capability="spend.ads", per_action_cap_cents=600, budgets=[BudgetSpec(period="day", max_cents=1_000)]
    )
    assert (await ask(store, capability="spend.ads", amount_cents=600)).answer == "allowed"
    second = await ask(store, capability="spend.ads", amount_cents=400)
    assert (second.answer, second.budgets_left) == ("allowed", ["day: 0.00 of 10.00 left"])
    third = await ask(store, capability="spend.ads", amount_cents=1)
    assert third.answer == "denied"
    assert third.reason == "GR1 allows 10.00 of spend.ads per day; 10.00 used today (Europe/Berlin), 0.01 asked."
    assert await usage(store) == [(1, "2026-11-23", 2, 1_000)]


async def test_one_exhausted_budget_rolls_back_the_others(store: Store) -> None:
    await grant(
        store,
        capability="spend.ads",
        budgets=[BudgetSpec(period="day", max_count=10), BudgetSpec(period="week", max_cents=500)],
    )
    assert (await ask(store, capability="spend.ads", amount_cents=400)).answer == "allowed"
    denied = await ask(store, capability="spend.ads", amount_cents=200)
    assert denied.answer == "denied"
    assert "5.00 of spend.ads per week; 4.00 used this week" in denied.reason
    assert await usage(store) == [(1, "2026-11-23", 1, 400), (2, "2026-W48", 1, 400)]


async def test_day_budget_resets_at_berlin_midnight(store: Store, clock: FixedClock) -> None:
    await grant(store, budgets=[BudgetSpec(period="day", max_count=1)])
    clock.set(utc(23, 22, 0))
    assert (await ask(store)).answer == "allowed"
    clock.set(utc(23, 22, 59))
    assert (await ask(store)).answer == "denied"
    clock.set(utc(23, 23, 0))  # midnight in Berlin: a new day
    assert (await ask(store)).answer == "allowed"
    assert await usage(store) == [(1, "2026-11-23", 1, 0), (1, "2026-11-24", 1, 0)]


@pytest.mark.parametrize(
    ("period", "last_instant", "first_instant", "new_key"),
    [
        ("week", utc(29, 22, 59), utc(29, 23, 0), "2026-W49"),
        ("month", utc(30, 22, 59), utc(30, 23, 0), "2026-12"),
    ],
)
async def test_week_and_month_budgets_reset_at_berlin_boundaries(
    store: Store,
    clock: FixedClock,
    period: str,
    last_instant: datetime,
    first_instant: datetime,
    new_key: str,
) -> None:
    await grant(store, budgets=[BudgetSpec(period=period, max_count=1)])
    assert (await ask(store)).answer == "allowed"
    async with store.write() as tx:  # settled, so the use stays counted when the days pass
        await ledger.settle(tx, AGENCY, "AU1", actual_cents=0)
    clock.set(last_instant)
    assert (await ask(store)).answer == "denied"
    clock.set(first_instant)
    assert (await ask(store)).answer == "allowed"
    assert (await usage(store))[-1] == (1, new_key, 1, 0)


async def test_over_the_cap_needs_approval_and_the_operator_can_bless_it_once(store: Store) -> None:
    await grant(
        store, capability="spend.ads", per_action_cap_cents=500, budgets=[BudgetSpec(period="day", max_cents=10_000)]
    )
    first = await ask(store, capability="spend.ads", amount_cents=800)
    assert (first.answer, first.decision_id, first.status) == ("needs_approval", "D1", "none")
    assert "8.00 is above GR1's per-action cap of 5.00" in first.reason
    assert await usage(store) == []
    await approve(store, "D1")
    second = await ask(store, capability="spend.ads", amount_cents=800)
    assert (second.answer, second.decision_id, second.status) == ("allowed", "D1", "held")
    assert await usage(store) == [(1, "2026-11-23", 1, 800)]
    third = await ask(store, capability="spend.ads", amount_cents=800)
    assert (third.answer, third.decision_id) == ("needs_approval", "D2")
    async with store.read() as tx:
        assert await tx.scalar("SELECT status FROM decisions WHERE id = 1") == "redeemed"


async def test_grant_without_a_money_bound_allows_amount_zero_only(store: Store) -> None:
    await grant(store, budgets=[BudgetSpec(period="day", max_count=5)])
    assert (await ask(store, amount_cents=0)).answer == "allowed"
    paid = await ask(store, amount_cents=100)
    assert (paid.answer, paid.decision_id) == ("needs_approval", "D1")
    assert "sets no money limit, so it allows amount 0 only" in paid.reason


async def test_deny_pattern_wins_over_the_allow_list(store: Store) -> None:
    await grant(store, scope_allow=["acme.com", "*@beta.io"], scope_deny=["ceo@acme.com"])
    assert (await ask(store, target="jane@mail.acme.com")).answer == "allowed"
    assert (await ask(store, target="sam@beta.io")).answer == "allowed"
    ceo = await ask(store, target="CEO@acme.com")
    assert (ceo.answer, ceo.grant_id) == ("denied", "GR1")
    assert "'ceo@acme.com'" in ceo.reason
    outside = await ask(store, target="bob@other.com")
    assert outside.answer == "denied"
    assert "not one of them" in outside.reason


async def test_allow_list_denies_a_request_without_a_target(store: Store) -> None:
    await grant(store, scope_allow=["acme.com"])
    answer = await ask(store, target=None)
    assert answer.answer == "denied"
    assert "send the target" in answer.reason


async def test_no_grant_escalates_instead_of_allowing(store: Store) -> None:
    answer = await ask(store, capability="crm.delete", amount_cents=0, target="lead-42")
    assert (answer.answer, answer.decision_id, answer.grant_id, answer.status) == ("needs_approval", "D1", None, "none")
    assert "No grant lets Outbound (SDR) do crm.delete" in answer.reason
    async with store.read() as tx:
        decision = await tx.one("SELECT kind, request, status FROM decisions WHERE id = 1")
    assert (decision["kind"], decision["status"]) == ("escalation", "pending")
    assert json.loads(decision["request"]) == {
        "agency_id": 1,
        "role_id": 1,
        "capability": "crm.delete",
        "amount_cents": 0,
        "target": "lead-42",
        "task_id": None,
    }
    again = await ask(store, capability="crm.delete", amount_cents=0, target="lead-42")
    assert (again.authorization_id, again.decision_id) == ("AU2", "D1")  # the pending decision is reused


async def test_approved_escalation_without_a_grant_is_a_one_off(store: Store) -> None:
    await ask(store, capability="crm.delete", target="lead-42")
    await approve(store, "D1")
    allowed = await ask(store, capability="crm.delete", target="lead-42")
    assert (allowed.answer, allowed.decision_id, allowed.status) == ("allowed", "D1", "held")
    other = await ask(store, capability="crm.delete", target="lead-43")
    assert (other.answer, other.decision_id) == ("needs_approval", "D2")


async def test_approve_mode_redeems_an_approval_exactly_once(store: Store) -> None:
    await grant(store, mode="approve", budgets=[BudgetSpec(period="day", max_count=5)])
    first = await ask(store)
    assert (first.answer, first.decision_id) == ("needs_approval", "D1")
    assert "asks the operator first for every email.send" in first.reason
    await approve(store, "D1")
    second = await ask(store)
    assert (second.answer, second.decision_id, second.budgets_left) == ("allowed", "D1", ["day: 4 of 5 left"])
    assert (await ask(store)).decision_id == "D2"
    async with store.read() as tx:
        redeemed = await tx.all("SELECT id FROM decisions WHERE status = 'redeemed'")
        audit_row = await tx.one("SELECT detail FROM audit_log WHERE action = 'decision.redeem'")
    assert [r["id"] for r in redeemed] == [1]
    assert json.loads(audit_row["detail"]) == {"authorization_id": "AU2"}


async def test_notify_mode_allows_and_says_the_operator_will_be_told(store: Store) -> None:
    await grant(store, mode="notify")
    answer = await ask(store)
    assert (answer.answer, answer.notify) == ("allowed", True)


async def test_most_specific_grant_wins(store: Store) -> None:
    await grant(store, role=None, capability="email.*")
    await grant(store, role=None, capability="email.send")
    await grant(store, role="SDR", capability="email.*")
    await grant(store, role=None, capability="email.send")
    assert (await ask(store)).grant_id == "GR3"  # role-specific beats agency-wide
    assert (await ask(store, role="Researcher")).grant_id == "GR4"  # exact, then newest
    assert (await ask(store, role="Researcher", capability="email.draft")).grant_id == "GR1"
    assert (await ask(store, role=None, capability="email.draft")).grant_id == "GR1"


async def test_idempotent_replay_returns_the_first_answer_and_writes_nothing(store: Store) -> None:
    await grant(store, budgets=[BudgetSpec(period="day", max_count=5)])
    first = await ask(store, idempotency_key="send-1")
    before = await everything(store)
    replay = await ask(store, idempotency_key="send-1")
    assert replay == first
    assert await everything(store) == before


async def test_reusing_a_key_for_another_request_is_refused(store: Store) -> None:
    await grant(store)
    await ask(store, idempotency_key="send-1")

    async def call(tx: Tx) -> None:
        await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role="SDR",
            capability="email.send",
            amount_cents=0,
            target="other@acme.com",
            task_id=None,
            idempotency_key="send-1",
        )

    await fails_writing_nothing(store, InvalidInput, "different request.*new idempotency_key", call)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"capability": "email.*"}, InvalidInput, "wildcards belong in grants"),
        ({"amount_cents": -1}, InvalidInput, "non-negative"),
        ({"amount_cents": True}, InvalidInput, "whole cents"),
        ({"task_id": "T99"}, NotFound, "no task T99"),
        ({"agency": "Nope"}, NotFound, "no agency"),
    ],
)
async def test_malformed_requests_write_nothing(
    store: Store, fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    request: dict[str, Any] = {
        "agency": "Outbound",
        "role": "SDR",
        "capability": "email.send",
        "amount_cents": 0,
        "target": None,
        "task_id": None,
        "idempotency_key": None,
    }
    request.update(fields)

    async def call(tx: Tx) -> None:
        await ledger.authorize(tx, AGENCY, **request)

    await fails_writing_nothing(store, error, match, call)


async def test_concurrent_authorizations_never_overspend(store: Store) -> None:
    await grant(
        store, capability="spend.ads", per_action_cap_cents=300, budgets=[BudgetSpec(period="day", max_cents=1_000)]
    )
    answers: list[str] = []

    async def one() -> None:
        async with store.write() as tx:
            view = await ledger.authorize(
                tx,
                AGENCY,
                agency="Outbound",
                role="SDR",
                capability="spend.ads",
                amount_cents=300,
                target=None,
                task_id=None,
                idempotency_key=None,
            )
        answers.append(view.answer)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(one)
    assert (answers.count("allowed"), answers.count("denied")) == (3, 17)
    assert await usage(store) == [(1, "2026-11-23", 3, 900)]


# Each step: ("ask", amount) or ("settle", which held reservation, fraction kept) or ("release", which).
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("ask"), st.integers(0, 500)),
        st.tuples(st.just("settle"), st.integers(0, 9), st.integers(0, 100)),
        st.tuples(st.just("release"), st.integers(0, 9)),
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
async def test_budgets_are_never_overspent_and_always_add_up(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]]
) -> None:
    fresh = await Store.open(tmp_path_factory.mktemp("prop") / "w.db", FixedClock(utc(23, 8)))
    try:
        async with fresh.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone="Europe/Berlin")
            await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await grant(
            fresh,
            role=None,
            capability="spend.ads",
            per_action_cap_cents=500,
            budgets=[BudgetSpec(period="day", max_count=5, max_cents=1_000)],
        )
        for step in steps:
            await _apply(fresh, step)
        async with fresh.read() as tx:
            used = await tx.one("SELECT used_count, used_cents FROM budget_usage")
            held = await tx.one(
                "SELECT count(*), coalesce(sum(amount_cents), 0) FROM authorizations WHERE status = 'held'"
            )
            settled = await tx.one(
                "SELECT count(*), coalesce(sum(settled_cents), 0) FROM authorizations WHERE status = 'settled'"
            )
        count, cents = (0, 0) if used is None else tuple(used)
        assert count <= 5 and cents <= 1_000
        assert (count, cents) == (held[0] + settled[0], held[1] + settled[1])
    finally:
        await fresh.close()


async def _apply(store: Store, step: tuple[Any, ...]) -> None:
    async with store.write() as tx:
        held = [r["id"] for r in await tx.all("SELECT id FROM authorizations WHERE status = 'held' ORDER BY id")]
        if step[0] == "ask":
            await ledger.authorize(
                tx,
                AGENCY,
                agency="Outbound",
                role=None,
                capability="spend.ads",
                amount_cents=step[1],
                target=None,
                task_id=None,
                idempotency_key=None,
            )
        elif held:
            chosen = held[step[1] % len(held)]
            if step[0] == "release":
                await ledger.release(tx, AGENCY, f"AU{chosen}")
            else:
                amount = await tx.scalar("SELECT amount_cents FROM authorizations WHERE id = ?", (chosen,))
                await ledger.settle(tx, AGENCY, f"AU{chosen}", actual_cents=amount * step[2] // 100)


# --- settle, release, expire --------------------------------------------------------------------


async def test_settle_returns_the_difference_and_keeps_the_count(store: Store) -> None:
    await grant(
        store,
        capability="spend.ads",
        per_action_cap_cents=1_000,
        budgets=[BudgetSpec(period="day", max_count=5, max_cents=1_000)],
    )
    held = await ask(store, capability="spend.ads", amount_cents=600)
    async with store.write() as tx:
        settled = await ledger.settle(tx, AGENCY, held.authorization_id, actual_cents=250)
    assert (settled.status, settled.budgets_left) == ("settled", ["day: 4 of 5 left", "day: 7.50 of 10.00 left"])
    assert await usage(store) == [(1, "2026-11-23", 1, 250)]

    async with store.write() as tx:  # a retry with the same amount gets the same answer
        assert await ledger.settle(tx, AGENCY, held.authorization_id, actual_cents=250) == settled

    async def otherwise(tx: Tx) -> None:
        await ledger.settle(tx, AGENCY, "AU1", actual_cents=200)

    await fails_writing_nothing(store, Conflict, "AU1 is settled", otherwise)


async def test_settling_above_the_reservation_is_refused(store: Store) -> None:
    await grant(
        store, capability="spend.ads", per_action_cap_cents=1_000, budgets=[BudgetSpec(period="day", max_cents=1_000)]
    )
    await ask(store, capability="spend.ads", amount_cents=600)

    async def call(tx: Tx) -> None:
        await ledger.settle(tx, AGENCY, "AU1", actual_cents=601)

    await fails_writing_nothing(store, InvalidInput, "more than the 6.00 reserved", call)


async def test_settle_returns_money_to_the_period_it_was_drawn_from(store: Store, clock: FixedClock) -> None:
    await grant(
        store, capability="spend.ads", per_action_cap_cents=1_000, budgets=[BudgetSpec(period="day", max_cents=1_000)]
    )
    clock.set(utc(23, 22, 30))
    await ask(store, capability="spend.ads", amount_cents=600)
    clock.set(utc(23, 23, 30))  # already 24 November in Berlin
    await ask(store, capability="spend.ads", amount_cents=100)
    async with store.write() as tx:
        await ledger.settle(tx, AGENCY, "AU1", actual_cents=0)
    assert await usage(store) == [(1, "2026-11-23", 1, 0), (1, "2026-11-24", 1, 100)]


async def test_release_returns_amount_and_count(store: Store) -> None:
    await grant(
        store,
        capability="spend.ads",
        per_action_cap_cents=1_000,
        budgets=[BudgetSpec(period="day", max_count=5, max_cents=1_000)],
    )
    await ask(store, capability="spend.ads", amount_cents=600)
    async with store.write() as tx:
        released = await ledger.release(tx, AGENCY, "AU1")
    assert released.status == "released"
    assert await usage(store) == [(1, "2026-11-23", 0, 0)]

    async def settle_after(tx: Tx) -> None:
        await ledger.settle(tx, AGENCY, "AU1", actual_cents=0)

    await fails_writing_nothing(store, Conflict, "AU1 is released", settle_after)


async def test_an_unsettled_reservation_is_spent_in_full_when_its_hold_runs_out(
    store: Store, clock: FixedClock
) -> None:
    await grant(store, per_action_cap_cents=500, budgets=[BudgetSpec(period="week", max_count=2, max_cents=800)])
    await ask(store, amount_cents=400)
    clock.advance(timedelta(hours=23, minutes=59))
    async with store.write() as tx:
        assert await ledger.spend_expired(tx) == 0
    clock.advance(timedelta(minutes=1))
    async with store.write() as tx:
        assert await ledger.spend_expired(tx) == 1
        row = await tx.one("SELECT status, settled_cents FROM authorizations WHERE id = 1")
        assert row is not None and (row["status"], row["settled_cents"]) == ("expired", 400)
    assert await usage(store) == [(1, "2026-W48", 1, 400)]
    assert (await ask(store, amount_cents=500)).answer == "denied"  # 400 + 500 > 800: never refunded

    async def settle_late(tx: Tx) -> None:
        await ledger.settle(tx, AGENCY, "AU1", actual_cents=0)

    await fails_writing_nothing(store, Conflict, "AU1 is expired", settle_late)


async def test_never_settling_cannot_overspend_a_budget(store: Store, clock: FixedClock) -> None:
    """A 100.00 month budget once allowed 400.00 in four days when holds ran out unsettled."""
    await grant(store, per_action_cap_cents=10_000, budgets=[BudgetSpec(period="month", max_cents=10_000)])
    assert (await ask(store, amount_cents=10_000)).answer == "allowed"
    for _ in range(3):
        clock.advance(timedelta(hours=24))
        assert (await ask(store, amount_cents=10_000)).answer == "denied"
    async with store.read() as tx:
        assert await tx.scalar("SELECT status FROM authorizations WHERE id = 1") == "expired"
    assert await usage(store) == [(1, "2026-11", 1, 10_000)]


# --- reading ------------------------------------------------------------------------------------


async def test_list_grants_shows_current_period_usage(store: Store, clock: FixedClock) -> None:
    await grant(store, budgets=[BudgetSpec(period="day", max_count=5), BudgetSpec(period="month", max_count=50)])
    await ask(store)
    clock.set(utc(24, 9))
    async with store.read() as tx:
        (view,) = await grants.list_grants(tx, agency="outbound")
    assert [(b.period_key, b.used_count) for b in view.budgets] == [("2026-11-24", 0), ("2026-11", 1)]


async def test_authority_letter_reads_each_grant_as_a_sentence(store: Store) -> None:
    async with store.write() as tx:
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Book 20 meetings",
            key_results=[
                goals.KeyResultSpec(metric="meetings", baseline=0, target=20, direction="up", due_date="2026-12-31")
            ],
        )
    await grant(
        store,
        mode="notify",
        budgets=[BudgetSpec(period="day", max_count=50)],
        scope_allow=["acme.com"],
        scope_deny=["ceo@acme.com"],
        expires_on="2026-12-31",
        goal="G1",
        rationale="Warm leads\n# only `now`",
    )
    await grant(store, role=None, capability="spend.*", per_action_cap_cents=2_500, mode="approve")
    async with store.read() as tx:
        letter = await grants.authority_letter(tx)
    assert letter.startswith("# Delegation of authority — Test Co\n")
    assert "## Outbound" in letter
    assert (
        "- **GR1**: SDR may `email.send` on its own, telling you; at most 50 times a day, with no money "
        "(amount 0 only); only for `acme.com`; never for `ceo@acme.com`; until the end of 2026-12-31; "
        'toward G1 "Book 20 meetings"; because "Warm leads # only \'now\'".'
    ) in letter
    assert (
        "- **GR2**: Any role may `spend.*` asking you first each time; up to 25.00 per action; with no end date."
    ) in letter


async def test_authority_letter_without_grants_says_everything_asks_first(store: Store) -> None:
    async with store.read() as tx:
        assert "No authority is delegated yet" in await grants.authority_letter(tx)


# --- decisions bound to the exact request, and what silence means ---------------------------------


async def test_an_approval_for_one_request_cannot_authorize_a_different_one(store: Store) -> None:
    await grant(store, capability="spend.tools", mode="approve", per_action_cap_cents=10_000)
    asked = await ask(store, capability="spend.tools", amount_cents=500, target="enrich.io")
    assert asked.decision_id is not None
    await approve(store, asked.decision_id)
    other = await ask(store, capability="spend.tools", amount_cents=900, target="enrich.io")
    assert other.answer == "needs_approval" and other.decision_id != asked.decision_id
    same = await ask(store, capability="spend.tools", amount_cents=500, target="enrich.io")
    assert same.answer == "allowed" and same.decision_id == asked.decision_id


async def _ask_and_let_expire(store: Store, clock: FixedClock, **grant_fields: Any) -> AuthorizationView:
    await grant(store, capability="spend.tools", mode="approve", per_action_cap_cents=10_000, **grant_fields)
    asked = await ask(store, capability="spend.tools", amount_cents=500, target="enrich.io")
    clock.advance(timedelta(hours=73))
    async with store.write() as tx:
        await ledger.expire_decisions(tx)
    return asked


async def test_an_unanswered_decision_is_denied_when_it_expires_by_default(store: Store, clock: FixedClock) -> None:
    asked = await _ask_and_let_expire(store, clock)
    async with store.read() as tx:
        assert (await decisions.get_decision(tx, asked.decision_id or "")).status == "expired"
    again = await ask(store, capability="spend.tools", amount_cents=500, target="enrich.io")
    assert again.answer == "needs_approval" and again.decision_id != asked.decision_id


async def test_a_grant_may_say_an_unanswered_decision_goes_ahead(store: Store, clock: FixedClock) -> None:
    asked = await _ask_and_let_expire(store, clock, on_timeout="approve")
    async with store.read() as tx:
        assert (await decisions.get_decision(tx, asked.decision_id or "")).status == "approved"
    again = await ask(store, capability="spend.tools", amount_cents=500, target="enrich.io")
    assert again.answer == "allowed" and again.decision_id == asked.decision_id


async def test_silence_approves_only_what_the_grant_could_when_it_times_out(store: Store, clock: FixedClock) -> None:
    """A 500,000.00 request under a 20.00 cap was once allowed after 72 hours of silence."""
    await grant(store, capability="spend.tools", mode="approve", per_action_cap_cents=2_000, on_timeout="approve")
    asked = await ask(store, capability="spend.tools", amount_cents=50_000_000, target="enrich.io")
    clock.advance(timedelta(hours=73))
    async with store.write() as tx:
        await ledger.expire_decisions(tx)
        decision = await decisions.get_decision(tx, asked.decision_id or "")
    assert decision.status == "expired" and "Not approved by silence" in (decision.note or "")
    again = await ask(store, capability="spend.tools", amount_cents=50_000_000, target="enrich.io")
    assert again.answer == "needs_approval"


async def test_silence_reads_the_budget_as_it_is_when_the_decision_times_out(store: Store, clock: FixedClock) -> None:
    await grant(
        store,
        capability="spend.tools",
        mode="approve",
        per_action_cap_cents=2_000,
        budgets=[BudgetSpec(period="week", max_cents=2_000)],
        on_timeout="approve",
    )
    first = await ask(store, capability="spend.tools", amount_cents=1_500, target="enrich.io")
    second = await ask(store, capability="spend.tools", amount_cents=1_000, target="enrich.io")
    await approve(store, first.decision_id or "")
    assert (await ask(store, capability="spend.tools", amount_cents=1_500, target="enrich.io")).answer == "allowed"
    clock.advance(timedelta(hours=73))
    async with store.write() as tx:
        await ledger.expire_decisions(tx)
        decision = await decisions.get_decision(tx, second.decision_id or "")
    assert decision.status == "expired" and "week budget has no room" in (decision.note or "")


async def test_revoking_a_grant_cancels_its_pending_decisions_and_silence_cannot_revive_them(
    store: Store, clock: FixedClock
) -> None:
    await grant(store, capability="spend.tools", mode="approve", per_action_cap_cents=2_000, on_timeout="approve")
    asked = await ask(store, capability="spend.tools", amount_cents=500, target="enrich.io")
    async with store.write() as tx:
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR1")
        decision = await decisions.get_decision(tx, asked.decision_id or "")
    assert decision.status == "expired" and "GR1 was revoked" in (decision.note or "")
    clock.advance(timedelta(hours=73))
    again = await ask(store, capability="spend.tools", amount_cents=500, target="enrich.io")
    assert again.answer == "needs_approval" and again.decision_id != asked.decision_id
    assert f"{asked.decision_id}, was closed" in again.reason


async def test_an_agency_revoke_never_lets_a_broader_grant_take_over(store: Store) -> None:
    """With spend.* in auto and SDR's spend.ads in approve, revoking the narrow one once allowed the spend."""
    await grant(store, role=None, capability="spend.*", per_action_cap_cents=10_000)
    await grant(store, capability="spend.ads", mode="approve", per_action_cap_cents=10_000)
    assert (await ask(store, capability="spend.ads", amount_cents=100)).answer == "needs_approval"
    async with store.write() as tx:
        await grants.revoke_grant(tx, AGENCY, "GR2")
    answer = await ask(store, capability="spend.ads", amount_cents=100)
    assert (answer.answer, answer.grant_id) == ("needs_approval", "GR2")
    async with store.write() as tx:
        await grants.update_grant(tx, AGENCY, "GR1", expires_on="2026-11-23")  # narrowing: allowed for the agency

    async def hand_over(tx: Tx) -> None:
        await grants.revoke_grant(tx, AGENCY, "GR2", hand_over=True)

    console = r"chief-of-staff revoke GR2 --hand-over, or in the console \(open_console\)$"
    await fails_writing_nothing(store, OperatorActRefused, "operator decision.*" + console, hand_over)

    async def hand_over_in_chat(tx: Tx) -> None:
        await grants.revoke_grant(tx, CHAT, "GR2", hand_over=True)

    await fails_writing_nothing(store, OperatorActRefused, "cannot be done in chat.*" + console, hand_over_in_chat)
    async with store.write() as tx:
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR2", hand_over=True)
    assert (await ask(store, capability="spend.ads", amount_cents=100)).answer == "allowed"


async def test_an_expired_narrow_grant_keeps_its_space_from_a_broader_one(store: Store, clock: FixedClock) -> None:
    await grant(store, role=None, capability="spend.*", per_action_cap_cents=10_000)
    await grant(store, capability="spend.ads", mode="approve", per_action_cap_cents=10_000, expires_on="2026-11-23")
    clock.advance(timedelta(days=1))
    answer = await ask(store, capability="spend.ads", amount_cents=100)
    assert (answer.answer, answer.grant_id) == ("denied", "GR2")
    assert "--hand-over" in answer.reason


async def test_a_request_naming_a_task_is_judged_as_the_tasks_role(store: Store) -> None:
    await grant(store, role=None, capability="spend.*", per_action_cap_cents=10_000)
    await grant(store, capability="spend.ads", mode="approve", per_action_cap_cents=10_000)
    async with store.write() as tx:
        task = await inbox.add_task(tx, AGENCY, title="Run the ad test", agency="Outbound", role="SDR")
    answer = await ask(store, role=None, capability="spend.ads", amount_cents=100, task_id=task.id)
    assert (answer.answer, answer.grant_id) == ("needs_approval", "GR2")

    async def as_another_role(tx: Tx) -> None:
        await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role="Researcher",
            capability="spend.ads",
            amount_cents=100,
            target=None,
            task_id=task.id,
            idempotency_key=None,
        )

    await fails_writing_nothing(store, InvalidInput, "SDR's task", as_another_role)


async def test_a_retired_role_gets_nothing_allowed(store: Store) -> None:
    await grant(store)
    async with store.write() as tx:
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", status="retired")
    answer = await ask(store)
    assert answer.answer == "denied" and "retired" in answer.reason


async def test_a_chat_grant_cannot_shadow_a_verified_grants_denies(store: Store) -> None:
    """A newer chat grant of the same specificity once turned a denied .gov target into an allowed one."""
    await grant(store, capability="spend.ads", per_action_cap_cents=5_000, scope_deny=["*.gov"])
    await grant(
        store,
        CHAT,
        capability="spend.ads",
        per_action_cap_cents=5_000,
        budgets=[BudgetSpec(period="month", max_cents=5_000)],
    )
    denied = await ask(store, capability="spend.ads", amount_cents=100, target="ads.agency.gov")
    assert (denied.answer, denied.grant_id) == ("denied", "GR1")
    allowed = await ask(store, capability="spend.ads", amount_cents=100, target="ads.acme.com")
    assert allowed.answer == "allowed" and "GR2 and GR1" in allowed.reason


async def test_chat_cannot_make_silence_grant_authority(store: Store) -> None:
    spec = GrantSpec(
        agency="Outbound",
        role="SDR",
        capability="spend.tools",
        mode="approve",
        per_action_cap_cents=1_000,
        on_timeout="approve",
    )

    async def create(tx: Tx) -> None:
        await grants.create_grant(tx, CHAT, spec)

    await fails_writing_nothing(store, OperatorActRefused, "--on-timeout approve", create)


async def test_the_review_reports_reservations_that_were_never_settled(store: Store, clock: FixedClock) -> None:
    await grant(store, per_action_cap_cents=1_000, budgets=[BudgetSpec(period="month", max_cents=10_000)])
    await ask(store, amount_cents=700)
    await ask(store, amount_cents=300)
    clock.advance(timedelta(hours=25))
    async with store.write() as tx:
        await ledger.spend_expired(tx)
        found = [a for a in await anomalies.anomalies(tx) if a.kind == "unsettled_holds"]
    assert [(a.subject, a.evidence) for a in found] == [("A1", {"reservations": 2, "spent_cents": 1_000})]
    assert "counted as spent in full (10.00)" in found[0].message

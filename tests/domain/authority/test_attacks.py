"""Adversarial tests of the trust properties (README and DESIGN.md, "Trust").

Each test names the behaviour it demands and its docstring says the attack. Tests marked
`Once succeeded` are attacks a reviewer found working against the first version of issue 14's rules
(a property was violated) and that now hold; the others were tried and held from the start. All are
kept as regression tests.

Actors: the agency channel (`AGENCY`, stdio without confirm), the chat channel (`CHAT`,
confirm=true), the verified channel (`OPERATOR_CLI`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict, InvalidInput, OperatorActRefused
from chief_of_staff.domain import agencies, deciding, decisions
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec, GrantView
from chief_of_staff.domain.authority.ledger import AuthorizationView
from chief_of_staff.domain.authority.terms import BudgetSpec
from tests.conftest import START, db_rows
from tests.http_support import make_workspace
from tests.mcp.test_mcp_surface import call, connect

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
CHAT = Actor("operator", "chat")


def utc(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
async def store(store: Store) -> Store:
    """The workspace with agency Outbound and its roles SDR and Researcher."""
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


async def revoke(store: Store, grant_id: str, actor: Actor = AGENCY) -> None:
    async with store.write() as tx:
        await grants.revoke_grant(tx, actor, grant_id, reason="narrowing")


async def decision_status(store: Store, decision_id: str) -> str:
    async with store.read() as tx:
        return (await decisions.get_decision(tx, decision_id)).status


# --- property 1: agency acts are monotone ------------------------------------------------------


async def test_revoking_a_verified_grant_never_frees_a_chat_role_grant_from_its_denies(store: Store) -> None:
    """Once succeeded (property 1).

    Attack: the operator's verified agency-wide grant denies evil.com; a chat grant for the SDR
    role (no money, so it draws nothing) allows email.send. The verified deny binds the chat grant.
    The agency (no confirm) then revokes the verified grant: `_governing_grants` adds only
    *active* verified grants beside a chat-made governing grant, so the deny disappears and the
    request to evil.com becomes `allowed`. Revoking narrowed nothing; it widened.
    """
    verified = await grant(store, role=None, scope_deny=["evil.com"])
    await grant(store, CHAT, role="SDR")
    before = await ask(store, target="jane@evil.com")
    assert before.answer == "denied"

    await revoke(store, verified.id)

    after = await ask(store, target="jane@evil.com")
    assert after.answer != "allowed", after.reason


async def test_revoking_a_verified_wildcard_grant_keeps_its_approve_mode_over_a_chat_grant(store: Store) -> None:
    """Once succeeded (property 1).

    Attack: verified `email.*` in mode approve (every send goes to the operator); a chat grant
    `email.send` in mode auto for SDR. The verified mode wins, so requests need approval. The
    agency revokes the verified wildcard grant and the chat grant alone answers `allowed`.
    """
    verified = await grant(store, role=None, capability="email.*", mode="approve")
    await grant(store, CHAT, capability="email.send", mode="auto")
    assert (await ask(store)).answer == "needs_approval"

    await revoke(store, verified.id)

    after = await ask(store, idempotency_key="again")
    assert after.answer != "allowed", after.reason


async def test_revoking_a_chat_grant_over_a_verified_grant_only_narrows(store: Store) -> None:
    """Held: revoking the chat grant (the governing one) sends requests to the operator; the verified
    grant's deny still applies beside it."""
    await grant(store, role=None, scope_deny=["evil.com"])
    chat = await grant(store, CHAT, role="SDR")
    assert (await ask(store)).answer == "allowed"
    await revoke(store, chat.id)
    assert (await ask(store)).answer == "needs_approval"
    assert (await ask(store, target="jane@evil.com")).answer == "denied"


async def test_narrowing_a_verified_grant_below_a_chat_grant_keeps_binding(store: Store) -> None:
    """Held: the agency lowering the verified grant's expiry to today makes it refuse at the end of the day,
    and the chat grant beside it does not take over."""
    verified = await grant(store, role=None)
    await grant(store, CHAT, role="SDR")
    async with store.write() as tx:
        await grants.update_grant(tx, AGENCY, verified.id, expires_on="2026-11-23")
    assert (await ask(store)).answer == "allowed"


# --- property 2: chat is bounded in total --------------------------------------------------------


async def test_chat_grant_cannot_take_over_the_space_a_revoked_verified_grant_holds(store: Store) -> None:
    """Once succeeded (property 2: chat never hands a revoked grant's space over; a verified grant's denies bind).

    Attack: the operator's verified SDR grant denies evil.com. The agency revokes it, so its
    space goes to the operator (needs_approval) until a *verified* hand-over. Then chat creates
    a fresh SDR email.send grant with no money (it draws 0 from the allowance). Being newer it
    governs, and the revoked verified grant is not consulted (only active verified grants are),
    so the send to evil.com is `allowed`: chat has handed the revoked space over and dropped
    the operator's deny pattern, at no cost.
    """
    verified = await grant(store, scope_deny=["evil.com"])
    await revoke(store, verified.id)
    assert (await ask(store, target="jane@evil.com")).answer == "denied"

    await grant(store, CHAT)

    after = await ask(store, target="jane@evil.com", idempotency_key="after-chat")
    assert after.answer != "allowed", after.reason


async def test_an_injected_model_alone_cannot_drop_the_operators_deny_pattern_over_stdio(tmp_path: Path) -> None:
    """Once succeeded (properties 1 and 2, end to end over the MCP server in-process).

    Attack, every step by a prompt-injected model: the operator's verified Outbound grant for
    the SDR's email.send denies gmail.com. The model revokes it (no confirm: the agency channel,
    "only narrows"), then re-grants the same thing with confirm=true and no money (a count budget
    only, so nothing is drawn from the chat allowance), leaving out the deny list. The new chat
    grant governs and the revoked verified grant is not consulted: jane@gmail.com is `allowed`.
    """
    db = tmp_path / "w.db"
    await make_workspace(db, FixedClock(START))
    (sdr_send,) = db_rows(
        db,
        "SELECT g.id FROM grants g JOIN roles r ON r.id = g.role_id "
        "WHERE r.name = 'SDR' AND g.capability = 'email.send'",
    )
    send = {"agency": "Outbound", "role": "SDR", "capability": "email.send", "target": "jane@gmail.com"}
    async with connect(db, "legacy") as client:
        assert (await call(client, "authorize", **send))["answer"] == "denied"
        await call(client, "revoke", grant_id=f"GR{sdr_send[0]}", reason="cleanup")
        await call(
            client,
            "grant",
            agency="Outbound",
            role="SDR",
            capability="email.send",
            budgets=[{"period": "day", "max_count": 50}],
            confirm=True,
        )
        after = await call(client, "authorize", **send)
    assert after["answer"] != "allowed", after["reason"]


async def test_chat_daily_grant_cannot_let_more_than_the_allowance_out_in_one_window(
    store: Store, clock: FixedClock
) -> None:
    """Once succeeded (property 2: chat's money exposure within the 7-day window <= 100.00).

    Attack: chat creates a grant with a per-action cap of 100.00 and a *day* budget of 100.00.
    `money_exposure` measures the longest budget period (a day), so it draws 100.00, exactly the
    allowance, and is accepted. Over the next 7 days the grant lets 700.00 out.
    """
    try:
        await grant(
            store,
            CHAT,
            capability="spend.ads",
            per_action_cap_cents=10_000,
            budgets=[BudgetSpec(period="day", max_cents=10_000)],
        )
    except OperatorActRefused:
        return  # refusing the grant is one correct answer
    allowed = 0
    for day in range(7):
        clock.set(utc(23 + day, 9))
        view = await ask(store, capability="spend.ads", amount_cents=10_000, target=None)
        if view.answer == "allowed":
            allowed += view.amount_cents
    assert allowed <= 10_000


async def test_chat_monthly_grant_cannot_let_twice_the_allowance_out_across_a_month_boundary(
    store: Store, clock: FixedClock
) -> None:
    """Once succeeded (property 2), the Outbound blueprint's own shape.

    Attack: chat creates a grant of 100.00 a month (cap 100.00), drawing the whole 100.00
    allowance. The budget is a calendar month, the allowance a rolling 7 days: 100.00 on
    30 November and 100.00 on 1 December both go out inside one window, 200.00.
    """
    try:
        await grant(
            store,
            CHAT,
            capability="spend.tools",
            per_action_cap_cents=10_000,
            budgets=[BudgetSpec(period="month", max_cents=10_000)],
        )
    except OperatorActRefused as refusal:  # the grant's exposure over any 7 days (two months) is 200.00
        assert "adds 200.00 of money exposure" in str(refusal)
        return
    clock.set(utc(30, 12))
    first = await ask(store, capability="spend.tools", amount_cents=10_000, target=None)
    clock.set(utc(1, 12, month=12))
    second = await ask(store, capability="spend.tools", amount_cents=10_000, target=None)
    allowed = sum(v.amount_cents for v in (first, second) if v.answer == "allowed")
    assert allowed <= 10_000


async def test_chat_cannot_reactivate_a_retired_role_to_bring_back_its_grants(store: Store) -> None:
    """Once succeeded (property 2: chat adds at most the allowance in money exposure).

    Attack: the operator's verified grant lets the Researcher spend 1,000.00 a month. The
    operator retires the role, so nothing is allowed for it. Chat (confirm=true) calls
    set_role status=active: no allowance is drawn and no chat refusal applies, and the
    1,000.00-a-month grant is live again, ten times the chat allowance.
    """
    await grant(
        store,
        role="Researcher",
        capability="spend.tools",
        per_action_cap_cents=50_000,
        budgets=[BudgetSpec(period="month", max_cents=100_000)],
    )
    async with store.write() as tx:
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Researcher", status="retired")
    retired = await ask(store, role="Researcher", capability="spend.tools", amount_cents=50_000, target=None)
    assert retired.answer == "denied"

    try:
        async with store.write() as tx:
            await agencies.set_role(tx, CHAT, agency="Outbound", name="Researcher", status="active")
    except OperatorActRefused:
        return
    after = await ask(
        store, role="Researcher", capability="spend.tools", amount_cents=50_000, target=None, idempotency_key="k2"
    )
    assert after.answer != "allowed", after.reason


async def test_chat_cannot_reactivate_a_retired_agency_to_bring_back_its_grants(store: Store) -> None:
    """Once succeeded (property 2), the agency-level twin of the role attack: update_agency status=active
    in chat revives a verified grant of 1,000.00 a month without drawing on the allowance."""
    await grant(
        store,
        role=None,
        capability="spend.tools",
        per_action_cap_cents=50_000,
        budgets=[BudgetSpec(period="month", max_cents=100_000)],
    )
    async with store.write() as tx:
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", status="retired")
    try:
        async with store.write() as tx:
            await agencies.update_agency(tx, CHAT, "Outbound", status="active")
    except OperatorActRefused:
        return
    after = await ask(store, role=None, capability="spend.tools", amount_cents=50_000, target=None)
    assert after.answer != "allowed", after.reason


async def test_chat_role_grant_beside_a_verified_agency_wide_grant_obeys_its_mode(store: Store) -> None:
    """Held: a chat grant for SDR in auto cannot override a verified agency-wide grant in approve."""
    await grant(store, role=None, mode="approve")
    await grant(store, CHAT, role="SDR", mode="auto")
    assert (await ask(store)).answer == "needs_approval"


async def test_chat_exact_grant_beside_a_verified_wildcard_grant_obeys_its_budget(store: Store) -> None:
    """Held: a chat exact grant cannot escape a verified wildcard grant's count budget."""
    await grant(store, role=None, capability="email.*", budgets=[BudgetSpec(period="day", max_count=1)])
    await grant(store, CHAT, capability="email.send")
    assert (await ask(store)).answer == "allowed"
    assert (await ask(store)).answer == "denied"


async def test_chat_cannot_restore_a_version_that_let_silence_approve(store: Store) -> None:
    """Held: the agency narrows on_timeout to deny; chat restoring version 1 (approve) is refused."""
    made = await grant(store, mode="approve", on_timeout="approve")
    async with store.write() as tx:
        await grants.update_grant(tx, AGENCY, made.id, on_timeout="deny")
    with pytest.raises(OperatorActRefused):
        async with store.write() as tx:
            await grants.restore_version(tx, CHAT, made.id, 1)


# --- property 3: silence approves only what the grant could ----------------------------------------


async def test_silence_does_not_approve_once_the_grant_no_longer_lets_silence_approve(
    store: Store, clock: FixedClock
) -> None:
    """Once succeeded (property 3).

    Attack (or just an operator changing their mind): the verified grant says on_timeout=approve,
    and a decision is opened under it. The grant is then narrowed to on_timeout=deny (any actor
    may). The decision kept the timeout policy it was opened with, and `_timeout_refusal` never
    reads the grant's on_timeout, so the decision is still approved by silence.
    """
    made = await grant(store, mode="approve", on_timeout="approve")
    asked = await ask(store)
    assert asked.answer == "needs_approval"
    async with store.write() as tx:
        await grants.update_grant(tx, AGENCY, made.id, on_timeout="deny")

    clock.advance(timedelta(hours=73))
    async with store.write() as tx:
        await ledger.expire_decisions(tx)

    assert asked.decision_id is not None
    assert await decision_status(store, asked.decision_id) != "approved"


async def test_silence_judges_the_grant_as_it_was_when_the_decision_timed_out(store: Store, clock: FixedClock) -> None:
    """Once succeeded (property 3: "read as the grant is when the decision times out").

    Attack: a decision for 50.00 is opened under a grant in mode approve with on_timeout=approve
    and a 300.00 monthly budget; the month is then filled (three approved 100.00 requests). When
    the decision times out (26 November) the grant has no room, so silence must not approve it.
    But timeouts are swept lazily (brief, the CLI), at a time the agency chooses: it waits for
    December, calls brief, and the sweep judges the grant against December's empty budget.
    """
    await grant(
        store,
        capability="spend.ads",
        mode="approve",
        budgets=[BudgetSpec(period="month", max_cents=30_000)],
        on_timeout="approve",
    )
    small = await ask(store, capability="spend.ads", amount_cents=5_000, target=None)
    assert small.answer == "needs_approval"
    for key in ("a", "b", "c"):
        asked = await ask(store, capability="spend.ads", amount_cents=10_000, target=None, idempotency_key=f"{key}1")
        assert asked.decision_id is not None
        async with store.write() as tx:
            await deciding.decide(tx, OPERATOR_CLI, asked.decision_id, approve=True)
        used = await ask(store, capability="spend.ads", amount_cents=10_000, target=None, idempotency_key=f"{key}2")
        assert used.answer == "allowed"

    clock.set(utc(1, 9, month=12))  # the decision timed out on 26 November, with the month full
    async with store.write() as tx:
        await ledger.expire_decisions(tx)

    assert small.decision_id is not None
    assert await decision_status(store, small.decision_id) != "approved"


async def test_revoking_cancels_the_pending_decision_and_silence_cannot_approve_a_new_one(
    store: Store, clock: FixedClock
) -> None:
    """Held: revoke cancels the pending decision; asking again under the revoked grant opens one that
    silence refuses (the grant is not active)."""
    made = await grant(store, mode="approve", on_timeout="approve")
    first = await ask(store)
    await revoke(store, made.id)
    assert first.decision_id is not None
    assert await decision_status(store, first.decision_id) == "expired"
    second = await ask(store, idempotency_key="again")
    assert second.answer == "needs_approval"
    clock.advance(timedelta(hours=73))
    async with store.write() as tx:
        await ledger.expire_decisions(tx)
    assert second.decision_id is not None
    assert await decision_status(store, second.decision_id) == "expired"


# --- property 4: reservations are spent unless released -----------------------------------------


async def test_a_hold_that_ran_out_is_spent_even_past_one_sweep_batch(store: Store, clock: FixedClock) -> None:
    """Once succeeded (property 4).

    Attack: the agency keeps 101 reservations unsettled until their 24-hour holds run out, then
    releases the newest. `release` sweeps only the 100 oldest expired holds (`_EXPIRE_BATCH`)
    and `_held` checks the status, not the expiry, so the 101st is still `held` and its money
    goes back to the budget: a hold that ran out was refunded.
    """
    await grant(
        store,
        capability="spend.ads",
        per_action_cap_cents=100,
        budgets=[BudgetSpec(period="month", max_cents=1_000_000)],
    )
    last = None
    for n in range(101):
        clock.advance(timedelta(seconds=1))
        last = await ask(store, capability="spend.ads", amount_cents=100, target=None, idempotency_key=f"k{n}")
        assert last.answer == "allowed"
    assert last is not None
    clock.advance(timedelta(hours=25))

    with pytest.raises(Conflict):
        async with store.write() as tx:
            await ledger.release(tx, AGENCY, last.authorization_id)


async def test_a_hold_that_ran_out_cannot_be_settled_below_its_amount_past_one_sweep_batch(
    store: Store, clock: FixedClock
) -> None:
    """Once succeeded (property 4): the same batch gap through settle(actual_cents=0), which returns the
    whole amount of a hold that ran out."""
    await grant(
        store,
        capability="spend.ads",
        per_action_cap_cents=100,
        budgets=[BudgetSpec(period="month", max_cents=1_000_000)],
    )
    last = None
    for n in range(101):
        clock.advance(timedelta(seconds=1))
        last = await ask(store, capability="spend.ads", amount_cents=100, target=None, idempotency_key=f"k{n}")
    assert last is not None
    clock.advance(timedelta(hours=25))

    with pytest.raises(Conflict):
        async with store.write() as tx:
            await ledger.settle(tx, AGENCY, last.authorization_id, actual_cents=0)


async def test_a_hold_that_ran_out_cannot_be_released(store: Store, clock: FixedClock) -> None:
    """Held: with one expired hold, release sweeps it first and refuses."""
    await grant(
        store, capability="spend.ads", per_action_cap_cents=100, budgets=[BudgetSpec(period="month", max_cents=1000)]
    )
    held = await ask(store, capability="spend.ads", amount_cents=100, target=None)
    clock.advance(timedelta(hours=25))
    with pytest.raises(Conflict):
        async with store.write() as tx:
            await ledger.release(tx, AGENCY, held.authorization_id)


# --- property 5: targets are canonical ------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["https:/evil.com", "HTTPS:/evil.com/pricing", "https:/\\evil.com/x", "http:/evil.com"]
)
async def test_a_url_with_one_slash_never_steps_around_a_deny_pattern(store: Store, target: str) -> None:
    """Once succeeded (property 5).

    Attack: `https:/evil.com` (one slash) is what every browser (WHATWG URL) opens as
    https://evil.com/, but canonical_target keeps it as plain text (its part before the first
    '/' has no dot), so no host is read out of it and the deny pattern `evil.com` does not match:
    the request is `allowed`. It should be refused as read two ways, or read as evil.com.
    """
    await grant(store, capability="web.post", scope_deny=["evil.com"])
    try:
        view = await ask(store, capability="web.post", target=target)
    except InvalidInput:
        return
    assert view.answer != "allowed", view.reason


@pytest.mark.parametrize(
    "target",
    [
        "x@evil.com?cc=a@acme.com",
        "https://acme.com@evil.com/",
        "https://evil.com\\@acme.com/",
        "evil.com:8080/x",
        "https:evil.com",
        "jane@evil.com.",
        "Jane <jane@EVIL.com>",
        "ｊａｎｅ@ｅｖｉｌ.ｃｏｍ",
    ],
)
async def test_respelled_targets_never_step_around_a_deny_pattern(store: Store, target: str) -> None:
    """Held: userinfo, several '@', ports without scheme, trailing dots, display names and fullwidth are
    refused or denied."""
    await grant(store, capability="web.post", scope_deny=["evil.com"])
    try:
        view = await ask(store, capability="web.post", target=target)
    except ChiefOfStaffError:
        return
    assert view.answer == "denied", view.reason

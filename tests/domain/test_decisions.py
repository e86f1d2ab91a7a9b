"""Decisions: bound to the exact request, decided once by the operator, expiring, redeemed at most once."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.domain import agencies, deciding, decisions

pytestmark = pytest.mark.anyio

CHAT = Actor("operator", "chat")


async def _silence_may(tx: Tx, decision: Any) -> None:
    """A grant that could allow every request: these tests are about the decision's own states."""
    return None


AGENCY = Actor("Outbound", "agency")
REQUEST = {"capability": "spend.ads", "amount_cents": 5_000, "target": "linkedin.com"}


@pytest.fixture
async def agency_id(store: Store) -> int:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Writes and sends")
        row = await agencies.resolve_agency(tx, "Outbound")
    return int(row["id"])


async def _open(
    store: Store, agency_id: int, request: dict[str, Any] | None = None, **overrides: Any
) -> decisions.DecisionView:
    fields: dict[str, Any] = {
        "kind": "escalation",
        "title": "Spend 50.00 on LinkedIn ads",
        "request": request or REQUEST,
        "agency_id": agency_id,
        "role_id": None,
        "amount_cents": 5_000,
    }
    fields.update(overrides)
    async with store.write() as tx:
        return await decisions.open_decision(tx, AGENCY, **fields)


async def _snapshot(tx: Tx) -> tuple[int, list[tuple[Any, ...]]]:
    audit_rows = await tx.scalar("SELECT count(*) FROM audit_log")
    rows = await tx.all("SELECT * FROM decisions ORDER BY id")
    return int(audit_rows), [tuple(r) for r in rows]


async def _audit_rows(store: Store, action: str) -> list[Any]:
    async with store.read() as tx:
        return await tx.all("SELECT * FROM audit_log WHERE action = ? ORDER BY id", (action,))


async def _decide_fails(
    store: Store, error: type[Exception], actor: Actor, decision: str, approve: bool, match: str
) -> None:
    """Assert a decide call fails with `error` and writes nothing."""
    async with store.read() as tx:
        before = await _snapshot(tx)
    with pytest.raises(error, match=match):
        async with store.write() as tx:
            await deciding.decide(tx, actor, decision, approve=approve)
    async with store.read() as tx:
        assert await _snapshot(tx) == before


# --- opening ----------------------------------------------------------------------------------


async def test_open_decision_is_pending_for_72_hours(store: Store, agency_id: int) -> None:
    view = await _open(store, agency_id)
    assert (view.id, view.kind, view.status, view.agency, view.amount_cents) == (
        "D1",
        "escalation",
        "pending",
        "Outbound",
        5_000,
    )
    assert view.created_at == "2026-11-23T08:00:00.000000Z"
    assert view.expires_at == "2026-11-26T08:00:00.000000Z"
    assert "chief-of-staff approve D1" in view.next_step
    assert len(await _audit_rows(store, "decision.open")) == 1


async def test_opening_the_same_request_again_returns_the_pending_decision(store: Store, agency_id: int) -> None:
    first = await _open(store, agency_id)
    reordered = dict(reversed(list(REQUEST.items())))
    second = await _open(store, agency_id, reordered, title="A different title")
    assert second.id == first.id
    assert second.title == first.title
    assert len(await _audit_rows(store, "decision.open")) == 1


async def test_a_different_request_opens_a_new_decision(store: Store, agency_id: int) -> None:
    await _open(store, agency_id)
    other = await _open(store, agency_id, {**REQUEST, "amount_cents": 5_001})
    assert other.id == "D2"


async def test_a_request_whose_decision_expired_opens_a_new_one(
    store: Store, clock: FixedClock, agency_id: int
) -> None:
    await _open(store, agency_id)
    clock.advance(timedelta(hours=72))
    assert (await _open(store, agency_id)).id == "D2"


def test_request_hash_is_sha256_of_canonical_json() -> None:
    digest = decisions.request_hash({"b": [2, "x"], "a": 1})
    assert digest == hashlib.sha256(b'{"a":1,"b":[2,"x"]}').hexdigest()


def test_request_hash_refuses_values_that_are_not_json() -> None:
    with pytest.raises(InvalidInput, match="request"):
        decisions.request_hash({"amount": float("nan")})


async def test_overlong_title_from_the_server_is_capped_not_refused(store: Store, agency_id: int) -> None:
    view = await _open(store, agency_id, title="x" * 500, details="y" * 5000)
    assert len(view.title) == decisions.MAX_TITLE
    assert len(view.details) == decisions.MAX_DETAILS


async def test_open_decision_refuses_a_negative_amount_and_writes_nothing(store: Store, agency_id: int) -> None:
    with pytest.raises(InvalidInput, match="amount_cents"):
        await _open(store, agency_id, amount_cents=-1)
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM decisions") == 0


# --- expiry -----------------------------------------------------------------------------------


async def test_expire_due_denies_by_default(store: Store, clock: FixedClock, agency_id: int) -> None:
    await _open(store, agency_id)
    clock.advance(timedelta(hours=72))
    async with store.write() as tx:
        assert await decisions.expire_due(tx, judge=_silence_may) == 1
        assert await decisions.find_redeemable(tx, decisions.request_hash(REQUEST)) is None
    async with store.read() as tx:
        assert [v.status for v in await decisions.list_decisions(tx, status="expired")] == ["expired"]
    [row] = await _audit_rows(store, "decision.expire")
    assert (row["actor"], row["channel"], row["subject"]) == ("system", "system", "D1")


async def test_expire_due_approves_when_the_timeout_policy_says_so(
    store: Store, clock: FixedClock, agency_id: int
) -> None:
    await _open(store, agency_id, timeout_policy="approve")
    clock.advance(timedelta(hours=73))
    async with store.write() as tx:
        assert await decisions.expire_due(tx, judge=_silence_may) == 1
        redeemable = await decisions.find_redeemable(tx, decisions.request_hash(REQUEST))
    assert redeemable is not None and redeemable["status"] == "approved"
    assert redeemable["decided_channel"] == "system"


async def test_expire_due_leaves_live_decisions_and_writes_one_row_per_decision(
    store: Store, clock: FixedClock, agency_id: int
) -> None:
    await _open(store, agency_id, {"n": 1})
    await _open(store, agency_id, {"n": 2})
    await _open(store, agency_id, {"n": 3}, ttl=timedelta(hours=100))
    clock.advance(timedelta(hours=80))
    async with store.write() as tx:
        assert await decisions.expire_due(tx, judge=_silence_may) == 2
        assert await decisions.expire_due(tx, judge=_silence_may) == 0
        assert await decisions.pending_count(tx) == 1
    assert [r["subject"] for r in await _audit_rows(store, "decision.expire")] == ["D1", "D2"]


async def test_expire_due_reads_the_pending_index(store: Store) -> None:
    async with store.read() as tx:
        plan = await tx.all(
            "EXPLAIN QUERY PLAN SELECT id, timeout_policy FROM decisions "
            "WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at",
            (tx.now_text,),
        )
    assert any("decisions_pending" in row["detail"] for row in plan)


# --- deciding ---------------------------------------------------------------------------------


async def test_operator_approves_from_the_command_line(store: Store, agency_id: int) -> None:
    await _open(store, agency_id)
    async with store.write() as tx:
        view = await deciding.decide(tx, OPERATOR_CLI, "D1", approve=True, note="Go ahead")
    assert (view.status, view.decided_channel, view.note) == ("approved", "verified", "Go ahead")
    assert "Approved for one use" in view.next_step
    [row] = await _audit_rows(store, "decision.approve")
    assert (row["channel"], row["subject"]) == ("verified", "D1")


async def test_operator_denies(store: Store, agency_id: int) -> None:
    await _open(store, agency_id)
    async with store.write() as tx:
        view = await deciding.decide(tx, OPERATOR_CLI, "d1", approve=False)
        assert await decisions.find_redeemable(tx, decisions.request_hash(REQUEST)) is None
    assert view.status == "denied"
    assert len(await _audit_rows(store, "decision.deny")) == 1


async def test_deciding_twice_is_a_conflict_and_writes_nothing(store: Store, agency_id: int) -> None:
    await _open(store, agency_id)
    async with store.write() as tx:
        await deciding.decide(tx, OPERATOR_CLI, "D1", approve=True)
    await _decide_fails(store, Conflict, OPERATOR_CLI, "D1", False, "already approved via verified")


async def test_deciding_after_expiry_is_a_conflict(store: Store, clock: FixedClock, agency_id: int) -> None:
    await _open(store, agency_id)
    await _open(store, agency_id, {"n": 2})
    clock.advance(timedelta(hours=72))
    await _decide_fails(store, Conflict, OPERATOR_CLI, "D1", True, "D1 expired")
    async with store.write() as tx:
        await decisions.expire_due(tx, judge=_silence_may)
    await _decide_fails(store, Conflict, OPERATOR_CLI, "D2", True, "D2 expired")


async def test_the_agency_cannot_decide(store: Store, agency_id: int) -> None:
    await _open(store, agency_id)
    await _decide_fails(store, OperatorActRefused, AGENCY, "D1", True, "chief-of-staff approve D1")
    await _decide_fails(store, OperatorActRefused, AGENCY, "D1", False, "chief-of-staff deny D1")


async def test_chat_approval_above_the_ceiling_is_refused(store: Store, agency_id: int) -> None:
    await _open(store, agency_id, amount_cents=10_001)
    await _decide_fails(
        store, OperatorActRefused, CHAT, "D1", True, r"adds 100\.01 .*100\.00 of the 100\.00 chat allowance"
    )


async def test_chat_approval_at_the_ceiling_is_accepted_and_recorded_as_chat(store: Store, agency_id: int) -> None:
    await _open(store, agency_id, amount_cents=10_000)
    async with store.write() as tx:
        view = await deciding.decide(tx, CHAT, "D1", approve=True)
    assert (view.status, view.decided_channel) == ("approved", "chat")
    [row] = await _audit_rows(store, "decision.approve")
    assert row["channel"] == "chat"


async def test_chat_cannot_approve_a_proposal_but_can_deny_it(store: Store, agency_id: int) -> None:
    async with store.write() as tx:
        await deciding.request_decision(
            tx, AGENCY, agency="Outbound", role=None, kind="proposal", title="Raise the daily email cap to 80"
        )
    await _decide_fails(store, OperatorActRefused, CHAT, "D1", True, "proposals widen authority")
    async with store.write() as tx:
        assert (await deciding.decide(tx, CHAT, "D1", approve=False)).status == "denied"


async def test_unknown_decision_is_not_found_and_a_bad_id_is_invalid(store: Store) -> None:
    await _decide_fails(store, NotFound, OPERATOR_CLI, "D99", True, "no decision D99")
    await _decide_fails(store, InvalidInput, OPERATOR_CLI, "T3", True, "not a decision id")
    async with store.read() as tx:
        with pytest.raises(NotFound, match="D42"):
            await decisions.get_decision(tx, "D42")


# --- redeeming --------------------------------------------------------------------------------


async def test_an_approval_is_redeemed_at_most_once(store: Store, agency_id: int) -> None:
    await _open(store, agency_id)
    digest = decisions.request_hash(REQUEST)
    async with store.write() as tx:
        assert await decisions.find_redeemable(tx, digest) is None
        await deciding.decide(tx, OPERATOR_CLI, "D1", approve=True)
        row = await decisions.find_redeemable(tx, digest)
        assert row is not None
        await decisions.redeem(tx, AGENCY, row["id"], authorization_id=12)
        assert await decisions.find_redeemable(tx, digest) is None
    with pytest.raises(Conflict, match="at most once"):
        async with store.write() as tx:
            await decisions.redeem(tx, AGENCY, 1, authorization_id=13)
    [audit_row] = await _audit_rows(store, "decision.redeem")
    assert '"authorization_id":"AU12"' in audit_row["detail"]


async def test_a_pending_decision_cannot_be_redeemed(store: Store, agency_id: int) -> None:
    await _open(store, agency_id)
    with pytest.raises(Conflict):
        async with store.write() as tx:
            await decisions.redeem(tx, AGENCY, 1, authorization_id=1)
    assert await _audit_rows(store, "decision.redeem") == []


async def test_an_approval_given_late_stays_redeemable_for_a_day(
    store: Store, clock: FixedClock, agency_id: int
) -> None:
    await _open(store, agency_id)
    clock.advance(timedelta(hours=71))
    async with store.write() as tx:
        await deciding.decide(tx, OPERATOR_CLI, "D1", approve=True)
    clock.advance(timedelta(hours=23))
    async with store.read() as tx:
        assert await decisions.find_redeemable(tx, decisions.request_hash(REQUEST)) is not None
    clock.advance(timedelta(hours=1))
    async with store.read() as tx:
        assert await decisions.find_redeemable(tx, decisions.request_hash(REQUEST)) is None


# --- asking and listing -----------------------------------------------------------------------


async def test_the_agency_asks_a_question_by_agency_and_role_name(store: Store, agency_id: int) -> None:
    async with store.write() as tx:
        view = await deciding.request_decision(
            tx, AGENCY, agency="outbound", role="sdr", kind="question", title="Which region first?", details="EU or US"
        )
    assert (view.kind, view.agency, view.role, view.details) == ("question", "Outbound", "SDR", "EU or US")
    assert "Which region" not in view.next_step


async def test_request_decision_refuses_bad_input_and_writes_nothing(store: Store, agency_id: int) -> None:
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"kind": "escalation"}, InvalidInput, "kind"),
        ({"title": "x" * 201}, InvalidInput, "keep it to 200"),
        ({"title": "  "}, InvalidInput, "title: must not be empty; send a short line saying what needs deciding"),
        ({"details": "y" * 4001}, InvalidInput, "details"),
        ({"amount_cents": True}, InvalidInput, "amount_cents"),
        ({"agency": "Content"}, NotFound, "no agency 'Content'"),
        ({"role": "Closer"}, NotFound, "no role 'Closer'"),
    ]
    for override, error, match in cases:
        fields: dict[str, Any] = {"agency": "Outbound", "role": None, "kind": "proposal", "title": "Hire"}
        fields.update(override)
        with pytest.raises(error, match=match):
            async with store.write() as tx:
                await deciding.request_decision(tx, AGENCY, **fields)
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM decisions") == 0


async def test_pending_lists_most_urgent_first_and_closed_newest_first(store: Store, agency_id: int) -> None:
    await _open(store, agency_id, {"n": 1}, ttl=timedelta(hours=48))
    await _open(store, agency_id, {"n": 2}, ttl=timedelta(hours=24))
    await _open(store, agency_id, {"n": 3})
    await _open(store, agency_id, {"n": 4})
    async with store.write() as tx:
        await deciding.decide(tx, OPERATOR_CLI, "D3", approve=True)
        await deciding.decide(tx, OPERATOR_CLI, "D4", approve=False)
    async with store.read() as tx:
        assert [v.id for v in await decisions.list_decisions(tx)] == ["D2", "D1"]
        assert [v.id for v in await decisions.list_decisions(tx, status="all")] == ["D4", "D3", "D2", "D1"]
        assert [v.id for v in await decisions.list_decisions(tx, status="denied")] == ["D4"]
        assert [v.id for v in await decisions.list_decisions(tx, status="all", limit=1)] == ["D4"]
        assert await decisions.pending_count(tx) == 2


async def test_list_decisions_refuses_an_unknown_status_or_limit(store: Store) -> None:
    async with store.read() as tx:
        with pytest.raises(InvalidInput, match="pending, approved, denied, expired, redeemed, all"):
            await decisions.list_decisions(tx, status="open")
        with pytest.raises(InvalidInput, match="limit"):
            await decisions.list_decisions(tx, limit=101)


async def test_a_pending_decision_past_expiry_reads_as_expired_before_the_sweep(
    store: Store, clock: FixedClock, agency_id: int
) -> None:
    await _open(store, agency_id)
    clock.advance(timedelta(hours=72))
    async with store.read() as tx:
        assert await decisions.list_decisions(tx) == []
        [view] = await decisions.list_decisions(tx, status="expired")
    assert (view.id, view.status) == ("D1", "expired")
    assert view.next_step.startswith("Closed unanswered")

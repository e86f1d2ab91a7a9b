"""check ("can I?"): the answer authorize would give, with nothing reserved, opened or written."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import agencies, deciding
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.ledger import AuthorizationView, CheckView
from chief_of_staff.mcp.server import build_server

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
TABLES = ("grants", "grant_budgets", "grant_versions", "budget_usage", "authorizations", "decisions", "audit_log")
REQUEST: dict[str, Any] = {
    "agency": "Outbound",
    "role": "SDR",
    "capability": "spend.ads",
    "amount_cents": 2000,
    "target": "linkedin.com",
    "task_id": None,
}


@pytest.fixture
async def store(store: Store) -> Store:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Writes and sends")
    return store


async def grant(store: Store, **fields: Any) -> None:
    spec: dict[str, Any] = {
        "agency": "Outbound",
        "capability": "spend.ads",
        "per_action_cap_cents": 5000,
        "budgets": [{"period": "day", "max_count": 2, "max_cents": 6000}],
    }
    spec.update(fields)
    async with store.write() as tx:
        await grants.create_grant(tx, OPERATOR_CLI, GrantSpec(**spec))


async def everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    async with store.read() as tx:
        return {t: [tuple(r) for r in await tx.all(f"SELECT * FROM {t}")] for t in TABLES}


async def check(store: Store, **fields: Any) -> CheckView:
    """check, asserting it wrote nothing at all."""
    before = await everything(store)
    async with store.write() as tx:
        view = await ledger.check(tx, AGENCY, **{**REQUEST, **fields})
    assert await everything(store) == before
    return view


async def authorize(store: Store, **fields: Any) -> AuthorizationView:
    async with store.write() as tx:
        return await ledger.authorize(tx, AGENCY, **{**REQUEST, **fields}, idempotency_key=None)


async def agrees(store: Store, **fields: Any) -> tuple[CheckView, AuthorizationView]:
    """check, then the same request through authorize: the same answer under the same grant."""
    said = await check(store, **fields)
    done = await authorize(store, **fields)
    assert (said.answer, said.grant_id) == (done.answer, done.grant_id)
    return said, done


async def test_check_allows_what_authorize_allows_and_reserves_nothing(store: Store) -> None:
    await grant(store)
    said, done = await agrees(store)
    assert said.answer == "allowed" and said.grant_id == "GR1" and not said.would_open_decision
    assert said.reason == "Allowed by GR1; authorize would reserve 20.00."
    assert said.budgets_left == done.budgets_left == ["day: 1 of 2 left", "day: 40.00 of 60.00 left"]


async def test_check_denies_a_target_the_grant_never_allows(store: Store) -> None:
    await grant(store, scope_deny=["linkedin.com"])
    said, _ = await agrees(store)
    assert said.answer == "denied" and "never allows targets matching 'linkedin.com'" in said.reason


async def test_check_denies_when_the_budget_is_used_up(store: Store) -> None:
    await grant(store)
    await authorize(store)
    await authorize(store)
    said, done = await agrees(store, amount_cents=100)
    assert said.answer == "denied" and said.reason == done.reason
    assert "allows 2 spend.ads per day; 2 used today" in said.reason


async def test_check_denies_under_an_expired_grant(store: Store, clock: FixedClock) -> None:
    await grant(store, expires_on="2026-11-23")
    clock.set(datetime(2026, 11, 23, 23, 0, tzinfo=UTC))  # midnight in Berlin: the grant's last day is over
    said, _ = await agrees(store)
    assert said.answer == "denied" and "expired" in said.reason


async def test_check_says_a_new_decision_would_open_then_that_one_is_pending(store: Store) -> None:
    await grant(store, mode="approve")
    said, done = await agrees(store)
    assert said.answer == "needs_approval" and said.would_open_decision
    assert (
        said.reason == "GR1 asks the operator first for every spend.ads. "
        "authorize would ask the operator in a new decision."
    )
    again = await check(store)
    assert again.answer == "needs_approval" and not again.would_open_decision
    assert again.reason.endswith(f"The operator is already asked in {done.decision_id}.")


async def test_check_without_any_grant_needs_approval(store: Store) -> None:
    said, _ = await agrees(store)
    assert said.answer == "needs_approval" and said.grant_id is None and said.would_open_decision


async def test_check_does_not_use_up_an_approval(store: Store) -> None:
    asked = await authorize(store)  # no grant covers it: the operator is asked
    assert asked.decision_id is not None
    async with store.write() as tx:
        await deciding.decide(tx, OPERATOR_CLI, asked.decision_id, approve=True)
    said, done = await agrees(store)
    assert said.answer == "allowed"
    assert (
        said.reason == f"Allowed with the operator's one-use approval in {asked.decision_id}; "
        "authorize would reserve 20.00."
    )
    assert done.decision_id == asked.decision_id


async def test_check_agrees_that_lapsed_reservations_stay_spent(store: Store, clock: FixedClock) -> None:
    await grant(store, budgets=[{"period": "week", "max_count": 2}])
    await authorize(store)
    await authorize(store)
    clock.advance(ledger.RESERVATION_TTL + timedelta(minutes=1))  # both reservations lapse, unswept
    said, _ = await agrees(store, amount_cents=100)
    assert said.answer == "denied"  # a hold that runs out is spent, never refunded


async def test_check_keeps_the_callers_own_writes_and_leaves_the_unit_usable(store: Store) -> None:
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="spend.ads", per_action_cap_cents=5000)
        )
        with pytest.raises(InvalidInput, match="capability"):
            await ledger.check(tx, AGENCY, **{**REQUEST, "capability": "spend.*"})
        said = await ledger.check(tx, AGENCY, **REQUEST)
        done = await ledger.authorize(tx, AGENCY, **REQUEST, idempotency_key=None)
    assert said.answer == done.answer == "allowed"
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM authorizations") == 1


async def test_a_refused_check_writes_nothing(store: Store) -> None:
    before = await everything(store)
    with pytest.raises(InvalidInput, match="amount_cents"):
        async with store.write() as tx:
            await ledger.check(tx, AGENCY, **{**REQUEST, "amount_cents": -1})
    assert await everything(store) == before


async def test_the_check_tool_answers_over_mcp_and_writes_nothing(store: Store, clock: FixedClock) -> None:
    await grant(store)
    before = await everything(store)
    server = build_server(Settings(db_path=store.path, clock=clock))
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("check", REQUEST)
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["answer"] == "allowed"
    assert result.structured_content["would_open_decision"] is False
    assert await everything(store) == before


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_check_tool_leaves_the_file_untouched_even_when_its_steps_wrote(
    store: Store, clock: FixedClock, mode: str
) -> None:
    # Found by tools/fuzz.py: the undone steps (a decision it would open) still reached the WAL at COMMIT.
    await grant(store, capability="email.send")
    observer = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        server = build_server(Settings(db_path=store.path, clock=clock), deliveries=False)
        async with Client(server, mode=mode) as client:
            version = observer.execute("PRAGMA data_version").fetchone()[0]  # after the server's start-up writes
            for capability in ("spend.ads", "email.send"):  # needs a new decision; allowed, reserving budget
                result = await client.call_tool("check", {**REQUEST, "capability": capability})
                assert not result.is_error and result.structured_content is not None
            assert observer.execute("PRAGMA data_version").fetchone()[0] == version
    finally:
        observer.close()

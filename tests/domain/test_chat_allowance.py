"""Trust, property 2: chat is bounded in total, not per act.

Random sequences of chat acts (grants, money widenings, approvals) with time passing between them:
the money exposure chat added within any window of the allowance's length never exceeds the
allowance, each accepted act drew at least the exposure it added, and a refused act wrote nothing.
HYPOTHESIS_PROFILE=thorough runs 2,000 examples instead of 60.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock, format_ts
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError
from chief_of_staff.domain import agencies, deciding, trust, workspace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec, money_exposure
from tests.conftest import START, TIMEZONE

CHAT = Actor("operator", "chat")
AGENCY = Actor("agency:Outbound", "agency")
ALLOWANCE = 10_000
WINDOW = timedelta(days=7)

budgets = st.lists(
    st.tuples(
        st.sampled_from(["day", "week", "month"]),
        st.sampled_from([None, 1, 3, 50]),
        st.sampled_from([None, 500, 3_000, 10_000, 50_000]),
    )
    .filter(lambda b: b[1] is not None or b[2] is not None)
    .map(lambda b: BudgetSpec(period=b[0], max_count=b[1], max_cents=b[2])),
    max_size=2,
    unique_by=lambda b: b.period,
)
acts = st.one_of(
    st.tuples(st.just("grant"), st.sampled_from([None, 0, 500, 2_000, 9_000]), budgets),
    st.tuples(st.just("raise"), st.integers(1, 6), st.sampled_from([600, 2_500, 12_000])),
    st.tuples(st.just("approve"), st.sampled_from([0, 100, 2_500, 7_000, 10_001]), st.just(None)),
    st.tuples(st.just("wait"), st.sampled_from([1, 12, 60, 24 * 6, 24 * 8]), st.just(None)),
)


async def _open(folder: Path, clock: FixedClock) -> Store:
    store = await Store.open(folder / "w.db", clock)
    async with store.write() as tx:
        await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone=TIMEZONE)
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
    return store


async def _act(store: Store, act: tuple[Any, Any, Any], serial: int) -> int | None:
    """Make one chat act; the exposure it adds when accepted, None when refused."""
    kind, first, second = act
    async with store.write() as tx:
        if kind == "grant":
            spec = GrantSpec(
                agency="Outbound", capability=f"spend.c{serial}", per_action_cap_cents=first, budgets=second
            )
            await grants.create_grant(tx, CHAT, spec)
            exposure = money_exposure(spec, 7)
            assert exposure is not None
            return exposure
        if kind == "raise":
            views = await grants.list_grants(tx)
            if not views:
                return 0
            view = views[first % len(views)]
            before = money_exposure(view, 7)
            after_view = await grants.update_grant(tx, CHAT, view.id, per_action_cap_cents=second)
            after = money_exposure(after_view, 7)
            assert after is not None
            return max(after - (before or 0), 0) if before is not None else 0
        asked = await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role=None,
            capability="travel.book",
            amount_cents=first,
            target=None,
            task_id=None,
            idempotency_key=None,
        )
        assert asked.decision_id is not None
        await deciding.decide(tx, CHAT, asked.decision_id, approve=True)
        return first


async def _tables(store: Store) -> list[Any]:
    async with store.read() as tx:
        return [
            await tx.all(f"SELECT * FROM {table}") for table in ("grants", "grant_budgets", "chat_draws", "decisions")
        ]


async def _draws(store: Store) -> list[tuple[datetime, int]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT at, cents FROM chat_draws ORDER BY id")
    return [(datetime.fromisoformat(r["at"].replace("Z", "+00:00")), r["cents"]) for r in rows]


async def _run(folder: Path, steps: list[tuple[Any, Any, Any]]) -> None:
    clock = FixedClock(START)
    store = await _open(folder, clock)
    added: list[tuple[datetime, int]] = []
    try:
        for serial, act in enumerate(steps):
            if act[0] == "wait":
                clock.advance(timedelta(hours=act[1]))
                continue
            before = await _tables(store)
            drawn_before = sum(c for _, c in await _draws(store))
            try:
                exposure = await _act(store, act, serial)
            except ChiefOfStaffError:
                assert await _tables(store) == before, f"a refused {act[0]} wrote something"
                continue
            drawn = sum(c for _, c in await _draws(store)) - drawn_before
            assert exposure is not None and drawn >= exposure, f"{act[0]} added {exposure} but drew {drawn}"
            added.append((clock.now(), exposure))
        draws = await _draws(store)
        for end, _ in draws:
            within = sum(c for at, c in draws if end - WINDOW < at <= end)
            assert within <= ALLOWANCE, f"{within} drawn in the 7 days to {format_ts(end)}"
        for end, _ in added:
            assert sum(c for at, c in added if end - WINDOW < at <= end) <= ALLOWANCE
        async with store.read() as tx:
            left = await trust.chat_allowance(tx)
        assert 0 <= left.left_cents <= ALLOWANCE
    finally:
        await store.close()


THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"


@settings(
    max_examples=2_000 if THOROUGH else 60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(acts, min_size=1, max_size=12))
def test_chat_never_adds_more_exposure_in_a_window_than_its_allowance(steps: list[tuple[Any, Any, Any]]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cos-chat-"))
    try:
        asyncio.run(_run(folder, steps))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

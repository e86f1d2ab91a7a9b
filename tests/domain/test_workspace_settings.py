"""The operator's settings are the operator's: chat may only make its own allowance stricter, the agency
may change nothing, and every change is one audit row."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput, OperatorActRefused
from chief_of_staff.domain import workspace
from chief_of_staff.domain.workspace import Workspace

pytestmark = pytest.mark.anyio

CHAT = Actor("operator", "chat")
AGENCY = Actor("agency:Outbound", "agency")


async def change(store: Store, actor: Actor, **fields: object) -> workspace.SettingsChange:
    async with store.write() as tx:
        return await workspace.update_settings(tx, actor, **fields)  # type: ignore[arg-type]


async def settings(store: Store) -> Workspace:
    async with store.read() as tx:
        return await workspace.get(tx)


async def audit_rows(store: Store, action: str) -> list[tuple[str, dict[str, object]]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT channel, detail FROM audit_log WHERE action = ? ORDER BY id", (action,))
    return [(row["channel"], json.loads(row["detail"])) for row in rows]


async def test_the_verified_channel_changes_anything_with_one_audit_row(store: Store) -> None:
    done = await change(
        store,
        OPERATOR_CLI,
        name="Acme",
        timezone="America/New_York",
        currency="eur",
        chat_allowance_cents=50_000,
        chat_window_days=1,
    )
    assert (done.workspace.name, done.workspace.timezone, done.workspace.currency) == (
        "Acme",
        "America/New_York",
        "EUR",
    )
    assert (done.workspace.chat_allowance_cents, done.workspace.chat_window_days) == (50_000, 1)
    assert await audit_rows(store, "workspace.update") == [
        (
            "verified",
            {
                "name": ["Test Co", "Acme"],
                "timezone": ["Europe/Berlin", "America/New_York"],
                "currency": ["USD", "EUR"],
                "chat_allowance_cents": [10_000, 50_000],
                "chat_window_days": [7, 1],
            },
        )
    ]


async def test_a_new_timezone_says_budget_periods_follow_it_from_now(store: Store) -> None:
    done = await change(store, OPERATOR_CLI, timezone="Asia/Tokyo")
    assert done.notes and done.notes[0].startswith("Budget periods (day, week, month) follow Asia/Tokyo from now on")


async def test_the_same_values_change_nothing_and_write_no_row(store: Store) -> None:
    done = await change(store, OPERATOR_CLI, name="Test Co", chat_window_days=7)
    assert done.changed == {}
    assert await audit_rows(store, "workspace.update") == []


@pytest.mark.parametrize(
    "stricter",
    [{"chat_allowance_cents": 5_000}, {"chat_window_days": 14}, {"chat_allowance_cents": 0, "chat_window_days": 1}],
)
async def test_chat_may_make_the_allowance_stricter(store: Store, stricter: dict[str, int]) -> None:
    await change(store, CHAT, **stricter)
    assert await audit_rows(store, "workspace.update") != []


@pytest.mark.parametrize(
    "wider",
    [
        {"chat_allowance_cents": 10_001},
        {"chat_window_days": 6},
        {"chat_allowance_cents": 5_000, "chat_window_days": 1},  # 50.00 a day is 350.00 a week
        {"chat_allowance_cents": 20_000, "chat_window_days": 14},  # 200.00 may all go in one day
    ],
)
async def test_chat_may_not_widen_the_allowance(store: Store, wider: dict[str, int]) -> None:
    with pytest.raises(OperatorActRefused, match=r"cannot be done in chat.*chief-of-staff workspace set"):
        await change(store, CHAT, **wider)
    assert (await settings(store)).chat_allowance_cents == 10_000
    assert await audit_rows(store, "workspace.update") == []


async def test_chat_may_rename_but_not_move_the_timezone_or_currency(store: Store) -> None:
    await change(store, CHAT, name="Renamed in chat")
    for moved in ({"timezone": "Asia/Tokyo"}, {"currency": "JPY"}):
        with pytest.raises(OperatorActRefused, match="time zone or currency cannot be done in chat"):
            await change(store, CHAT, **moved)
    assert (await settings(store)).timezone == "Europe/Berlin"


@pytest.mark.parametrize("anything", [{"name": "Mine now"}, {"chat_allowance_cents": 0}, {"chat_window_days": 30}])
async def test_the_agency_changes_nothing(store: Store, anything: dict[str, object]) -> None:
    with pytest.raises(OperatorActRefused, match="is an operator decision"):
        await change(store, AGENCY, **anything)
    assert await audit_rows(store, "workspace.update") == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"currency": "dollars"}, "three-letter currency code"),
        ({"name": "  "}, "1 to 80 visible characters"),
        ({"chat_allowance_cents": -1}, "whole cents from 0"),
        ({"chat_allowance_cents": True}, "whole cents from 0"),
        ({"chat_window_days": 0}, "from 1 to 90"),
        ({"chat_window_days": 91}, "from 1 to 90"),
    ],
)
async def test_bad_settings_are_refused(store: Store, bad: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        await change(store, OPERATOR_CLI, **bad)


def _most_in(span_days: int, cents: int, window_days: int) -> int:
    """The most a rolling allowance lets through in `span_days`: a full allowance in each window it touches."""
    return cents * math.ceil(span_days / window_days)


@given(
    before=st.tuples(st.integers(0, 100_000), st.integers(1, 90)),
    after=st.tuples(st.integers(0, 100_000), st.integers(1, 90)),
    span=st.integers(1, 400),
)
def test_what_chat_may_set_never_lets_more_through_over_any_span(
    before: tuple[int, int], after: tuple[int, int], span: int
) -> None:
    old = Workspace(
        name="W", timezone="UTC", currency="USD", chat_allowance_cents=before[0], chat_window_days=before[1]
    )
    if not workspace.widens_allowance(old, *after):
        assert _most_in(span, *after) <= _most_in(span, *before)

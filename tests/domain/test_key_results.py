"""Key results a model gets right: named by metric, cumulative or level, and counted once per retry."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import InvalidInput, NotFound
from chief_of_staff.domain import agencies, goals, inbox, outcomes, workspace
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.domain.goals import KeyResultSpec
from tests.conftest import START, TIMEZONE

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
DUE = "2027-02-21"
TABLES = ("audit_log", "outcomes", "outcome_metrics", "key_result_days", "agency_days", "tasks")


def _spec(metric: str, **fields: Any) -> KeyResultSpec:
    return KeyResultSpec(
        **{"metric": metric, "baseline": 0, "target": 100, "direction": "up", "due_date": DUE, **fields}
    )


async def _outbound(tx: Tx) -> None:
    """Outbound (A1) with goal G1: KR1 "emails sent" (cumulative, 0 -> 1500) and KR2 "subscribers"
    (level, 120 -> 300); Inbox (A2) with goal G2: KR3, also named "emails sent"."""
    await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
    await agencies.create_agency(tx, OPERATOR_CLI, name="Inbox", purpose="Answer mail")
    await goals.create_goal(
        tx,
        OPERATOR_CLI,
        agency="Outbound",
        title="Pipeline",
        key_results=[
            _spec("emails sent", target=1500),
            _spec("subscribers", baseline=120, target=300, kind="level"),
        ],
    )
    await goals.create_goal(tx, OPERATOR_CLI, agency="Inbox", title="Zero", key_results=[_spec("emails sent")])


async def _log(tx: Tx, **fields: Any) -> outcomes.OutcomeView:
    return await outcomes.log_outcome(
        tx, AGENCY, **{"agency": "Outbound", "summary": "Sent a batch", "result": "success", **fields}
    )


async def _currents(store: Store) -> dict[str, float]:
    async with store.read() as tx:
        rows = await tx.all("SELECT id, current FROM key_results ORDER BY id")
    return {f"KR{row['id']}": row["current"] for row in rows}


async def _snapshot(store: Store) -> dict[str, Any]:
    async with store.read() as tx:
        counts = {t: await tx.scalar(f"SELECT count(*) FROM {t}") for t in TABLES}
    return {**counts, "currents": await _currents(store)}


# --- names ---------------------------------------------------------------------------------------


async def test_a_key_result_resolves_by_its_metric_name_within_the_agency(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        assert (await goals.resolve_key_result(tx, "Emails  SENT", agency_id=1))["id"] == 1
        assert (await goals.resolve_key_result(tx, "emails sent", agency_id=2))["id"] == 3
        assert (await goals.resolve_key_result(tx, "ｓｕｂｓｃｒｉｂｅｒｓ", agency_id=1))["id"] == 2  # fullwidth: NFKC
        assert (await goals.resolve_key_result(tx, "kr 2", agency_id=2))["id"] == 2  # an id is an id anywhere


async def test_a_name_two_agencies_use_is_ambiguous_without_an_agency_and_lists_the_ids(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        with pytest.raises(InvalidInput, match=r"'emails sent' names KR1 \(goal G1\) and KR3 \(goal G2\); send one"):
            await goals.resolve_key_result(tx, "emails sent")
        with pytest.raises(NotFound, match="no key result of agency Outbound is named 'meetings'; send an id like KR3"):
            await goals.resolve_key_result(tx, "meetings", agency_id=1)


async def test_a_name_shared_in_existing_data_is_an_error_listing_the_ids(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        await goals.create_goal(tx, OPERATOR_CLI, agency="Outbound", title="Later", key_results=[_spec("demos")])
        # Data from before names were unique within an agency: two active goals with the same metric.
        await tx.run("UPDATE key_results SET metric = 'Emails Sent' WHERE id = 4")
    before = await _snapshot(store)
    with pytest.raises(InvalidInput, match=r"metrics\[0\].key_result: 'emails sent' names KR1 \(goal G1\) and KR4"):
        async with store.write() as tx:
            await _log(tx, metrics=[{"key_result": "emails sent", "delta": 3}])
    assert await _snapshot(store) == before


async def test_a_closed_goals_metric_name_is_free_again_and_active_goals_win(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        await goals.adjust_goal(tx, OPERATOR_CLI, "G1", status="achieved")
        view = await goals.create_goal(
            tx, OPERATOR_CLI, agency="Outbound", title="Next quarter", key_results=[_spec("Emails sent")]
        )
        assert [kr.id for kr in view.key_results] == ["KR4"]
        assert (await goals.resolve_key_result(tx, "emails sent", agency_id=1))["id"] == 4
        # Only closed goals carry the name: it still resolves, and log_outcome says the goal is closed.
        assert (await goals.resolve_key_result(tx, "subscribers", agency_id=1))["id"] == 2


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("EMAILS sent", r"key_results\[0\].metric: 'EMAILS sent' is already KR1 of goal G1 in this agency"),
        ("ｅｍａｉｌｓ sent", r"key_results\[0\].metric: 'emails sent' is already KR1"),
        ("KR 7", r"key_results\[0\].metric: 'KR 7' reads like a key result id"),
        ("42", r"key_results\[0\].metric: '42' reads like a key result id"),
    ],
)
async def test_a_new_key_result_may_not_take_a_name_the_agency_uses_or_an_ids_form(
    store: Store, metric: str, message: str
) -> None:
    async with store.write() as tx:
        await _outbound(tx)
    before = await _snapshot(store)
    with pytest.raises(InvalidInput, match=message):
        async with store.write() as tx:
            await goals.create_goal(tx, OPERATOR_CLI, agency="Outbound", title="More", key_results=[_spec(metric)])
    assert await _snapshot(store) == before


async def test_adjust_goal_refuses_to_add_a_name_another_active_goal_uses(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        await goals.create_goal(tx, OPERATOR_CLI, agency="Outbound", title="Later", key_results=[_spec("demos")])
    change = {"key_result": "Subscribers", "baseline": 0, "target": 9, "direction": "up", "due_date": DUE}
    with pytest.raises(InvalidInput, match=r"key_results\[0\].key_result: 'Subscribers' is already KR2 of goal G1"):
        async with store.write() as tx:
            await goals.adjust_goal(tx, OPERATOR_CLI, "G3", key_results=[change])  # type: ignore[list-item]


async def test_reopening_a_goal_whose_metric_an_active_goal_took_is_refused(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        await goals.adjust_goal(tx, OPERATOR_CLI, "G1", status="dropped")
        await goals.create_goal(tx, OPERATOR_CLI, agency="Outbound", title="Again", key_results=[_spec("emails sent")])
    with pytest.raises(
        InvalidInput, match=r"status: reopening would give two active key results the name 'emails sent'"
    ):
        async with store.write() as tx:
            await goals.adjust_goal(tx, OPERATOR_CLI, "G1", status="active")


async def test_tasks_name_their_key_result_by_metric(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        task = await inbox.add_task(tx, AGENCY, title="Write to 20 leads", agency="Outbound", key_result="Emails Sent")
        by_goal = await inbox.add_task(tx, AGENCY, title="Grow the list", goal="G1", key_result="subscribers")
    assert (task.key_result, task.goal, by_goal.key_result, by_goal.agency) == ("KR1", "G1", "KR2", "Outbound")


# --- cumulative and level ------------------------------------------------------------------------


async def test_a_level_key_result_takes_the_latest_observation_as_its_current_value(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        first = await _log(tx, metrics=[{"key_result": "subscribers", "value": 180}, {"key_result": "KR1", "delta": 3}])
        await _log(tx, metrics=[{"key_result": "KR2", "value": 175.5}, {"key_result": "emails sent", "delta": 4}])
        view = await goals.get_goal(tx, "G1")
    emails, subscribers = view.key_results
    assert [(m.key_result, m.delta, m.value) for m in first.metrics] == [("KR1", 3.0, None), ("KR2", 60.0, 180.0)]
    assert (emails.kind, emails.current, subscribers.kind, subscribers.current) == ("cumulative", 7.0, "level", 175.5)
    async with store.read() as tx:
        stored = [
            tuple(r) for r in await tx.all("SELECT key_result_id, delta, value FROM outcome_metrics ORDER BY 1, 2")
        ]
        day = await tx.all("SELECT key_result_id, delta_sum, outcomes FROM key_result_days ORDER BY 1")
    # The log keeps the observation and the change it made: the rollups sum changes for both kinds.
    assert stored == [(1, 3.0, None), (1, 4.0, None), (2, -4.5, 175.5), (2, 60.0, 180.0)]
    assert [tuple(r) for r in day] == [(1, 7.0, 2), (2, 55.5, 2)]


async def test_a_level_key_results_pace_and_forecast_read_its_observations(store: Store, clock: FixedClock) -> None:
    async with store.write() as tx:
        await _outbound(tx)
    # 120 at the start, 150 on day 19; then 170 and 180 within the last fortnight (days 21 to 34).
    for days, value in ((19, 150), (28, 170), (34, 180)):
        clock.set(START + timedelta(days=days))
        async with store.write() as tx:
            await _log(tx, metrics=[{"key_result": "subscribers", "value": value}])
    async with store.read() as tx:
        subscribers = (await goals.get_goal(tx, "G1")).key_results[1]
    # 34 of 90 days: the line expects 120 + 180 * 34/90 = 188; 180 is 60 of the 180 to go.
    assert (subscribers.current, subscribers.progress, subscribers.expected_now) == (180.0, 0.333, 188.0)
    # Its trend runs between observations: from 150 (day 19, the last one before the 14-day window) to
    # 180 (day 34), 2 a day over the 15 days between them; the 56 days left lead to 292, short of 300,
    # so a key result on the line is at risk (pace.standing_of).
    assert (subscribers.rate_per_day, subscribers.forecast_at_due) == (2.0, 292.0)
    assert (subscribers.pace, subscribers.at_risk) == ("at_risk", True)
    assert (
        subscribers.risk_reason
        == "forecast 292 of 300 by 2027-02-21 at the trend of its observations since 2026-12-12 (2/day)"
    )


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        (
            {"key_result": "subscribers", "delta": 60},
            InvalidInput,
            r"metrics\[0\].delta: KR2 \(subscribers\) is a level",
        ),
        ({"key_result": "subscribers"}, InvalidInput, r"metrics\[0\].value: KR2 \(subscribers\) is a level key result"),
        ({"key_result": "KR2", "delta": 1, "value": 2}, InvalidInput, r"metrics\[0\].delta: .* send value"),
        ({"key_result": "emails sent", "value": 30}, InvalidInput, r"metrics\[0\].value: KR1 \(emails sent\) is a cum"),
        ({"key_result": "emails sent"}, InvalidInput, r"metrics\[0\].delta: KR1 \(emails sent\) is a cumulative"),
        ({"key_result": "KR3", "delta": 1}, InvalidInput, r"metrics\[0\].key_result: KR3 belongs to another agency"),
        ({"key_result": "subscribers", "value": float("nan")}, InvalidInput, r"metrics\[0\].value: .*finite"),
        ({"key_result": "KR2", "value": 1e13}, InvalidInput, r"metrics\[0\].value: .*too large"),
    ],
)
async def test_the_wrong_field_for_a_key_results_kind_is_refused_and_writes_nothing(
    store: Store, item: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with store.write() as tx:
        await _outbound(tx)
    before = await _snapshot(store)
    with pytest.raises(error, match=message):
        async with store.write() as tx:
            await _log(tx, metrics=[item])
    assert await _snapshot(store) == before


async def test_a_level_delta_refusal_says_to_send_value(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
    with pytest.raises(InvalidInput) as refused:
        async with store.write() as tx:
            await _log(tx, metrics=[{"key_result": "subscribers", "delta": 180}])
    assert "send value, its value now (e.g. value: 180), not a change. Nothing was logged." in str(refused.value)


async def test_adjust_goal_adds_a_level_key_result_and_an_existing_one_keeps_its_kind(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        added = {"key_result": "cost per post", "baseline": 40, "target": 25, "direction": "down", "due_date": DUE}
        view = await goals.adjust_goal(tx, OPERATOR_CLI, "G1", key_results=[{**added, "kind": "level"}])  # type: ignore[list-item]
    assert [(kr.metric, kr.kind) for kr in view.key_results][-1] == ("cost per post", "level")
    with pytest.raises(InvalidInput, match=r"key_results\[0\].kind: an existing key result keeps its kind"):
        async with store.write() as tx:
            await goals.adjust_goal(tx, OPERATOR_CLI, "G1", key_results=[{"key_result": "KR1", "kind": "level"}])  # type: ignore[list-item]


async def test_the_inbox_blueprint_measures_the_median_response_time_as_a_level(store: Store) -> None:
    async with store.write() as tx:
        await loader.apply_blueprint(tx, OPERATOR_CLI, "inbox_triage")
        kinds = {kr.metric: kr.kind for goal in await goals.list_goals(tx) for kr in goal.key_results}
    assert kinds == {"messages triaged": "cumulative", "median first-response hours": "level"}


# --- retries -------------------------------------------------------------------------------------


async def test_a_retried_log_outcome_with_the_same_key_counts_once(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
    item = [{"key_result": "emails sent", "delta": 3}]
    async with store.write() as tx:
        first = await _log(tx, metrics=item, idempotency_key="batch-1")
    after_first = await _snapshot(store)
    async with store.write() as tx:
        # The same request, with the key result named by id this time: still the same request.
        again = await _log(tx, metrics=[{"key_result": "KR1", "delta": 3}], idempotency_key="batch-1")
    assert again == first
    assert await _snapshot(store) == after_first
    assert after_first["currents"]["KR1"] == 3.0


async def test_a_key_reused_for_another_outcome_is_refused_naming_the_first(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        await _log(tx, metrics=[{"key_result": "KR1", "delta": 3}], idempotency_key="batch-1")
    before = await _snapshot(store)
    with pytest.raises(
        InvalidInput, match=r"idempotency_key: 'batch-1' was already used for a different outcome \(O1\)"
    ):
        async with store.write() as tx:
            await _log(tx, metrics=[{"key_result": "KR1", "delta": 4}], idempotency_key="batch-1")
    assert await _snapshot(store) == before


async def test_keys_are_the_agencys_own(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        await _log(tx, idempotency_key="k")
        other = await outcomes.log_outcome(
            tx, AGENCY, agency="Inbox", summary="Sent a batch", result="success", idempotency_key="k"
        )
    assert other.id == "O2"


async def test_a_retry_after_the_goal_closed_is_still_answered_from_the_first_outcome(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        first = await _log(tx, metrics=[{"key_result": "KR1", "delta": 3}], idempotency_key="k")
        await goals.adjust_goal(tx, OPERATOR_CLI, "G1", status="achieved")
        assert await _log(tx, metrics=[{"key_result": "KR1", "delta": 3}], idempotency_key="k") == first


async def test_a_retried_complete_task_returns_the_first_outcome_and_closes_once(store: Store) -> None:
    async with store.write() as tx:
        await _outbound(tx)
        await inbox.add_task(tx, AGENCY, title="Send the batch", agency="Outbound")
    fields: dict[str, Any] = {
        "result": "success",
        "summary": "Sent 20",
        "metrics": [{"key_result": "emails sent", "delta": 20}],
        "idempotency_key": "T1-done",
    }
    async with store.write() as tx:
        task, first = await inbox.complete_task(tx, AGENCY, "T1", **fields)
    after_first = await _snapshot(store)
    async with store.write() as tx:
        task_again, again = await inbox.complete_task(tx, AGENCY, "T1", **fields)
    assert (again, task_again) == (first, task)
    assert (task.status, task.outcome) == ("done", "O1")
    assert await _snapshot(store) == after_first
    assert after_first["currents"]["KR1"] == 20.0
    with pytest.raises(InvalidInput, match=r"idempotency_key: 'T1-done' was already used .* \(O1\)"):
        async with store.write() as tx:
            await inbox.complete_task(tx, AGENCY, "T1", **{**fields, "summary": "Sent 21"})
    # The same key on log_outcome is another request (it would not close the task): refused, not replayed.
    with pytest.raises(InvalidInput, match="already used for a different outcome"):
        async with store.write() as tx:
            await _log(tx, task_id=1, summary="Sent 20", metrics=fields["metrics"], idempotency_key="T1-done")
    assert await _snapshot(store) == after_first


async def test_log_outcome_with_a_key_costs_one_statement_more(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statement count is log_outcome's latency: a key adds its one indexed lookup, and no more."""
    async with store.write() as tx:
        await _outbound(tx)
        await _log(tx, metrics=[{"key_result": "KR1", "delta": 1}])  # warm: the day's rollup rows exist
    made: list[str] = []
    for name in ("one", "all", "run", "run_many"):
        method = getattr(Tx, name)

        async def counted(tx: Tx, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            made.append(str(args[0])[:40])
            return await _method(tx, *args, **kwargs)

        monkeypatch.setattr(Tx, name, counted)
    counts = []
    for key in (None, "k1"):
        made.clear()
        async with store.write() as tx:
            await _log(tx, metrics=[{"key_result": "KR1", "delta": 1}], idempotency_key=key)
        counts.append(len(made))
    assert counts[1] == counts[0] + 1, made


# --- the property --------------------------------------------------------------------------------

KEYS = ["a", "b", "c", None]
calls = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.sampled_from(["emails sent", "subscribers"]),
        st.integers(min_value=0, max_value=3),  # a small range, so a reused key often repeats its request
    ),
    min_size=1,
    max_size=12,
)


async def _replay_run(folder: Path, steps: list[tuple[str | None, str, int]]) -> None:
    store = await Store.open(folder / "w.db", FixedClock(START))
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone=TIMEZONE)
            await _outbound(tx)
        expected = {"KR1": 0.0, "KR2": 120.0}
        first: dict[str, tuple[str, int]] = {}
        for key, metric, amount in steps:
            field = "delta" if metric == "emails sent" else "value"
            request = {"metrics": [{"key_result": metric, field: amount}], "idempotency_key": key}
            if key is not None and key in first and first[key] != (metric, amount):
                with pytest.raises(InvalidInput, match="already used for a different outcome"):
                    async with store.write() as tx:
                        await _log(tx, **request)
                continue
            async with store.write() as tx:
                await _log(tx, **request)
            if key is None or key not in first:  # no key, or a new one: it applies; a repeat is answered
                if key is not None:
                    first[key] = (metric, amount)
                kr = "KR1" if metric == "emails sent" else "KR2"
                expected[kr] = expected[kr] + amount if field == "delta" else float(amount)
            assert await _currents(store) == {**expected, "KR3": 0.0}
        async with store.read() as tx:
            logged = await tx.scalar("SELECT count(*) FROM outcomes")
        assert logged == len(first) + sum(1 for key, _, _ in steps if key is None)
    finally:
        await store.close()


THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"


@settings(
    max_examples=1_000 if THOROUGH else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(steps=calls)
def test_repeated_keys_leave_each_key_result_as_if_each_distinct_key_were_applied_once(
    steps: list[tuple[str | None, str, int]],
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cos-keys-"))
    try:
        asyncio.run(_replay_run(folder, steps))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

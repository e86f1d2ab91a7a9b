"""Key results through the MCP surface, in Claude Desktop's handshake and the 2026 one: named by metric,
cumulative or level, and a retried log_outcome or complete_task counted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mcp.test_mcp_surface import call, connect, count_rows, refused, stand_up

pytestmark = pytest.mark.anyio

SUBSCRIBERS = {
    "metric": "subscribers",
    "unit": "people",
    "baseline": 120,
    "target": 300,
    "direction": "up",
    "due_date": "2027-02-21",
    "kind": "level",
}


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "w.db"


def _key_result(listing: dict[str, object], metric: str) -> dict[str, object]:
    goals = listing["goals"]
    assert isinstance(goals, list)
    return next(kr for goal in goals for kr in goal["key_results"] if kr["metric"] == metric)


async def test_emails_sent_is_accepted_as_a_metrics_key_result(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        outcome = await call(
            client,
            "log_outcome",
            agency="Outbound",
            summary="Sent the first three.",
            result="success",
            metrics=[{"key_result": "emails sent", "delta": 3}],
        )
        assert [(m["key_result"], m["delta"]) for m in outcome["metrics"]] == [("KR3", 3.0)]
        emails = _key_result(await call(client, "list_goals"), "emails sent")
        assert (emails["id"], emails["kind"], emails["current"]) == ("KR3", "cumulative", 3.0)


async def test_a_level_key_result_sent_value_180_shows_current_180_and_a_sensible_pace(
    db_path: Path, mode: str
) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        await call(client, "create_goal", agency="Outbound", title="Audience", key_results=[SUBSCRIBERS], confirm=True)
        outcome = await call(
            client,
            "log_outcome",
            agency="Outbound",
            summary="Subscribers are now 180.",
            result="success",
            metrics=[{"key_result": "Subscribers", "value": 180}],
        )
        assert [(m["delta"], m["value"]) for m in outcome["metrics"]] == [(60.0, 180.0)]
        subscribers = _key_result(await call(client, "list_goals"), "subscribers")
    # Day one of 90: the line still expects the baseline, so 180 (a third of the way) is ahead, not at risk.
    assert (subscribers["kind"], subscribers["current"], subscribers["progress"]) == ("level", 180.0, 0.333)
    assert (subscribers["expected_now"], subscribers["pace"], subscribers["at_risk"]) == (120.0, "ahead", False)


async def test_a_delta_on_a_level_key_result_is_refused_with_a_message_that_says_send_value(
    db_path: Path, mode: str
) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        await call(client, "create_goal", agency="Outbound", title="Audience", key_results=[SUBSCRIBERS], confirm=True)
        before = count_rows(db_path, "outcomes"), count_rows(db_path, "audit_log")
        message = await refused(
            client,
            "log_outcome",
            {
                "agency": "Outbound",
                "summary": "Subscribers are now 180.",
                "result": "success",
                "metrics": [{"key_result": "subscribers", "delta": 180}],
            },
        )
        assert "metrics[0].delta: KR4 (subscribers) is a level key result; send value" in message
        assert (count_rows(db_path, "outcomes"), count_rows(db_path, "audit_log")) == before


async def test_a_retried_log_outcome_with_the_same_idempotency_key_counts_once(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        arguments = {
            "agency": "Outbound",
            "summary": "Sent three.",
            "result": "success",
            "metrics": [{"key_result": "emails sent", "delta": 3}],
            "idempotency_key": "send-batch-1",
        }
        first = await call(client, "log_outcome", **arguments)
        before = count_rows(db_path, "audit_log")
        again = await call(client, "log_outcome", **arguments)
        assert again == first
        assert (count_rows(db_path, "outcomes"), count_rows(db_path, "audit_log")) == (1, before)
        assert _key_result(await call(client, "list_goals"), "emails sent")["current"] == 3.0
        message = await refused(client, "log_outcome", {**arguments, "summary": "Sent four."})
        assert "idempotency_key: 'send-batch-1' was already used for a different outcome (O1)" in message


async def test_a_retried_complete_task_with_the_same_idempotency_key_counts_once(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        task = await call(
            client, "add_task", title="Send the Monday batch", agency="Outbound", key_result_id="emails sent"
        )
        assert task["key_result"] == "KR3"
        arguments = {
            "task_id": task["id"],
            "result": "success",
            "summary": "Sent 20.",
            "metrics": [{"key_result": "emails sent", "delta": 20}],
            "idempotency_key": f"{task['id']}-done",
        }
        first = await call(client, "complete_task", **arguments)
        outcomes = count_rows(db_path, "outcomes")
        again = await call(client, "complete_task", **arguments)
        assert again == first and first["task"]["status"] == "done"
        assert count_rows(db_path, "outcomes") == outcomes
        assert _key_result(await call(client, "list_goals"), "emails sent")["current"] == 20.0


async def test_a_long_metric_name_is_taken_wherever_a_key_result_id_is(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await call(client, "apply_blueprint", name="inbox_triage", dry_run=False, confirm=True)
        task = await call(client, "add_task", title="Measure the median", key_result_id="Median first-response hours")
        outcome = await call(
            client,
            "complete_task",
            task_id=task["id"],
            result="success",
            summary="Median is 9 hours today.",
            metrics=[{"key_result": "median first-response hours", "value": 9}],
        )
        median = _key_result(await call(client, "list_goals"), "median first-response hours")
    assert (task["agency"], task["key_result"]) == ("Inbox", median["id"])
    assert [(m["delta"], m["value"]) for m in outcome["outcome"]["metrics"]] == [(-15.0, 9.0)]
    assert (median["kind"], median["current"]) == ("level", 9.0)

"""Which changes and which moments queue webhook deliveries, in the change's own transaction, once each.

Events from changes (decision.opened, grant.changed) are queued by the change itself, so a
refused change queues nothing. Events from time (decision.expiring, brief.daily,
anomaly.found) are queued by the running server's delivery loop, once per subject however
many ticks or processes find them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from mcp import Client

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.domain import outbox
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.mcp.server import build_server
from chief_of_staff.notify import endpoints, runner
from tests.mcp.test_mcp_surface import call, count_rows, refused

pytestmark = pytest.mark.anyio

SDR = Actor("agency:Outbound/SDR", "agency")
CHAT = Actor("operator", "chat")
ALL_EVENTS = list(outbox.EVENTS)


async def outbound(store: Store, events: list[str] | None = None) -> None:
    async with store.write() as tx:
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
        await endpoints.add_endpoint(tx, OPERATOR_CLI, url="https://hooks.example.com/cos", events=events or ALL_EVENTS)


async def queued(store: Store, event: str | None = None) -> list[dict[str, Any]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT event, body FROM webhook_deliveries WHERE event != 'webhook.test' ORDER BY id")
    return [json.loads(row["body"]) | {"event": row["event"]} for row in rows if event is None or row["event"] == event]


async def escalate(store: Store, amount: int = 9_000) -> str:
    async with store.write() as tx:
        view = await ledger.authorize(
            tx,
            SDR,
            agency="Outbound",
            role="SDR",
            capability="spend.ads",
            amount_cents=amount,
            target="linkedin.com",
            task_id=None,
            idempotency_key=None,
        )
    assert view.decision_id is not None
    return view.decision_id


def no_network() -> httpx.AsyncClient:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing should be sent in this test: {request.url}")

    return httpx.AsyncClient(transport=httpx.MockTransport(refuse))


# --- events from changes ---------------------------------------------------------------------------


async def test_an_escalation_queues_one_decision_opened_in_its_own_transaction(store: Store) -> None:
    await outbound(store)
    decision = await escalate(store)
    again = await escalate(store)  # the same request finds the same pending decision: no second message
    assert again == decision
    [message] = await queued(store, "decision.opened")
    assert message["type"] == "decision.opened"
    assert message["data"]["decision_id"] == decision and message["data"]["amount_cents"] == 9_000
    assert message["data"]["agency"] == "Outbound" and message["data"]["role"] == "SDR"


async def test_no_endpoint_no_delivery_and_an_unsubscribed_event_is_not_queued(store: Store) -> None:
    async with store.write() as tx:
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
    await escalate(store)
    assert await queued(store) == []
    async with store.write() as tx:
        await endpoints.add_endpoint(tx, OPERATOR_CLI, url="https://hooks.example.com/a", events=["brief.daily"])
    await escalate(store, 9_500)
    assert await queued(store) == []


async def test_grant_create_update_and_revoke_each_queue_grant_changed(store: Store) -> None:
    await outbound(store, ["grant.changed"])
    async with store.write() as tx:
        made = await grants.create_grant(
            tx,
            OPERATOR_CLI,
            GrantSpec(agency="Outbound", role="SDR", capability="spend.ads", per_action_cap_cents=1_000),
        )
        await grants.update_grant(tx, OPERATOR_CLI, made.id, mode="approve")
        await grants.revoke_grant(tx, OPERATOR_CLI, made.id, reason="done")
    changes = [(m["data"]["grant_id"], m["data"]["change"], m["data"]["version"]) for m in await queued(store)]
    assert changes == [(made.id, "created", 1), (made.id, "updated", 2), (made.id, "revoked", 3)]


async def test_a_refused_change_queues_nothing(store: Store) -> None:
    await outbound(store, ["grant.changed"])
    async with store.write() as tx:
        with pytest.raises(OperatorActRefused):
            await grants.create_grant(
                tx, CHAT, GrantSpec(agency="Outbound", capability="spend.ads", per_action_cap_cents=500_000)
            )
    assert await queued(store) == []


# --- events from time ------------------------------------------------------------------------------


async def test_a_decision_is_announced_as_expiring_once_inside_its_last_twelve_hours(
    store: Store, clock: FixedClock
) -> None:
    await outbound(store, ["decision.expiring"])
    decision = await escalate(store)
    state = runner.RunnerState()
    async with no_network() as http:
        clock.advance(timedelta(hours=59))  # 13 hours left of 72
        await runner.tick(store, http, state)
        assert await queued(store) == []
        clock.advance(timedelta(hours=2))
        await runner.tick(store, http, state)
        await runner.tick(store, http, state)
        await runner.tick(store, http, runner.RunnerState())  # another process, same file
    [message] = await queued(store)
    assert message["data"]["decision_id"] == decision and message["data"]["hours_left"] == 11.0


async def test_the_daily_brief_is_queued_once_a_day_from_its_local_time(store: Store, clock: FixedClock) -> None:
    await outbound(store, ["brief.daily"])  # the workspace is in Berlin; START is 09:00 there
    async with store.write() as tx:
        from chief_of_staff.notify import events

        await events.set_daily_brief_at(tx, OPERATOR_CLI, "09:30")
    state = runner.RunnerState()
    async with no_network() as http:
        await runner.tick(store, http, state)
        assert await queued(store) == []
        clock.advance(timedelta(minutes=30))
        for fresh in (state, state, runner.RunnerState()):
            await runner.tick(store, http, fresh)
        clock.advance(timedelta(days=1))
        await runner.tick(store, http, state)
    days = [m["data"]["date"] for m in await queued(store, "brief.daily")]
    assert days == ["2026-11-23", "2026-11-24"]
    first = (await queued(store))[0]["data"]
    assert first["pending_decisions"] == 0 and any("Inbox:" in line for line in first["summary"])


async def test_an_anomaly_is_announced_once_a_day(store: Store, clock: FixedClock) -> None:
    await outbound(store, ["anomaly.found"])
    await escalate(store)
    clock.advance(timedelta(hours=30))  # the decision has now waited over a day: an anomaly
    async with no_network() as http:
        await runner.tick(store, http, runner.RunnerState())
        await runner.tick(store, http, runner.RunnerState())
    found = [(m["data"]["kind"], m["data"]["subject"]) for m in await queued(store, "anomaly.found")]
    assert found and len(found) == len(set(found))
    assert any(subject.startswith("D") for _, subject in found), found


async def test_daily_time_must_be_a_clock_time_and_an_operator_act(store: Store) -> None:
    from chief_of_staff.core.errors import InvalidInput
    from chief_of_staff.notify import events

    async with store.write() as tx:
        with pytest.raises(InvalidInput):
            await events.set_daily_brief_at(tx, OPERATOR_CLI, "25:00")
        with pytest.raises(OperatorActRefused):
            await events.set_daily_brief_at(tx, SDR, "07:00")


# --- the notify tool -------------------------------------------------------------------------------


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_the_notify_tool_lists_tests_and_removes_but_adds_only_on_a_verified_channel(
    tmp_path: Any, clock: FixedClock, mode: str
) -> None:
    db = tmp_path / "w.db"
    server = build_server(Settings(db_path=db, clock=clock), deliveries=False)
    async with Client(server, mode=mode) as client:
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        before = count_rows(db, "audit_log")
        message = await refused(
            client,
            "notify",
            {"action": "add", "url": "https://hooks.example.com/x", "events": ["decision.opened"], "confirm": True},
        )
        assert "only the operator" in message and "notify add" in message
        assert count_rows(db, "webhook_endpoints") == 0 and count_rows(db, "audit_log") == before
        store = await Store.open(db, clock)
        try:
            async with store.write() as tx:
                await endpoints.add_endpoint(
                    tx, OPERATOR_CLI, url="https://hooks.example.com/x", events=["decision.opened"]
                )
        finally:
            await store.close()
        listed = await call(client, "notify")
        assert [e["endpoint_id"] for e in listed["endpoints"]] == ["NE1"]
        assert "secret" not in json.dumps(listed) and "whsec_" not in json.dumps(listed)
        assert "needs the endpoint" in await refused(client, "notify", {"action": "test"})
        assert "queued" in (await call(client, "notify", action="test", endpoint_id="NE1", confirm=True))["message"]
        # Removing the operator's alarms is never the model's word to give: only a verified channel removes.
        silenced = await refused(client, "notify", {"action": "remove", "endpoint_id": "NE1", "confirm": True})
        assert "cannot be done in chat" in silenced and "chief-of-staff notify remove NE1" in silenced
        listed = await call(client, "notify")
    assert listed["endpoints"][0]["status"] != "removed"


async def test_the_delivery_loop_has_work_only_with_an_endpoint_or_a_pending_delivery(store: Store) -> None:
    assert not await runner.has_work(store)  # so a fresh server never makes an HTTP client
    await outbound(store)
    assert await runner.has_work(store)
    async with store.write() as tx:
        await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE1")
        await tx.run(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, event, body, next_attempt_at, "
            "created_at) VALUES ('msg_left', 1, 'grant.changed', '{}', ?, ?)",
            (tx.now_text, tx.now_text),
        )
    assert await runner.has_work(store)  # what was queued still goes out

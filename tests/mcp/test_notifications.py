"""Change notifications: `resources/subscribe` on the 2025-11-25 handshake, `subscriptions/listen` at 2026-07-28.

Waits are bounded by anyio.fail_after; "nothing was sent" is shown by a later marker notification
arriving alone, since one connection delivers its notifications in order.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import ResourceUpdatedNotification

from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.mcp import subscriptions
from chief_of_staff.mcp.server import build_server
from chief_of_staff.mcp.subscriptions import BRIEF, DECISIONS, GOALS, INBOX
from tests.conftest import START

pytestmark = pytest.mark.anyio

OUTCOME = {
    "agency": "Outbound",
    "role": "SDR",
    "summary": "Two positive replies",
    "result": "success",
    "metrics": [{"key_result": "KR2", "delta": 2}],
}
QUESTION = {"agency": "Outbound", "kind": "question", "title": "May we email on Saturdays?"}


class Heard:
    """The resource URIs a client was told changed, in the order they arrived."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._arrived = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self._arrived.set()

    async def until(self, uri: str) -> list[str]:
        """Everything heard up to the first update of `uri` (and whatever arrived with it)."""
        with anyio.fail_after(5):
            while uri not in self.uris:
                await self._arrived.wait()
                self._arrived = anyio.Event()
        return self.uris


@pytest.fixture
def server(tmp_path: Path) -> MCPServer[Any]:
    return build_server(Settings(db_path=tmp_path / "w.db", clock=FixedClock(START)))


@asynccontextmanager
async def legacy(server: MCPServer[Any], heard: Heard | None = None) -> AsyncIterator[Client]:
    async with Client(server, mode="legacy", message_handler=heard) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> None:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content


async def subscribe(client: Client, *uris: str) -> None:
    with warnings.catch_warnings():  # the SDK marks the 2025-era API deprecated; that era is what is tested
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        for uri in uris:
            await client.subscribe_resource(uri)


async def unsubscribe(client: Client, uri: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await client.unsubscribe_resource(uri)


async def test_the_2025_handshake_advertises_subscriptions_and_list_changes(server: MCPServer[Any]) -> None:
    async with legacy(server) as client:
        capabilities = client.server_capabilities
    assert capabilities.resources is not None
    assert capabilities.resources.subscribe is True
    assert capabilities.resources.list_changed is True
    assert capabilities.tools is not None and capabilities.tools.list_changed is True
    assert capabilities.prompts is not None and capabilities.prompts.list_changed is True


async def test_a_client_subscribed_to_the_brief_hears_when_an_outcome_is_logged(server: MCPServer[Any]) -> None:
    heard = Heard()
    async with legacy(server, heard) as client:
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(client, BRIEF)
        await call(client, "log_outcome", **OUTCOME)
        assert await heard.until(BRIEF) == [BRIEF]


async def test_every_resource_an_outcome_changes_is_announced(server: MCPServer[Any]) -> None:
    heard = Heard()
    async with legacy(server, heard) as client:
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(client, BRIEF, GOALS, INBOX, DECISIONS)
        await call(client, "log_outcome", **OUTCOME)
        await call(client, "request_decision", **QUESTION)
        # A question may park the task it names, so it may announce the inbox too, after the decisions.
        assert (await heard.until(DECISIONS))[:5] == [BRIEF, GOALS, INBOX, BRIEF, DECISIONS]


async def test_another_session_subscribed_to_the_brief_hears_of_the_outcome(server: MCPServer[Any]) -> None:
    heard = Heard()
    async with legacy(server, heard) as watcher, legacy(server) as worker:
        await call(worker, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(watcher, BRIEF)
        await call(worker, "log_outcome", **OUTCOME)
        assert await heard.until(BRIEF) == [BRIEF]


async def test_no_update_is_sent_for_a_resource_not_subscribed_to(server: MCPServer[Any]) -> None:
    heard = Heard()
    async with legacy(server, heard) as client:
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(client, DECISIONS)
        await call(client, "log_outcome", **OUTCOME)  # changes the brief, goals and inbox: none subscribed
        await call(client, "request_decision", **QUESTION)
        assert await heard.until(DECISIONS) == [DECISIONS]


async def test_unsubscribing_stops_the_updates(server: MCPServer[Any]) -> None:
    heard = Heard()
    async with legacy(server, heard) as client:
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(client, BRIEF, DECISIONS)
        await unsubscribe(client, BRIEF)
        await call(client, "request_decision", **QUESTION)
        assert await heard.until(DECISIONS) == [DECISIONS]


async def test_failed_calls_and_dry_runs_send_no_update(server: MCPServer[Any]) -> None:
    heard = Heard()
    async with legacy(server, heard) as client:
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(client, BRIEF, DECISIONS)
        invalid = await client.call_tool("log_outcome", {**OUTCOME, "sumary": "typo"})
        unknown = await client.call_tool("log_outcome", {**OUTCOME, "agency": "Nobody"})
        assert invalid.is_error and unknown.is_error
        await call(client, "apply_blueprint", name="outbound", agency_name="Outbound 2")  # a dry run
        await call(client, "request_decision", **QUESTION)
        assert await heard.until(DECISIONS) == [BRIEF, DECISIONS]


async def test_subscribing_to_a_resource_that_sends_no_updates_is_refused(server: MCPServer[Any]) -> None:
    async with legacy(server) as client:
        with pytest.raises(MCPError) as refused:
            await subscribe(client, "cos://tasks/T1")
    assert "uri: cos://tasks/T1 sends no updates" in str(refused.value)
    assert BRIEF in str(refused.value)


async def test_a_notification_that_cannot_be_sent_does_not_fail_the_call(
    server: MCPServer[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: object, uri: str) -> None:
        raise RuntimeError("the client went away")

    monkeypatch.setattr(subscriptions._Subscriptions, "publish", broken)
    async with legacy(server) as client:
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(client, BRIEF)
        await call(client, "log_outcome", **OUTCOME)


async def test_a_closed_session_is_forgotten(server: MCPServer[Any]) -> None:
    async with legacy(server) as client:
        await subscribe(client, BRIEF)
        assert len(subscriptions._SUBSCRIPTIONS[server]._uris) == 1
    assert subscriptions._SUBSCRIPTIONS[server]._uris == {}


async def test_a_2026_client_listening_to_the_brief_hears_when_an_outcome_is_logged(
    server: MCPServer[Any],
) -> None:
    async with Client(server, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        async with client.listen(resource_subscriptions=[BRIEF]) as subscription:
            await call(client, "log_outcome", **OUTCOME)
            with anyio.fail_after(5):
                event = await anext(aiter(subscription))
    assert event == ResourceUpdated(uri=BRIEF)

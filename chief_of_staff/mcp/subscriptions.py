"""Change notifications on both protocol eras, and the one place that works around the SDK to send them.

2026-era clients open a `subscriptions/listen` stream; `MCPServer` serves it and
`ctx.notify_resource_updated` publishes to it. 2025-era clients subscribe with
`resources/subscribe` instead, which `MCPServer` (SDK 2.3) neither serves nor
advertises, and it advertises no `listChanged` at that era either. `install`
adds both to the server's low-level core; `notify_changed` tells every
subscriber of either era that a resource changed. Which tool changes which
resource is declared once, on each tool's `ToolSpec.changes`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from weakref import WeakKeyDictionary

from mcp.server import NotificationOptions, Server
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

BRIEF = "cos://brief"
GOALS = "cos://goals"
INBOX = "cos://inbox"
DECISIONS = "cos://decisions"
AUTHORITY_LETTER = "cos://authority-letter"
REVIEW = "cos://review"
EVERYTHING = (BRIEF, GOALS, INBOX, DECISIONS, AUTHORITY_LETTER, REVIEW)

# The server's lists of tools, prompts and resources never change, so the flags promise nothing that is not
# kept; they make the 2025-era handshake advertise what the SDK already advertises at 2026-07-28.
_LIST_CHANGED = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)

logger = logging.getLogger(__name__)


def _connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection:
    # The SDK builds a new ServerSession per request; the Connection it wraps is the only thing that lives
    # as long as the client does, and its exit stack is how we learn that the client has gone.
    connection: Connection = ctx.session._connection
    return connection


class _Subscriptions:
    """Which 2025-era connections subscribed to which resources (`resources/subscribe` is per connection)."""

    def __init__(self) -> None:
        self._uris: dict[Connection, set[str]] = {}

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        """Serve `resources/subscribe`; only resources that ever send updates can be subscribed to."""
        uri = str(params.uri)
        if uri not in EVERYTHING:
            raise MCPError(INVALID_PARAMS, f"uri: {uri} sends no updates; subscribe to one of {', '.join(EVERYTHING)}.")
        connection = _connection_of(ctx)
        if connection not in self._uris:
            self._uris[connection] = set()
            connection.exit_stack.callback(self._uris.pop, connection, None)
        self._uris[connection].add(uri)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        """Serve `resources/unsubscribe`; unsubscribing from something never subscribed to is not an error."""
        self._uris.get(_connection_of(ctx), set()).discard(str(params.uri))
        return EmptyResult()

    async def publish(self, uri: str) -> None:
        """Send `notifications/resources/updated` to every connection subscribed to `uri`."""
        for connection, uris in list(self._uris.items()):
            if uri in uris:
                await connection.send_resource_updated(uri)  # best effort: never raises on a closed stream


_SUBSCRIPTIONS: WeakKeyDictionary[MCPServer[Any], _Subscriptions] = WeakKeyDictionary()


def install(server: MCPServer[Any]) -> None:
    """Serve `resources/subscribe` and `resources/unsubscribe` and advertise them, with listChanged, at 2025 eras."""
    # MCPServer exposes no public handle on its low-level core, and only the core can serve these methods.
    core: Server[Any] = server._lowlevel_server
    subscriptions = _SUBSCRIPTIONS[server] = _Subscriptions()
    core.add_request_handler("resources/subscribe", SubscribeRequestParams, subscriptions.subscribe)
    core.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, subscriptions.unsubscribe)

    def initialization_options(
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return Server.create_initialization_options(
            core, notification_options or _LIST_CHANGED, experimental_capabilities, extensions
        )

    # Every transport asks the core for its handshake options without arguments; this supplies the flags.
    core.create_initialization_options = initialization_options  # type: ignore[method-assign]


async def notify_changed(ctx: Context[Any, Any], uris: Iterable[str]) -> None:
    """Tell subscribers of both eras that these resources changed. Never raises: the change is already made."""
    uris = list(uris)
    if BRIEF in uris and REVIEW not in uris:  # the review packet shows everything the brief does
        uris.append(REVIEW)
    for uri in uris:
        try:
            subscriptions = _SUBSCRIPTIONS.get(ctx.mcp_server)
            if subscriptions is not None:
                await subscriptions.publish(uri)
            await ctx.notify_resource_updated(uri)
        except Exception:
            logger.debug("could not send the update for %s", uri, exc_info=True)

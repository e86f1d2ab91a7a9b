"""Canary: the shapes of the MCP SDK this package reaches past the public API for.

The SDK is pinned to the minor these tests run against (pyproject.toml). When a new release moves
one of these, this file fails first, by name, instead of a tool failing at run time:

- mcp/toolkit.py builds tools from the SDK's Tool and FuncMetadata and hands raw arguments
  through ArgModelBase.model_dump_one_level;
- mcp/subscriptions.py serves resources/subscribe on MCPServer's low-level core and tells
  connections apart by the Connection a ServerSession wraps;
- mcp/prompts.py overrides Prompt.render;
- mcp/caller.py reads the Principal from the AccessToken's claims.
"""

from __future__ import annotations

import inspect
from importlib import metadata

import mcp.server.session as server_session
from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata


def test_the_sdk_is_the_pinned_minor() -> None:
    assert metadata.version("mcp").startswith("2.3.")


def test_tools_are_built_from_these_fields() -> None:
    assert {"fn", "name", "title", "description", "parameters", "fn_metadata", "annotations"} <= set(Tool.model_fields)
    assert {"arg_model", "output_model", "output_schema"} <= set(FuncMetadata.model_fields)
    assert callable(getattr(ArgModelBase, "model_dump_one_level", None))
    assert callable(Tool.from_function)


def test_operator_acts_resolve_an_elicitation() -> None:
    assert inspect.isclass(Resolve) and inspect.isclass(Elicit)
    assert "data" in inspect.signature(AcceptedElicitation).parameters or hasattr(AcceptedElicitation, "data")


def test_subscriptions_reach_the_low_level_core_and_the_connection() -> None:
    assert isinstance(MCPServer("canary")._lowlevel_server, Server)
    assert list(inspect.signature(Server.add_request_handler).parameters) == [
        "self",
        "method",
        "params_type",
        "handler",
    ]
    assert list(inspect.signature(Server.create_initialization_options).parameters) == [
        "self",
        "notification_options",
        "experimental_capabilities",
        "extensions",
    ]
    assert "session" in ServerRequestContext.__dataclass_fields__
    assert "self._connection" in inspect.getsource(server_session)
    assert "self.exit_stack" in inspect.getsource(Connection) and callable(Connection.send_resource_updated)


def test_prompts_render_with_arguments_and_context() -> None:
    assert list(inspect.signature(Prompt.render).parameters) == ["self", "arguments", "context"]
    assert {"fn", "context_kwarg", "arguments"} <= set(Prompt.model_fields)


def test_the_principal_rides_on_the_access_tokens_claims() -> None:
    assert {"claims", "resource", "subject"} <= set(AccessToken.model_fields)
    token = AccessToken(token="t", client_id="c", scopes=[], claims={"k": "v"})
    assert AuthenticatedUser(token).access_token.claims == {"k": "v"}

"""Streamable HTTP: the same server for clients that cannot spawn a local command.

One process serves one or more workspace files. With one, its endpoint is `/mcp`; with
several, each is `/<name>/mcp`. Every request is authenticated with a bearer token
from `chief-of-staff token create --agency NAME` (or `--operator`), through the SDK's resource-server support:

- a token is looked up in every served workspace, and the one that holds it becomes the
  token's audience (`AccessToken.resource`);
- each workspace's endpoint accepts only tokens whose audience is itself, so a token of
  workspace A is refused at workspace B (401) even though it is valid;
- the token's principal rides on the request to the tool call (`access`).

DNS-rebinding protection is always on: a Host or Origin that is not allowed is refused
(421 and 403) before anything else runs. Allowed hosts and origins can be added for a
real hostname. `GET /health` answers without a token, and says nothing about the
workspaces.
"""

from __future__ import annotations

import logging
import re
import secrets
import shlex
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chief_of_staff import __version__
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import tokens
from chief_of_staff.domain.tokens import Principal
from chief_of_staff.http import console
from chief_of_staff.http.sockets import listen
from chief_of_staff.mcp.caller import PRINCIPAL_CLAIM
from chief_of_staff.mcp.server import SharedStore, build_server
from chief_of_staff.notify import runner

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # The URL clients reach the server at, when it differs from http://host:port (a proxy, TLS).
    public_url: str | None = None
    # Mount each workspace's operator console beside its endpoint (`serve --http --console`).
    console: bool = False


@dataclass
class ServedWorkspace:
    """One workspace file behind one endpoint."""

    name: str
    settings: Settings
    shared: SharedStore = field(init=False)
    path: str = "/mcp"
    resource_url: str = ""
    app: Starlette | None = None
    # The mounted console: its secret path and public URL, and its app once the store is open.
    console_path: str = ""
    console_url: str = ""
    console_app: ASGIApp | None = None

    def __post_init__(self) -> None:
        self.shared = SharedStore(self.settings)

    @property
    def metadata_path(self) -> str:
        return "/.well-known/oauth-protected-resource" + self.path


def parse_workspaces(specs: Sequence[str], settings_for: Any) -> list[ServedWorkspace]:
    """`[NAME=]PATH` specs as workspaces; a name defaults to the file's stem and must be unique."""
    served: list[ServedWorkspace] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = _name_from(Path(spec)), spec
        name = name.strip().lower()
        if not _NAME.match(name):
            raise InvalidInput(
                f"--workspace {spec!r}: a workspace name is 1-40 lowercase letters, digits or dashes; "
                "send NAME=PATH, e.g. acme=/data/acme.db."
            )
        if any(existing.name == name for existing in served):
            raise InvalidInput(f"--workspace: two workspaces are named {name!r}; name one with NAME=PATH.")
        served.append(ServedWorkspace(name=name, settings=settings_for(path)))
    return served


def _name_from(path: Path) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-") or "workspace"


class WorkspaceTokens(TokenVerifier):
    """Finds the served workspace that holds a token; its endpoint becomes the token's audience."""

    def __init__(self, workspaces: Sequence[ServedWorkspace]) -> None:
        self._workspaces = workspaces

    async def verify_token(self, token: str) -> AccessToken | None:
        for workspace in self._workspaces:
            principal = await _authenticate(workspace, token)
            if principal is not None:
                return AccessToken(
                    token=token,
                    client_id=principal.token_id,
                    scopes=[principal.kind],
                    subject=principal.viewer,
                    resource=workspace.resource_url,
                    claims={PRINCIPAL_CLAIM: principal},
                )
        log.info("refused a request whose token no served workspace holds as active")
        return None


async def _authenticate(workspace: ServedWorkspace, token: str) -> Principal | None:
    store = workspace.shared.get()
    async with store.read() as tx:
        principal = await tokens.authenticate(tx, token)
    if principal is not None and tokens.use_is_stale(principal, store.clock.now()):
        async with store.write() as tx:
            await tokens.mark_used(tx, principal)
    return principal


def _security(options: HttpOptions) -> TransportSecuritySettings:
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOOPBACK_HOSTS, *options.allowed_hosts],
        allowed_origins=[*LOOPBACK_ORIGINS, *options.allowed_origins],
    )


class _HostGuard:
    """Refuse a Host or Origin that is not allowed on every route, before authentication or routing."""

    def __init__(self, app: ASGIApp, settings: TransportSecuritySettings) -> None:
        self._app = app
        self._check = TransportSecurityMiddleware(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = await self._check.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)


class _Dispatch:
    """Hand a request to the workspace whose endpoint (or metadata, or console) it names."""

    def __init__(self, workspaces: Sequence[ServedWorkspace]) -> None:
        self._workspaces = workspaces
        self._routes: dict[str, ASGIApp] = {}
        for workspace in workspaces:
            assert workspace.app is not None
            self._routes[workspace.path] = workspace.app
            self._routes[workspace.metadata_path] = workspace.app
        # Never the workspace names: this page answers without a token, and names are often clients'.
        self._endpoints = "/mcp" if len(workspaces) == 1 else "/<workspace>/mcp"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope["path"])
        app = self._routes.get(path.rstrip("/") or "/") or self._console(path)
        if app is None:
            await _not_here(self._endpoints)(scope, receive, send)
            return
        await app(scope, receive, send)

    def _console(self, path: str) -> ASGIApp | None:
        for workspace in self._workspaces:
            prefix = workspace.console_path
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                return workspace.console_app  # None until the lifespan opened its store
        return None


def _not_here(endpoints: str) -> Response:
    return JSONResponse(
        status_code=404,
        content={
            "error": "not_found",
            "error_description": f"The MCP endpoint is {endpoints}. Send every request with "
            "'Authorization: Bearer <token>'; tokens come from "
            "`chief-of-staff token create --agency NAME` (or `--operator`), not from OAuth.",
        },
    )


async def _health(_: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


def _base_url(options: HttpOptions, port: int) -> str:
    if options.public_url:
        return options.public_url.rstrip("/")
    host = f"[{options.host}]" if ":" in options.host else options.host
    return f"http://{host}:{port}"


def _mount(
    workspace: ServedWorkspace, base_url: str, verifier: TokenVerifier, security: TransportSecuritySettings, host: str
) -> None:
    auth = AuthSettings(
        issuer_url=AnyHttpUrl(base_url),
        resource_server_url=AnyHttpUrl(workspace.resource_url),
        validate_token_resource=True,
    )
    server = build_server(
        workspace.settings, shared=workspace.shared, auth=auth, token_verifier=verifier, deliveries=False
    )
    workspace.app = server.streamable_http_app(
        streamable_http_path=workspace.path, transport_security=security, host=host
    )


def _place_console(workspace: ServedWorkspace, base_url: str) -> None:
    """Where the workspace's console answers: beside its endpoint, under a secret path fresh for this run.

    The secret path scopes the console's cookie (browsers do not tell ports apart), as for the loopback
    console; the public URL's own path must be empty, since the app sees paths as the client sent them.
    """
    if urlsplit(base_url).path.strip("/"):
        raise InvalidInput(
            f"--console: the console is served at the root of --public-url, so send a URL without a path "
            f"(e.g. https://cos.example.com), not {base_url}; or leave out --console."
        )
    workspace.console_path = workspace.path.removesuffix("/mcp") + "/console/" + secrets.token_urlsafe(24)
    workspace.console_url = base_url + workspace.console_path


@contextmanager
def _console_served(workspace: ServedWorkspace, store: Store, options: HttpOptions, port: int) -> Iterator[None]:
    """The console's app over the open store, announced beside the workspace file while it serves.

    Its Host and Origin rules are the server's: the public URL's, the loopback names at the listening
    port, and what --allow-host and --allow-origin add.
    """
    loopback_hosts = tuple(f"{name}:{port}" for name in console.LOOPBACK_NAMES)
    workspace.console_app = console.build_console_app(
        store,
        base_url=workspace.console_url,
        allowed_hosts=(*loopback_hosts, *options.allowed_hosts),
        allowed_origins=(*(f"http://{host}" for host in loopback_hosts), *options.allowed_origins),
    )
    console.announce(store.path, workspace.console_url, listening_port=port)
    try:
        yield
    finally:
        console.withdraw(store.path)
        workspace.console_app = None


def build_http_app(workspaces: Sequence[ServedWorkspace], options: HttpOptions, port: int) -> Starlette:
    """The ASGI app serving every workspace; its lifespan opens each store and session manager."""
    if not workspaces:
        raise InvalidInput("Serve at least one workspace.")
    base_url = _base_url(options, port)
    security = _security(options)
    verifier = WorkspaceTokens(workspaces)
    for workspace in workspaces:
        workspace.path = "/mcp" if len(workspaces) == 1 else f"/{workspace.name}/mcp"
        workspace.resource_url = base_url + workspace.path
        _mount(workspace, base_url, verifier, security, options.host)
        if options.console:
            _place_console(workspace, base_url)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stores = []
            for workspace in workspaces:
                assert workspace.app is not None
                stores.append(store := await stack.enter_async_context(workspace.shared.session()))  # for its life
                if options.console:
                    stack.enter_context(_console_served(workspace, store, options, port))
                await stack.enter_async_context(workspace.app.router.lifespan_context(workspace.app))
            # Entered last, so cancelling the delivery loops at shutdown cancels nothing else.
            async with anyio.create_task_group() as group:
                for workspace, store in zip(workspaces, stores, strict=True):
                    group.start_soon(partial(runner.run_deliveries, store, interval=workspace.settings.webhook_tick))
                try:
                    yield
                finally:
                    group.cancel_scope.cancel()

    app = Starlette(
        routes=[Route("/health", _health, methods=["GET"]), Route("/{path:path}", _Dispatch(workspaces))],
        lifespan=lifespan,
    )
    app.add_middleware(_HostGuard, settings=security)
    return app


def bind(options: HttpOptions) -> socket.socket:
    """The listening socket for `options`, bound before the app is built so port 0 can pick a free port."""
    return listen(options.host, options.port)


def uvicorn_server(app: Starlette) -> uvicorn.Server:
    # log_config=None keeps uvicorn on our stderr logging; its access log would go to stdout.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


async def serve_http(workspaces: Sequence[ServedWorkspace], options: HttpOptions) -> None:
    """Serve until interrupted; the endpoints are announced on stderr."""
    sock = bind(options)
    port = sock.getsockname()[1]
    app = build_http_app(workspaces, options, port)
    for workspace in workspaces:
        print(f"chief-of-staff: serving {workspace.settings.db_path} at {workspace.resource_url}", file=sys.stderr)
        if options.console:
            print(
                f"chief-of-staff: its console is served too; log in with a one-time link from "
                f"`chief-of-staff console --link --db {shlex.quote(str(workspace.settings.db_path))}`",
                file=sys.stderr,
            )
    print(
        f"chief-of-staff: health at {_base_url(options, port)}/health; "
        "tokens: chief-of-staff token create --agency NAME (or --operator)",
        file=sys.stderr,
        flush=True,
    )
    with sock:
        await uvicorn_server(app).serve(sockets=[sock])

"""The operator's console: a loopback web page that is the verified channel, with pictures.

`chief-of-staff console` (chief_of_staff.cli.console) serves it for one workspace file on 127.0.0.1 and
opens the browser on a one-time login link; `ensure_console` starts the same app inside a running
server process, for the chat's "open the console". The door is chief_of_staff.domain.console_access:
the link's secret is exchanged once, within minutes, for a session cookie; every act of the session is
audited as `operator:console-N` on the verified channel, through the same domain functions as the
command line (deciding.decide, ...): the console writes no business SQL of its own. `serve --http
--console` mounts the same app beside each workspace's MCP endpoint (chief_of_staff.http.server).

This module holds the app, its guard, serving, and the first pages (Today, Goals, Inbox, Outcomes, the
login and deciding); the other pages are modules of their own over console_kit (console_authority,
console_roster, console_review, console_audit, console_settings).

Security, as for any local web app that can spend money:

- **Host and Origin** are checked on every request, before routing: the console's own loopback
  host:port only (127.0.0.1, localhost and [::1] at its port), plus what a deployment names. A foreign
  Host is refused with 421 (DNS rebinding), a foreign Origin with 403. A form's own POST carries
  `Origin: null` (the pages send `Referrer-Policy: no-referrer`, and browsers then hide the origin), so
  "null" and a missing Origin prove nothing either way. A request whose `Sec-Fetch-Site` says cross-site
  or same-site is refused (403) whatever its method, login included: another port of 127.0.0.1 is the
  same site, so an `<img>` there would otherwise reach the pages; the console's own links say
  same-origin, and a link typed or opened from outside the browser says none. The CSRF token and the
  SameSite=Strict cookie hold regardless.
- **A secret path**: each console run serves everything (pages, forms, static files, login) under a
  random prefix, `/c/<32 random characters>/`, and answers 404 outside it. Browsers do not tell ports
  apart for cookies, so the cookie's Path is that prefix: another server on 127.0.0.1 is sent the
  cookie only if the browser asks it for the console's secret path.
- **Every form carries the session's CSRF token**; a POST without it (or with another) is refused with
  403 and changes nothing.
- **The session cookie** is HttpOnly, SameSite=Strict, Path=<the secret prefix>/, Secure when served
  over https, and expires with the session; its name is per workspace file.
- **Every response** carries a strict Content-Security-Policy (nothing external, no script at all,
  styles only from the console's own CSS file), `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
- **Nothing secret in a URL** after login but the prefix: `/login?token=...` answers with a 303 to the
  page (only a GET redeems it: a HEAD, such as a prefetch, does not), and flash messages ride in the
  session (in this process), not the query string.
- **Only a look moves the mark**: the Today and Review pages move the operator's "since you last looked"
  mark on a top-level navigation only (`Sec-Fetch-Dest: document`, or no such header from a non-browser client).
- **Every page escapes what it shows** (Jinja2 with autoescape): agency names, task titles, targets
  and notes are data from outside.

Pages work without JavaScript: links and forms that post.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chief_of_staff.core import processes
from chief_of_staff.core.audit import SYSTEM, Actor
from chief_of_staff.core.clock import local_date
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import AccessRefused, ChiefOfStaffError, WorkspaceSealed
from chief_of_staff.domain import (
    agencies,
    brief,
    console_access,
    deciding,
    decisions,
    goals,
    inbox,
    outcomes,
    viewers,
    workspace,
)
from chief_of_staff.domain.console_access import ConsoleSession
from chief_of_staff.http import (
    console_audit,
    console_authority,
    console_charts,
    console_local,
    console_review,
    console_roster,
    console_settings,
    console_tables,
)
from chief_of_staff.http.console_kit import ConsoleCore, Refused, first, static
from chief_of_staff.http.sockets import listen

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "cross-origin-resource-policy": "same-origin",
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
COOKIE_PREFIX = "cos_console_"
# What a foreign request is told; never more than that it was refused and what to do.
FOREIGN_HOST = (
    "This console answers only at its own address (127.0.0.1 and its port). "
    "Open the link `chief-of-staff console` printed."
)
FOREIGN_ORIGIN = "This request came from another site, so the console refused it; nothing was changed."
LOGIN_BY_GET = "Open this login link in your browser to log in; it was not used."
NOT_HERE = "Not found."
STATE_SUFFIX = ".console.json"
PREFIX_ROOT = "/c/"
START_TIMEOUT = 10.0


# --- addresses --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleOptions:
    """Where the console listens and what it answers to. Loopback, on a free port, unless told otherwise."""

    host: str = "127.0.0.1"
    port: int = 0
    # A deployment behind a proxy names its own host and origin, and its public URL (https: Secure cookies).
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    public_url: str | None = None

    def base_url(self, port: int) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"


def _with_secret_prefix(base_url: str) -> str:
    """`base_url` plus a fresh random path prefix for one console run (cookies are not scoped by port)."""
    return base_url.rstrip("/") + PREFIX_ROOT + secrets.token_urlsafe(24)  # 32 URL-safe characters


def _addresses(base_url: str, hosts: Sequence[str], origins: Sequence[str]) -> tuple[set[str], set[str]]:
    """The Host values and Origins the console answers to: its own, the loopback names at its port, and more."""
    parts = urlsplit(base_url)
    allowed_hosts = {parts.netloc.lower(), *(host.lower() for host in hosts)}
    allowed_origins = {f"{parts.scheme}://{parts.netloc}".lower(), *(origin.lower() for origin in origins)}
    if parts.hostname in ("127.0.0.1", "localhost", "::1") and parts.port is not None:
        allowed_hosts |= {f"{name}:{parts.port}" for name in LOOPBACK_NAMES}
        allowed_origins |= {f"http://{name}:{parts.port}" for name in LOOPBACK_NAMES}
    return allowed_hosts, allowed_origins


def cookie_name(db_path: Path) -> str:
    """The session cookie's name, one per workspace file: browsers share cookies across a host's ports."""
    return COOKIE_PREFIX + hashlib.sha256(str(db_path).encode("utf-8", "surrogatepass")).hexdigest()[:12]


# --- the guard: addresses checked and headers set on every response ------------------------------------


def _allowed(value: str, allowed: set[str]) -> bool:
    """Is a Host or Origin allowed: named exactly, or by its name with any port (`cos.example.com:*`)?"""
    if value in allowed and not value.endswith(":*"):  # a pattern is not a host
        return True
    name, colon, port = value.rpartition(":")
    return bool(colon) and port.isdigit() and f"{name}:*" in allowed


class _Guard:
    """Refuse a foreign Host or Origin, or a path outside the console's prefix, before routing; and put the
    security headers on every response. Inside the prefix, the app sees it as its root_path."""

    def __init__(self, app: ASGIApp, hosts: set[str], origins: set[str], prefix: str = "") -> None:
        self._app = app
        self._hosts = hosts
        self._origins = origins
        self._prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, secured)
            return
        if self._prefix:
            path = str(scope["path"])
            if path != self._prefix and not path.startswith(self._prefix + "/"):
                await Response(NOT_HERE, status_code=404, media_type="text/plain")(scope, receive, secured)
                return
            scope = {**scope, "root_path": self._prefix}
        await self._app(scope, receive, secured)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        if not _allowed(headers.get("host", "").lower(), self._hosts):
            return Response(FOREIGN_HOST, status_code=421, media_type="text/plain")
        origin = headers.get("origin")
        if origin is not None and origin != "null" and not _allowed(origin.lower(), self._origins):
            return Response(FOREIGN_ORIGIN, status_code=403, media_type="text/plain")
        site = headers.get("sec-fetch-site")
        if site in ("cross-site", "same-site") and not self._hand_off(scope, headers):  # GETs have effects too
            return Response(FOREIGN_ORIGIN, status_code=403, media_type="text/plain")
        return None

    def _hand_off(self, scope: Scope, headers: Headers) -> bool:
        """The one cross-site request let in: a browser opened on the login link by a file:// hand-off page.

        A file:// page has no origin, so the browser calls its navigation cross-site. Only a top-level GET
        navigation to the login path passes, and it carries both secrets (the path prefix, the one-time
        token); the login answers with a page of the console's own that continues same-origin.
        """
        return (
            headers.get("sec-fetch-site") == "cross-site"
            and scope["method"] == "GET"
            and str(scope["path"]) == f"{self._prefix}/login"
            and headers.get("sec-fetch-mode") == "navigate"
            and headers.get("sec-fetch-dest") == "document"
        )


# --- the app -----------------------------------------------------------------------------------------


class _Console(ConsoleCore):
    """The console's first pages (Today, Goals, Inbox, Outcomes), its login and its decisions."""

    # --- pages ---

    async def today(self, request: Request) -> Response:
        session = await self.session(request)
        # Only the operator looking moves the mark: a top-level page, not a subresource or a prefetch.
        looked = request.method == "GET" and request.headers.get("sec-fetch-dest", "document") == "document"
        context = await self._today(session, mark_seen=looked)
        return self.page(request, "today.html", session, {**context, "title": "Today", "page": "today"})

    async def goals_page(self, request: Request) -> Response:
        session = await self.session(request)
        async with self.store.read() as tx:
            ws = await workspace.get(tx)
            today = local_date(tx.now, ws.timezone)
            shown = await goals.list_goals(tx)
            charts = {
                kr.id: console_charts.chart(kr, await goals.key_result_history(tx, kr.id), today)
                for goal in shown
                for kr in goal.key_results
            }
        context = {"workspace": ws, "today": today, "goals": shown, "charts": charts, "title": "Goals", "page": "goals"}
        return self.page(request, "goals.html", session, context)

    async def inbox_page(self, request: Request) -> Response:
        """The inbox as a table, filtered by status and agency (a GET form); read only, it moves no mark."""
        session = await self.session(request)
        sent = console_tables.filters(request.query_params, console_tables.TASK_FILTERS)
        tasks: list[inbox.TaskView] = []
        error = None
        async with self.store.read() as tx:
            ws = await workspace.get(tx)
            names = [agency.name for agency in (await agencies.roster(tx)).agencies]
            try:
                tasks = await inbox.list_tasks(
                    tx, status=sent.get("status"), agency=sent.get("agency"), limit=console_tables.INBOX_ROWS
                )
            except ChiefOfStaffError as refused:  # a filter the domain refuses: its message, on the page
                error = str(refused)
        context = {
            "workspace": ws,
            "tasks": tasks,
            "sent": sent,
            "statuses": console_tables.TASK_STATUSES,
            "agencies": names,
            "error": error,
            "most": console_tables.INBOX_ROWS,
            "short": console_tables.short,
            "title": "Inbox",
            "page": "inbox",
        }
        return self.page(request, "inbox.html", session, context, status=200 if error is None else 400)

    async def outcomes_page(self, request: Request) -> Response:
        """The outcome log as a table, filtered (a GET form) and paged newest first; read only."""
        session = await self.session(request)
        sent = console_tables.filters(request.query_params, console_tables.OUTCOME_FILTERS)
        before = request.query_params.get("before") or None
        shown = outcomes.OutcomePage(outcomes=[], next=None)
        error = None
        async with self.store.read() as tx:
            ws = await workspace.get(tx)
            names = [agency.name for agency in (await agencies.roster(tx)).agencies]
            try:
                shown = await console_tables.outcome_page(tx, sent, before=before, limit=console_tables.OUTCOME_PAGE)
            except ChiefOfStaffError as refused:
                error = str(refused)
        query = urlencode(sent)
        context = {
            "workspace": ws,
            "outcomes": shown.outcomes,
            "next": None if shown.next is None else urlencode({**sent, "before": shown.next}),
            "csv": query,
            "first": query if before is not None else None,
            "sent": sent,
            "results": console_tables.RESULTS,
            "agencies": names,
            "error": error,
            "most": console_tables.CSV_MAX_ROWS,
            "local": lambda stamp: console_tables.local_time(stamp, ws.timezone),
            "moved": console_tables.moved,
            "title": "Outcomes",
            "page": "outcomes",
        }
        return self.page(request, "outcomes.html", session, context, status=200 if error is None else 400)

    async def outcomes_csv(self, request: Request) -> Response:
        """The outcome log as CSV with the page's filters, newest first, at most CSV_MAX_ROWS rows."""
        await self.session(request)
        sent = console_tables.filters(request.query_params, console_tables.OUTCOME_FILTERS)
        async with self.store.read() as tx:
            rows, more = await console_tables.outcomes_for_csv(tx, sent)
        headers = {
            "content-disposition": 'attachment; filename="outcomes.csv"',
            # Say when the cap cut the log short: the newest rows are in the file, the rest are not.
            "x-rows-left-out": "yes" if more else "no",
        }
        return Response(console_tables.outcomes_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)

    async def decision_page(self, request: Request) -> Response:
        """A decision's own address (a login link may land there): the Today page, at that decision."""
        await self.session(request)
        anchor = "".join(ch for ch in request.path_params["decision"] if ch.isalnum()).upper()
        return RedirectResponse(f"{self.root(request)}/#{anchor}", status_code=303)

    # --- acts ---

    async def login(self, request: Request) -> Response:
        if request.method != "GET":  # a HEAD (a prefetch, a link preview) leaves the one-time link unused
            return self.page(request, "message.html", None, {"title": "Log in", "message": LOGIN_BY_GET})
        try:
            async with self.store.write() as tx:
                opened = await console_access.redeem_login(tx, request.query_params.get("token", ""))
        except AccessRefused as refused:
            raise Refused(401, "This login link does not open the console", str(refused)) from None
        landing = self.root(request) + opened.page
        response: Response = RedirectResponse(landing, status_code=303)
        if request.headers.get("sec-fetch-site") == "cross-site":
            # Every step of a redirect chain that began cross-site is cross-site too (the guard would refuse
            # the landing), so continue from a page of the console's own: the next navigation is same-origin.
            response = self.page(request, "continue.html", None, {"title": "Logged in", "landing": landing})
        response.set_cookie(
            self.cookie,
            opened.secret,
            max_age=int(console_access.SESSION_TTL.total_seconds()),
            path=self.root(request) + "/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request) -> Response:
        session = await self.session(request)
        await self.checked_form(request, session)
        async with self.store.write() as tx:
            await console_access.end_session(tx, session)
        self.flashes.pop(session.id, None)
        self.once.pop(session.id, None)
        context = {"title": "Logged out", "message": f"You are logged out. {console_access.AGAIN}"}
        response = self.page(request, "message.html", None, context)
        response.delete_cookie(
            self.cookie, path=self.root(request) + "/", secure=self.secure, httponly=True, samesite="strict"
        )
        return response

    async def decide(self, request: Request) -> Response:
        session = await self.session(request)
        form = await self.checked_form(request, session)
        verb = first(form, "action")
        if verb not in ("approve", "deny"):
            raise Refused(400, "Nothing was decided", "Send action=approve or action=deny; nothing was changed.")
        try:
            async with self.store.write() as tx:
                view = await deciding.decide(
                    tx,
                    session.actor,
                    request.path_params["decision"],
                    approve=verb == "approve",
                    note=first(form, "note"),
                    task_on_deny=first(form, "task_on_deny", "reopen"),
                )
        except ChiefOfStaffError as refused:
            self.flashes[session.id] = ("refused", str(refused))
        else:
            self.flashes[session.id] = ("done", f"{view.id} {view.status}. {view.next_step}")
        return RedirectResponse(f"{self.root(request)}/", status_code=303)

    async def stylesheet(self, _: Request) -> Response:
        return Response(static("console.css"), media_type="text/css")

    async def icon(self, _: Request) -> Response:
        return Response(static("icon.svg"), media_type="image/svg+xml")

    # --- reading the Today page ---

    async def _today(self, session: ConsoleSession, *, mark_seen: bool) -> dict[str, Any]:
        """Today's page, as the operator's brief reads it: the operator opening it moves their mark."""
        if not mark_seen:
            async with self.store.read() as tx:
                return await self._today_in(tx, session, mark_seen=False)
        try:
            async with self.store.write() as tx:
                await brief.housekeeping(tx, SYSTEM)  # the server's chores, whoever happens to look
                return await self._today_in(tx, session, mark_seen=True)
        except WorkspaceSealed as sealed:
            async with self.store.read() as tx:
                return {**await self._today_in(tx, session, mark_seen=False), "sealed": str(sealed)}

    async def _today_in(self, tx: Tx, session: ConsoleSession, *, mark_seen: bool) -> dict[str, Any]:
        ws = await workspace.get(tx)
        view = await brief.build_brief(tx, viewers.OPERATOR_VIEWER, mark_seen=mark_seen)
        pending = await decisions.list_decisions(tx, status="pending", limit=decisions.MAX_LIST)
        unfinished = await inbox.list_tasks(tx, limit=inbox.MAX_LIST)
        tasks = {item.task_id: await inbox.get_task(tx, item.task_id) for item in pending if item.task_id}
        return {
            "workspace": ws,
            "brief": view,
            "changes": brief.change_summary(view.changes, ws.timezone),
            "pending": [(item, await deciding.describe_change(tx, item)) for item in pending],
            "tasks": tasks,
            "overdue": [task for task in unfinished if task.due_on is not None and task.due_on < view.today],
            "local": lambda stamp: console_tables.local_time(stamp, ws.timezone),
            "sealed": None,
        }


def build_console_app(
    store: Store, *, base_url: str, allowed_hosts: Sequence[str] = (), allowed_origins: Sequence[str] = ()
) -> ASGIApp:
    """The console for `store`'s workspace, answering at `base_url` (and any host and origin allowed besides).

    The path of `base_url` (e.g. `/c/<secret>`) is the console's prefix: it answers only under it (404
    elsewhere), and its cookie is scoped to it. The path is matched against the request's full path, so
    the app also works mounted by a parent at a public URL whose path ends in the prefix.
    """
    console = _Console(store, cookie_name(store.path), secure=base_url.startswith("https://"))

    route = console.route
    app = Starlette(
        routes=[
            route("/", console.today),
            route("/goals", console.goals_page),
            route("/inbox", console.inbox_page),
            route("/outcomes", console.outcomes_page),
            route("/outcomes.csv", console.outcomes_csv),
            route("/login", console.login),
            route("/logout", console.logout, "POST"),
            route("/decisions/{decision}", console.decision_page),
            route("/decisions/{decision}", console.decide, "POST"),
            route("/static/console.css", console.stylesheet),
            route("/static/icon.svg", console.icon),
            *console_authority.routes(console),
            *console_roster.routes(console),
            *console_review.routes(console),
            *console_audit.routes(console),
            *console_settings.routes(console),
        ]
    )
    hosts, origins = _addresses(base_url, allowed_hosts, allowed_origins)
    return _Guard(app, hosts, origins, urlsplit(base_url).path.rstrip("/"))


# --- serving -----------------------------------------------------------------------------------------


class _ConsoleServer(uvicorn.Server):
    """uvicorn, minus what does not fit a console: in a server process it leaves the signals alone (they
    are the process's), and on its own it stops on SIGINT or SIGTERM without re-raising them afterwards,
    so the command cleans up (its running-console file, the store) and returns."""

    def __init__(self, config: uvicorn.Config, *, embedded: bool) -> None:
        super().__init__(config)
        self._embedded = embedded

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self._embedded or threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {number: signal.signal(number, self.handle_exit) for number in stops}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _server(app: ASGIApp, *, embedded: bool) -> _ConsoleServer:
    # No access log (a login link's token is in its URL), no lifespan (the store is the caller's), and
    # no proxy headers: nothing in front of a loopback console may say who the client is.
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        ws="none",
        timeout_graceful_shutdown=5,
    )
    return _ConsoleServer(config, embedded=embedded)


@dataclass
class ConsoleHandle:
    """A console serving a workspace: in this process, or in another that announced itself for the same file."""

    url: str
    store: Store
    _server: _ConsoleServer | None = None
    _task: asyncio.Task[None] | None = None
    _socket: socket.socket | None = None

    async def login_url(self, actor: Actor, *, page: str = "/") -> str:
        """A fresh one-time login link, landing on `page`; minted (and audited) for `actor` in the workspace.

        The link is a secret: hand it to the operator's browser or terminal only, never to a tool result or a log.
        """
        async with self.store.write() as tx:
            secret = await console_access.mint_login(tx, actor, page=page)
        return f"{self.url}/login?token={secret}"

    @property
    def running(self) -> bool:
        """True while the console answers (one in another process is taken to, while it is announced)."""
        if self._task is not None:
            return not self._task.done()
        return running_console_url(self.store.path) == self.url

    async def close(self) -> None:
        """Stop a console started in this process (one in another process is left alone)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with anyio.fail_after(START_TIMEOUT), contextlib.suppress(Exception):
            await self._task
        if self._socket is not None:
            self._socket.close()
        withdraw(self.store.path)
        if _EMBEDDED.get(self.store.path) is self:
            del _EMBEDDED[self.store.path]


_EMBEDDED: dict[Path, ConsoleHandle] = {}
_STARTING = anyio.Lock()


async def ensure_console(store: Store, options: ConsoleOptions | None = None) -> ConsoleHandle:
    """The console for `store`'s workspace, started in this process (on this event loop) if none is running.

    A console already serving the same workspace file (this process's, or another's that announced itself,
    such as `chief-of-staff console`) is used instead: its sessions live in the same file, so a link minted
    here opens it. Call `await handle.login_url(actor, page=...)` for a fresh one-time link each time.
    """
    async with _STARTING:
        here = _EMBEDDED.get(store.path)
        if here is not None:
            if here.store is store and here.running:
                return here
            await here.close()  # its server stopped, or it serves a store that was closed and reopened since
        elsewhere = running_console_url(store.path)
        if elsewhere is not None:
            return ConsoleHandle(elsewhere, store)
        chosen = options or ConsoleOptions()
        sock = listen(chosen.host, chosen.port)
        url = _with_secret_prefix(chosen.base_url(sock.getsockname()[1]))
        app = build_console_app(
            store, base_url=url, allowed_hosts=chosen.allowed_hosts, allowed_origins=chosen.allowed_origins
        )
        server = _server(app, embedded=True)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        try:
            await _started(server, task.done)
        except BaseException:
            server.should_exit = True
            sock.close()
            raise
        handle = ConsoleHandle(url, store, server, task, sock)
        _EMBEDDED[store.path] = handle
        announce(store.path, url)
        return handle


async def _started(server: uvicorn.Server, stopped: Callable[[], bool]) -> None:
    with anyio.fail_after(START_TIMEOUT):
        while not server.started:
            if stopped():
                raise ChiefOfStaffError("The console stopped while starting; see the server's log on stderr.")
            await anyio.sleep(0.01)  # readiness, not timing: uvicorn offers no event to wait on


async def serve_console(
    store: Store, options: ConsoleOptions, ready: Callable[[ConsoleHandle], Awaitable[None]]
) -> None:
    """Serve the console until SIGINT or SIGTERM; `ready` runs once it answers (to mint and hand out a link).

    While it runs, the console announces itself beside the workspace file (`<db>.console.json`, 0600:
    its URL and process id), so `chief-of-staff console --link` and the chat's open_console find it.
    """
    sock = listen(options.host, options.port)
    with sock:
        url = _with_secret_prefix(options.base_url(sock.getsockname()[1]))
        app = build_console_app(
            store, base_url=url, allowed_hosts=options.allowed_hosts, allowed_origins=options.allowed_origins
        )
        server = _server(app, embedded=False)
        stopped = anyio.Event()

        async def run() -> None:
            try:
                await server.serve(sockets=[sock])
            finally:
                stopped.set()

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(run)
                await _started(server, stopped.is_set)
                announce(store.path, url)
                await ready(ConsoleHandle(url, store))
        finally:
            withdraw(store.path)


# --- the running console, announced beside the workspace ------------------------------------------------


def state_path(db_path: Path) -> Path:
    """Where a running console of this workspace says where it is: beside the file, `<db>.console.json`."""
    return db_path.with_name(db_path.name + STATE_SUFFIX)


def announce(db_path: Path, url: str, *, listening_port: int | None = None) -> None:
    """Say where this process serves the workspace's console: a new 0600 file of this user, every time.

    `listening_port`: the console is mounted on `serve --http` and reached at `url`, a public address
    (a proxy, TLS) that is not the loopback socket this process listens on; that socket's port is kept
    so `running_console_url` can still ask the kernel that this process holds it.
    """
    state: dict[str, object] = {"url": url, "pid": os.getpid()}
    if listening_port is not None:
        state["listening_port"] = listening_port
    console_local.write_private(state_path(db_path), json.dumps(state) + "\n")


def withdraw(db_path: Path) -> None:
    """Take back this process's announcement (another process's, or a file that is not ours, is left as it is)."""
    path = state_path(db_path)
    state = console_local.read_private_json(path)
    if state is not None and state.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def running_console_url(db_path: Path) -> str | None:
    """The URL of a console that serves this workspace now, or None: then start one, never mint a link for it.

    The announcement is believed only if it is this user's own private file (console_local.read_private_json),
    names an http URL on a loopback name with an explicit port, and its process (alive, this user's) holds
    the socket listening on that port (console_local.holds_listener). A forged, symlinked, loose or stale
    file, or one naming any other host, is ignored: a login link minted for it would go to whoever listens.
    The one other address believed is that of a console mounted on `serve --http` (`listening_port` in
    the file): the public URL the operator gave that server, when its process holds its listening port.
    """
    state = console_local.read_private_json(state_path(db_path))
    if state is None:
        return None
    url, pid, mounted = state.get("url"), state.get("pid"), state.get("listening_port")
    if not isinstance(url, str) or not _an_int(pid) or (mounted is not None and not _an_int(mounted)):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port if mounted is None else mounted
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return None
    if mounted is None and (parts.scheme != "http" or parts.hostname not in _ANNOUNCED_HOSTS):
        return None
    if mounted is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
        return None
    if not isinstance(port, int) or not 0 < port < 65536:
        return None
    assert isinstance(pid, int)
    if not processes.is_alive(pid) or not console_local.holds_listener(pid, port):
        return None
    return url


def _an_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ANNOUNCED_HOSTS = ("127.0.0.1", "::1", "localhost")  # urlsplit's hostname: "[::1]" reads as "::1"

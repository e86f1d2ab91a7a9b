"""What every console page is made with: the session behind a request, a checked form, a page, a refusal.

chief_of_staff.http.console builds the app (the guard, the routes, serving); each page lives in a module
of its own (console_authority, console_review, ...) as plain functions of a `ConsoleCore` and a request,
listed by that module's `routes(core)`. Every act goes through the domain's own functions with the
session's actor (`operator:console-N` on the verified channel); a page writes no business SQL.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal
from urllib.parse import parse_qsl

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import AccessRefused, ChiefOfStaffError, WorkspaceSealed
from chief_of_staff.core.fields import money
from chief_of_staff.domain import console_access
from chief_of_staff.domain.console_access import ConsoleSession
from chief_of_staff.domain.pace import way
from chief_of_staff.http import console_charts, console_tables

MAX_FORM_BYTES = 64 * 1024
MAX_COOKIE_VALUES = 4  # the session cookie's values tried, in the order sent
# An amount as people type one: thousands grouped by commas or not, at most two decimals.
_AMOUNT = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3}){1,5}|[0-9]{1,15})(?:\.[0-9]{1,2})?")
MAX_FORM_FIELDS = 200  # the review's proposal checkboxes are one field each
NO_CSRF = (
    "This form did not come from your console session (its CSRF token is missing or wrong), so nothing "
    "was changed. Reload the page and try again."
)

# Fields a refused form does not bring back: its credentials and the bindings to what the page showed, and
# a box that confirms a widening (it is ticked anew on the page that shows what the act does, never carried
# over to a page drawn later; a hand-over's list of the grants shown is such a binding too).
NOT_KEPT = frozenset({"csrf", "seal", "seen", "version", "confirm", "covered_by"})

SHOWN_ONCE = (
    "A secret is shown once, on the page that made it, and cannot be shown again; make a new one if it was lost."
)

Flash = tuple[Literal["done", "refused"], str]
Form = dict[str, list[str]]
Endpoint = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    """A request the console turns away with a page of its own: the status and what to do."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("chief_of_staff.http", "templates"),
        autoescape=True,  # every page escapes what it shows: agency text is data from outside
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["number"] = console_charts.number
    env.filters["pace"] = console_charts.PACE_WORDS.__getitem__
    env.globals["way"] = way
    return Jinja2Templates(env=env)


def static(name: str) -> bytes:
    return resources.files("chief_of_staff.http").joinpath("static", name).read_bytes()


@dataclass
class ConsoleCore:
    """The console's state: the store, the cookie, the templates, each session's flash message, and the form
    a refusal sends back to be filled in again."""

    store: Store
    cookie: str
    secure: bool
    templates: Jinja2Templates = field(default_factory=_templates)
    flashes: dict[int, Flash] = field(default_factory=dict)
    # A refused form's values, by session, for the next page that draws that form: what was typed is not lost.
    kept: dict[int, tuple[str, Form]] = field(default_factory=dict)
    # A page holding a secret (a new token's), kept in this process for the one GET that follows its post.
    once: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    async def session(self, request: Request) -> ConsoleSession:
        """The request's live session, or a 401 page saying how to log in; its last use is kept current."""
        sent = self._cookie_values(request) or [""]
        async with self.store.read() as tx:
            for index, secret in enumerate(sent):
                try:
                    session = await console_access.session_of(tx, secret)
                    break
                except AccessRefused:
                    if index == len(sent) - 1:
                        raise
        if console_access.seen_is_stale(session, self.store.clock.now()):
            with contextlib.suppress(WorkspaceSealed):  # bookkeeping: a sealed workspace still shows its pages
                async with self.store.write() as tx:
                    await console_access.mark_seen(tx, session)
        return session

    def _cookie_values(self, request: Request) -> list[str]:
        """Every value the browser sent under the session cookie's name, in its order (at most a few).

        Browsers share cookies across a host's ports, so a page on another port of 127.0.0.1 can set one
        of the same name (Path=/); Starlette would keep only the last value, and that stray one would log
        the operator out. Any of the values that is a live session will do.
        """
        found = []
        for header in request.headers.getlist("cookie"):
            for pair in header.split(";"):
                name, equals, value = pair.strip().partition("=")
                if equals and name == self.cookie:
                    found.append(value.strip().strip('"'))
        return found[:MAX_COOKIE_VALUES]

    async def checked_form(self, request: Request, session: ConsoleSession) -> dict[str, list[str]]:
        """The posted form (every value of each field), once its CSRF token is the session's own; 403 otherwise."""
        form = await _form(request)
        sent = (form.get("csrf") or [""])[0].encode("utf-8", "surrogatepass")
        if not secrets.compare_digest(sent, session.csrf.encode("ascii")):
            raise Refused(403, "Nothing was changed", NO_CSRF)
        return form

    def page(
        self, request: Request, name: str, session: ConsoleSession | None, context: dict[str, Any], status: int = 200
    ) -> Response:
        if session is not None:
            self.once.pop(session.id, None)  # a secret not fetched at once is not kept for later
        kept = None if session is None else self.kept.pop(session.id, None)
        shared = {
            "root": self.root(request),
            "csrf": None if session is None else session.csrf,
            "flash": None if session is None else self.flashes.pop(session.id, None),
            "short": console_tables.short,
            "typed": Typed(kept),
        }
        return self.templates.TemplateResponse(request, name, {**shared, **context}, status_code=status)

    def root(self, request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def done(self, request: Request, session: ConsoleSession, message: str, page: str) -> Response:
        """After an act: say what happened on the next page the operator sees (303, so a reload repeats nothing)."""
        self.flashes[session.id] = ("done", message)
        return RedirectResponse(self.root(request) + page, status_code=303)

    def refused(
        self,
        request: Request,
        session: ConsoleSession,
        message: str,
        page: str,
        *,
        keep: tuple[str, Form] | None = None,
    ) -> Response:
        """After an act the domain refused: its message (what to send instead) on the page, nothing changed.

        `keep`: the form's name and what was sent, so that the page draws that form filled in as it was
        (Typed), and the operator corrects one field instead of typing every one again.
        """
        self.flashes[session.id] = ("refused", message)
        if keep is not None:
            name, form = keep
            self.kept[session.id] = (name, {key: values for key, values in form.items() if key not in NOT_KEPT})
        return RedirectResponse(self.root(request) + page, status_code=303)

    def show_once(
        self, request: Request, session: ConsoleSession, name: str, context: dict[str, Any], path: str
    ) -> Response:
        """After an act that made a secret: 303 to `path`, whose next GET shows the page once (`shown_once`).

        The post is answered with a redirect, so a reload of the secret's page re-sends nothing (no second
        token); the secret rides in this process's memory, never in the URL, and is gone once shown.
        """
        self.once[session.id] = (name, context)
        return RedirectResponse(self.root(request) + path, status_code=303)

    def shown_once(self, request: Request, session: ConsoleSession, back: str) -> Response:
        """The page `show_once` kept, this once; after that, back to `back` saying it cannot be shown again."""
        if request.method != "GET" or request.headers.get("sec-fetch-dest", "document") != "document":
            # A HEAD, a prefetch or a subresource is not the operator looking: it must not use the secret up.
            return Response(status_code=204)
        held = self.once.pop(session.id, None)
        if held is None:
            return self.refused(request, session, SHOWN_ONCE, back)
        name, context = held
        return self.page(request, name, session, context)

    def refused_page(self, request: Request, refused: Refused) -> Response:
        context = {"title": refused.title, "message": refused.message}
        return self.page(request, "message.html", None, context, status=refused.status)

    def route(self, path: str, endpoint: Endpoint, method: str = "GET") -> Route:
        """A route whose refusals (not logged in, no CSRF token, a bad form) become pages of their own."""
        return Route(path, _handled(self, endpoint), methods=[method])


class Typed:
    """What a refused form held, for the templates: a field's value as typed, or the page's own value.

    `typed.value("new-grant", "cap", "")` is what was typed in the refused "new-grant" form, or "" when
    that form was not the one refused. Values are drawn by the templates, which escape them.
    """

    def __init__(self, kept: tuple[str, Form] | None) -> None:
        self.form, self.values = kept if kept is not None else ("", {})

    def holds(self, form: str) -> bool:
        return bool(form) and form == self.form

    def value(self, form: str, name: str, default: object = "") -> object:
        if not self.holds(form):
            return default
        return first(self.values, name)

    def filled(self, form: str, defaults: dict[str, str]) -> dict[str, str]:
        """A form's values as the page would draw them (`defaults`), with what was typed where it was refused."""
        if not self.holds(form):
            return defaults
        return {name: first(self.values, name) for name in defaults}

    def checked(self, form: str, name: str, value: str, default: bool = False) -> bool:
        """Whether a checkbox (or an option) was chosen in the refused form; `default` for any other form."""
        if not self.holds(form):
            return default
        return value in self.values.get(name, [])


def cents_of(text: str) -> int | None:
    """An amount typed in the currency ("12.50", "1,250", "7") in whole cents; None if it is not one."""
    if not _AMOUNT.fullmatch(text):
        return None
    whole, _, part = text.replace(",", "").partition(".")
    return int(whole) * 100 + int(part.ljust(2, "0"))


def first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    """A form field's first value (a field sent twice is read once), or `default` when it was not sent."""
    values = form.get(name)
    return values[0] if values else default


async def _form(request: Request) -> dict[str, list[str]]:
    """An urlencoded form of bounded size: every value of each field, in order."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":  # not one of the console's forms, so not its token either
        raise Refused(403, "Nothing was changed", NO_CSRF)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "Nothing was changed", "That form is too large; nothing was changed.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # not UTF-8, or too many fields
        raise Refused(400, "Nothing was changed", "That form could not be read; nothing was changed.") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _handled(core: ConsoleCore, endpoint: Endpoint) -> Endpoint:
    async def handle(request: Request) -> Response:
        try:
            return await endpoint(request)
        except AccessRefused as refused:
            return core.refused_page(request, Refused(401, "Log in to the console", str(refused)))
        except Refused as refused:
            return core.refused_page(request, refused)
        except ChiefOfStaffError as refused:  # e.g. a workspace that refuses changes: its message says what to do
            status = 503 if isinstance(refused, WorkspaceSealed) else 400
            return core.refused_page(request, Refused(status, "The console could not do that", str(refused)))

    return handle

"""The console's Settings page: the workspace's settings, the access tokens, and the webhook endpoints.

Every act goes through the domain's own functions with the session's actor (`operator:console-N` on the
verified channel), as the command line's do: chief_of_staff.domain.workspace.update_settings (and
chief_of_staff.notify.events.set_daily_brief_at), chief_of_staff.domain.tokens, and
chief_of_staff.notify.endpoints. A refusal comes back as the page's message, and nothing changes.

A token's secret and an endpoint's signing secret exist once, in the domain's answer to the act that made
them: the create post answers with a redirect to `/settings/created`, whose next GET shows that answer once
(console_kit.show_once: the page is held in this process's memory for that one GET, so a reload makes no
second token and shows nothing), and the secret is in no flash message, URL, log or audit row. The Settings
page lists tokens and endpoints afterwards without them, and cannot show them again.
"""

from __future__ import annotations

import hashlib
import json
import re
import zoneinfo
from collections.abc import Awaitable, Callable
from functools import cache, partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chief_of_staff.core import ids
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import MAX_CENTS, money
from chief_of_staff.domain import agencies, doctor, outbox, tokens, workspace
from chief_of_staff.domain.tokens import TokenView
from chief_of_staff.domain.workspace import SettingsChange
from chief_of_staff.http import console_tables
from chief_of_staff.http.console_kit import ConsoleCore, Endpoint, cents_of, first
from chief_of_staff.notify import delivery, endpoints, events
from chief_of_staff.notify.delivery import DeliveryOutcome
from chief_of_staff.notify.endpoints import EndpointView

PAGE = "/settings"
# The form sends every setting; sent from a page opened before another change, it would quietly undo it.
MOVED_SINCE = (
    "The settings changed since this page was opened (in chat, at a terminal or in another tab), so nothing "
    "was changed: saving them would have put back what was there. Reload Settings and make your change again."
)
CREATED = "/settings/created"  # where a new secret is shown, once
_WHOLE = re.compile(r"[0-9]{1,6}")
# What each webhook event tells the operator, beside its checkbox.
EVENT_WORDS = {
    "decision.opened": "a decision waits for you",
    "decision.expiring": "a decision is about to expire",
    "brief.daily": "the daily brief",
    "anomaly.found": "something looks wrong (an anomaly)",
    "grant.changed": "a grant was given, changed or revoked",
}
FORMAT_WORDS = (("standard", "signed JSON"), ("slack", "a readable message"))
# The settings' names as the page labels them: what a change and a refusal say.
SETTING_LABELS = {
    "name": "Name",
    "timezone": "Time zone",
    "currency": "Currency",
    "chat_allowance_cents": "Chat allowance",
    "chat_window_days": "Chat allowance window",
    "daily_brief_at": "Daily brief at",
}


def routes(core: ConsoleCore) -> list[Route]:
    def bound(endpoint: Callable[[ConsoleCore, Request], Awaitable[Response]]) -> Endpoint:
        return partial(endpoint, core)

    return [
        core.route(PAGE, bound(settings_page)),
        core.route(CREATED, bound(created_page)),
        core.route(f"{PAGE}/workspace", bound(change_workspace), "POST"),
        core.route(f"{PAGE}/tokens", bound(create_token), "POST"),
        core.route(f"{PAGE}/tokens/{{token}}/revoke", bound(revoke_token), "POST"),
        core.route(f"{PAGE}/webhooks", bound(add_webhook), "POST"),
        core.route(f"{PAGE}/webhooks/{{endpoint}}/test", bound(test_webhook), "POST"),
        core.route(f"{PAGE}/webhooks/{{endpoint}}/remove", bound(remove_webhook), "POST"),
        core.route(f"{PAGE}/webhooks/{{endpoint}}/rotate", bound(rotate_webhook_secret), "POST"),
    ]


# --- the page ------------------------------------------------------------------------------------------


async def settings_page(core: ConsoleCore, request: Request) -> Response:
    """The settings as a form, every token (never a secret), every endpoint with its delivery health, and the
    risks `chief-of-staff doctor` names that are cheap to find (unbounded grants, operator tokens that never
    expire, failing webhooks, a workspace file others can read); the audit walk stays on the Audit page."""
    session = await core.session(request)
    async with core.store.read() as tx:
        ws = await workspace.get(tx)
        shown_tokens = await tokens.list_tokens(tx, include_inactive=True)
        shown_endpoints = await endpoints.list_endpoints(tx)
        roster = await agencies.roster(tx)
        risks = await doctor.authority_risks(tx) + doctor.file_risks(core.store)
        as_of = console_tables.local_time(tx.now_text, ws.timezone)
    context = {
        "workspace": ws,
        "as_of": as_of,
        "risks": risks,
        "file": str(core.store.path),
        "allowance": money(ws.chat_allowance_cents),
        "seen": settings_seen(ws),
        "zones": time_zones(),
        "max_window": workspace.MAX_CHAT_WINDOW_DAYS,
        "tokens": shown_tokens,
        "holders": holders(roster),
        "max_expiry": tokens.MAX_EXPIRY_DAYS,
        "endpoints": shown_endpoints,
        "events": [(event, EVENT_WORDS.get(event, event)) for event in outbox.EVENTS],
        "formats": FORMAT_WORDS,
        "holder_of": holder_words,
        "local": lambda stamp: "never" if stamp is None else console_tables.local_time(stamp, ws.timezone),
        "title": "Settings",
        "page": "settings",
    }
    return core.page(request, "settings.html", session, context)


@cache
def time_zones() -> list[str]:
    """Every IANA zone this machine knows, for the time zone field's suggestions."""
    return sorted(zoneinfo.available_timezones())


def holders(roster: agencies.RosterView) -> list[tuple[str, str]]:
    """Whom a new token may act for, as the create form's choices: the operator, each active agency and role."""
    choices = [("operator", "the operator")]
    for agency in roster.agencies:
        if agency.status != "active":
            continue
        choices.append((agency.id, f"{agency.name}, every role"))
        choices += [
            (f"{agency.id}/{role.id}", f"{agency.name} / {role.name}")
            for role in agency.roles
            if role.status == "active"
        ]
    return choices


def holder_words(token: TokenView) -> str:
    """Whom a token acts for, in words."""
    if token.kind == "operator":
        return "the operator"
    return f"{token.agency} / {token.role}" if token.role else f"{token.agency}, every role"


# --- the workspace's settings --------------------------------------------------------------------------


async def change_workspace(core: ConsoleCore, request: Request) -> Response:
    """Change the settings the form states; what is as it was stays, and a change is one audit row."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            before = await workspace.get(tx)
            # Stale first, before the fields are read: a stale form refused for a typo would otherwise come
            # back (kept) under the page's fresh digest, and saving it once corrected would put back what
            # was there without a word.
            if first(form, "seen") != settings_seen(before):
                raise Conflict(MOVED_SINCE)
            wanted = SettingsReader(form).settings()
            brief_at = wanted.pop("daily_brief_at")
            change = await workspace.update_settings(tx, session.actor, **wanted)
            if brief_at != before.daily_brief_at:
                await events.set_daily_brief_at(tx, session.actor, brief_at)
    except ChiefOfStaffError as refused:
        # A form from before another change is not brought back: it would put back what was there.
        kept = None if str(refused) == MOVED_SINCE else ("workspace", form)
        return core.refused(request, session, str(refused), PAGE, keep=kept)
    return core.done(request, session, settings_said(change, before.daily_brief_at, brief_at), PAGE)


def settings_seen(ws: workspace.Workspace) -> str:
    """The settings as the page showed them, as a short digest the form sends back (see MOVED_SINCE)."""
    shown = [ws.name, ws.timezone, ws.currency, ws.chat_allowance_cents, ws.chat_window_days, ws.daily_brief_at]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()[:16]


def settings_said(change: SettingsChange, brief_before: str, brief_after: str) -> str:
    """What a change of settings did, setting by setting, with the domain's notes after."""
    now = change.workspace.currency
    was = change.changed.get("currency", (now, now))[0]  # an amount before reads in the currency before
    moved = [
        f"{SETTING_LABELS[key]}: {_setting(key, old, was)} → {_setting(key, new, now)}"
        for key, (old, new) in change.changed.items()
    ]
    if brief_after != brief_before:
        moved.append(f"{SETTING_LABELS['daily_brief_at']}: {brief_before} → {brief_after}")
    if not moved:
        return "Nothing changed: the settings already were these."
    return "\n".join(["Settings changed:", *(f"- {line}" for line in moved), *change.notes])


def _setting(key: str, value: Any, currency: str) -> str:
    if key == "chat_allowance_cents":
        return money(value, currency)
    if key == "chat_window_days":
        return f"{value} days"
    return str(value)


class SettingsReader:
    """The settings form's fields as update_settings' keywords. Each field it cannot read is named by its
    label, all at once (InvalidInput), before anything changes; the domain checks the rest."""

    def __init__(self, form: dict[str, list[str]]) -> None:
        self.form = form
        self.problems: list[str] = []

    def text(self, name: str) -> str:
        return first(self.form, name).strip()

    def allowance(self) -> int | None:
        """The chat allowance, typed as an amount in the workspace currency ("100.00"), in whole cents."""
        text = self.text("chat_allowance")
        if text.startswith("-"):
            self._problem("chat_allowance_cents", f"send zero or more, not {_quoted(text)}.")
        elif (cents := cents_of(text)) is None:
            self._problem("chat_allowance_cents", f"send an amount like 100.00, not {_quoted(text)}.")
        elif cents <= MAX_CENTS:
            return cents
        else:
            self._problem("chat_allowance_cents", f"send at most {money(MAX_CENTS)}.")
        return None

    def window(self) -> int | None:
        """The chat allowance's window in whole days (the domain checks its range)."""
        text = self.text("chat_window_days")
        if _WHOLE.fullmatch(text):
            return int(text)
        limit = workspace.MAX_CHAT_WINDOW_DAYS
        self._problem("chat_window_days", f"send a whole number of days from 1 to {limit}, not {_quoted(text)}.")
        return None

    def settings(self) -> dict[str, Any]:
        """Every setting the form states (the whole form: an unchanged field is sent as it was)."""
        wanted = {
            "name": first(self.form, "name"),
            "timezone": self.text("timezone"),
            "currency": self.text("currency"),
            "chat_allowance_cents": self.allowance(),
            "chat_window_days": self.window(),
            "daily_brief_at": self.text("daily_brief_at"),
        }
        if self.problems:
            raise InvalidInput("Nothing was changed:\n- " + "\n- ".join(self.problems))
        return wanted

    def _problem(self, key: str, message: str) -> None:
        self.problems.append(f"{SETTING_LABELS[key]}: {message}")


def _quoted(text: str) -> str:
    return repr(console_tables.short(text, 40))


async def created_page(core: ConsoleCore, request: Request) -> Response:
    """A new token's or endpoint's secret, on the one GET after the post that made it; never again."""
    session = await core.session(request)
    return core.shown_once(request, session, PAGE)


# --- tokens --------------------------------------------------------------------------------------------


async def create_token(core: ConsoleCore, request: Request) -> Response:
    """Create a token; its secret is shown once, on the one GET after this post's redirect (show_once)."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        kind, agency, role = _holder(first(form, "holder"))
        async with core.store.write() as tx:
            view, secret = await tokens.create_token(
                tx,
                session.actor,
                kind=kind,
                agency=agency,
                role=role,
                label=first(form, "label").strip(),
                expires_in_days=_expiry(first(form, "expires_in_days")),
            )
            ws = await workspace.get(tx)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), PAGE, keep=("new-token", form))
    until = (
        "until it is revoked"
        if view.expires_at is None
        else f"until {console_tables.local_time(view.expires_at, ws.timezone)}"
    )
    context = {
        "title": f"Token {view.token_id} created",
        "facts": [
            ("Token", view.token_id),
            ("Acts for", holder_words(view)),
            ("Valid", until),
            ("Label", view.label or "none"),
        ],
        "secret_name": "Its secret",
        "secret": secret,
        "advice": [
            "Copy it now: it is shown this once, and nowhere else after this page. Store it like a password.",
            "A client sends it as the header 'Authorization: Bearer <token>'.",
            f"If it leaks, revoke {view.token_id} on the Settings page; the next request that carries it is refused.",
        ],
        "again": "token",
        "page": "settings",
    }
    return core.show_once(request, session, "secret_once.html", context, CREATED)


def _holder(value: str) -> tuple[str, str | None, str | None]:
    """The create form's "Acts for" choice ("operator", "A1" or "A1/R2") as create_token's kind, agency, role."""
    if value == "operator":
        return "operator", None, None
    agency, _, role = value.partition("/")
    if not agency.strip():
        raise InvalidInput("Acts for: choose the operator, an agency or one of its roles.")
    return "agency", agency, role or None


def _expiry(text: str) -> int | None:
    """Days until the token expires; empty for never."""
    text = text.strip()
    if not text:
        return None
    if not _WHOLE.fullmatch(text):
        raise InvalidInput(
            f"Expires after: send a whole number of days from 1 to {tokens.MAX_EXPIRY_DAYS}, or leave it empty "
            f"for a token that does not expire; not {_quoted(text)}."
        )
    return int(text)


async def revoke_token(core: ConsoleCore, request: Request) -> Response:
    """Withdraw a token at once: the next request that carries it is refused."""
    session = await core.session(request)
    await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            view = await tokens.revoke_token(tx, session.actor, request.path_params["token"])
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), PAGE)
    said = f"{view.token_id} revoked ({holder_words(view)}): the next request that carries it is refused."
    return core.done(request, session, said, PAGE)


# --- webhook endpoints -----------------------------------------------------------------------------------


async def add_webhook(core: ConsoleCore, request: Request) -> Response:
    """Add an endpoint; its signing secret is shown once, on the one GET after this post's redirect (show_once)."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            view, secret = await endpoints.add_endpoint(
                tx,
                session.actor,
                url=first(form, "url").strip(),
                events=_events(form),
                format=first(form, "format", "standard"),
            )
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), PAGE, keep=("new-webhook", form))
    context = {
        "title": f"Webhook endpoint {view.endpoint_id} added",
        "facts": [
            ("Endpoint", view.endpoint_id),
            ("Sends to", view.url),
            ("Events", ", ".join(view.events)),
            ("Format", f"{view.format}: {dict(FORMAT_WORDS)[view.format]}"),
        ],
        "secret_name": "Its signing secret",
        "secret": secret,
        "advice": [
            "Copy it now: it is shown this once, and nowhere else after this page.",
            "Give it to the receiver, which checks each message's webhook-signature header with it "
            "(Standard Webhooks).",
            f"Send it a test message from the Settings page: Test {view.endpoint_id}.",
        ],
        "again": "endpoint",
        "page": "settings",
    }
    return core.show_once(request, session, "secret_once.html", context, CREATED)


def _events(form: dict[str, list[str]]) -> list[str]:
    chosen = form.get("events", [])
    if not chosen:
        raise InvalidInput("Events: tick at least one event for the endpoint to be sent.")
    return chosen


async def test_webhook(core: ConsoleCore, request: Request) -> Response:
    """Send a test message to one endpoint now, as `chief-of-staff notify test NE1` does, and say how it went."""
    session = await core.session(request)
    await core.checked_form(request, session)
    ref = request.path_params["endpoint"]
    try:
        async with core.store.write() as tx:
            message_id = await endpoints.queue_test(tx, session.actor, ref)
            view = await _endpoint(tx, ref)
            timezone = (await workspace.get(tx)).timezone
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), PAGE)
    async with delivery.http_client() as http:  # one attempt, bounded by the delivery timeout
        outcome = await delivery.deliver_message(core.store, http, message_id)
    said, ok = _test_said(view, message_id, outcome, timezone)
    return (core.done if ok else core.refused)(request, session, said, PAGE)


def _test_said(view: EndpointView, message_id: str, outcome: DeliveryOutcome | None, timezone: str) -> tuple[str, bool]:
    """What became of a test message, in a sentence, and whether it arrived."""
    to = f"{view.endpoint_id} at {view.url}"
    if outcome is None:  # a running server's delivery loop took it first
        return f"Queued a test message ({message_id}) to {to}; a running server is sending it.", True
    answer = f" (HTTP {outcome.http_status})" if outcome.http_status else ""
    if outcome.status == "delivered":
        return f"Delivered a test message ({message_id}) to {to}{answer}.", True
    if outcome.status == "pending":
        when = (
            "later" if outcome.next_attempt_at is None else console_tables.local_time(outcome.next_attempt_at, timezone)
        )
        return f"The test message to {to} was not delivered yet{answer}: {outcome.error}. Retried from {when}.", False
    return f"The test message to {to} was not delivered{answer}: {outcome.error}", False


async def remove_webhook(core: ConsoleCore, request: Request) -> Response:
    """Stop sending to an endpoint at once; whatever it was still owed is dropped."""
    session = await core.session(request)
    await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            view = await endpoints.remove_endpoint(tx, session.actor, request.path_params["endpoint"])
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), PAGE)
    said = f"{view.endpoint_id} removed: nothing more is sent to {view.url}, and what it was still owed is dropped."
    return core.done(request, session, said, PAGE)


async def rotate_webhook_secret(core: ConsoleCore, request: Request) -> Response:
    """A new signing secret for an endpoint, shown once (show_once); the old one stops signing at once.

    Also the only way an operator without a terminal sees the secret of an endpoint an operator token added
    through an MCP client: a tool result never carries one.
    """
    session = await core.session(request)
    await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            view, secret = await endpoints.rotate_secret(tx, session.actor, request.path_params["endpoint"])
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), PAGE)
    context = {
        "title": f"A new signing secret for {view.endpoint_id}",
        "facts": [("Endpoint", view.endpoint_id), ("Sends to", view.url), ("Events", ", ".join(view.events))],
        "secret_name": "Its new signing secret",
        "secret": secret,
        "advice": [
            "Copy it now: it is shown this once, and nowhere else after this page.",
            "The old secret signs nothing from now on: give this one to the receiver, which checks each "
            "message's webhook-signature header with it (Standard Webhooks).",
            f"Send it a test message from the Settings page: Test {view.endpoint_id}.",
        ],
        "again": "endpoint",
        "page": "settings",
    }
    return core.show_once(request, session, "secret_once.html", context, CREATED)


async def _endpoint(tx: Tx, ref: str) -> EndpointView:
    """One endpoint as list_endpoints shows it, removed or not; NotFound naming it otherwise."""
    short = ids.format_id("webhook_endpoint", ids.parse_id("webhook_endpoint", ref, field="endpoint_id"))
    for view in await endpoints.list_endpoints(tx, include_removed=True):
        if view.endpoint_id == short:
            return view
    raise NotFound(f"endpoint_id: there is no webhook endpoint {short}; the Settings page lists them.")

"""The console's Agencies page: the roster as the operator steers it. Each agency with its purpose, its roles,
its grants and whether it is paused; and the acts that stop and restart work: pause and resume an agency,
retire and reactivate an agency or a role.

These are here because some of them are the verified channel's alone. Chat may pause (pausing only narrows),
but it may not lift a pause the operator made on a verified channel, and it never reactivates a retired
agency or role, since that brings back every grant it held. Without this page an operator who runs Claude
Desktop from the one-click bundle, with no terminal, could stop an agency and never start it again.

Every act goes through chief_of_staff.domain.agencies with the session's actor (`operator:console-N` on
the verified channel), as the command line's do. A reactivation is a widening, so its form names the grants
that come back and carries a confirmation box; without the box ticked nothing changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chief_of_staff.core import ids
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict, InvalidInput
from chief_of_staff.domain import agencies, workspace
from chief_of_staff.domain.agencies import AgencyView, RoleView
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantView
from chief_of_staff.http import console_tables
from chief_of_staff.http.console_kit import ConsoleCore, Endpoint, first

PAGE = "/agencies"
NOT_CONFIRMED = (
    "{what}: tick the box that says you know its grants come back, then reactivate it again. Nothing was changed."
)
PAUSE_MOVED = (
    "{name}'s pause changed since this page was shown (it is now: {now}), so nothing was changed: resuming "
    "would have lifted a stop you had not seen. Read it on its card, and resume it again if you still mean to."
)


def routes(core: ConsoleCore) -> list[Route]:
    def bound(endpoint: Callable[[ConsoleCore, Request], Awaitable[Response]]) -> Endpoint:
        return partial(endpoint, core)

    return [
        core.route(PAGE, bound(roster_page)),
        core.route(f"{PAGE}/{{agency}}/pause", bound(pause), "POST"),
        core.route(f"{PAGE}/{{agency}}/resume", bound(resume), "POST"),
        core.route(f"{PAGE}/{{agency}}/retire", bound(retire), "POST"),
        core.route(f"{PAGE}/{{agency}}/reactivate", bound(reactivate), "POST"),
        core.route(f"{PAGE}/{{agency}}/roles/{{role}}/retire", bound(retire_role), "POST"),
        core.route(f"{PAGE}/{{agency}}/roles/{{role}}/reactivate", bound(reactivate_role), "POST"),
    ]


# --- the page ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleCard:
    """A role as the page shows it, with the grants that name it (those a reactivation brings back)."""

    role: RoleView
    grants: list[GrantView]


@dataclass(frozen=True)
class AgencyCard:
    """An agency as the page shows it: its roles, its grants, and its pause in words."""

    agency: AgencyView
    roles: list[RoleCard]
    grants: list[GrantView]
    paused: str
    pause_seen: str


async def roster_page(core: ConsoleCore, request: Request) -> Response:
    """Every agency, active, paused or retired, with its roles and grants, and the forms that steer it."""
    session = await core.session(request)
    async with core.store.read() as tx:
        ws = await workspace.get(tx)
        roster = await agencies.roster(tx)
        given = await grants.list_grants(tx)
        as_of = console_tables.local_time(tx.now_text, ws.timezone)
    context = {
        "workspace": ws,
        "as_of": as_of,
        "cards": [_card(agency, given, ws.timezone) for agency in roster.agencies],
        "title": "Agencies",
        "page": "agencies",
    }
    return core.page(request, "agencies.html", session, context)


def _card(agency: AgencyView, given: list[GrantView], timezone: str) -> AgencyCard:
    held = [grant for grant in given if grant.agency == agency.name]
    roles = [RoleCard(role, [grant for grant in held if grant.role == role.name]) for role in agency.roles]
    return AgencyCard(agency, roles, held, _paused_words(agency, timezone), pause_seen(agency))


def pause_seen(agency: AgencyView) -> str:
    """The pause as the page showed it (when, by whom, why), as a short digest its Resume form sends back.

    A pause made again on a more trusted channel, or with another note, takes the record over (pause_agency);
    Resume pressed on a page from before would lift that stop unseen, so it is refused instead.
    """
    shown = [agency.paused_at, agency.paused_by, agency.pause_note]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()[:16]


def _paused_words(agency: AgencyView, timezone: str) -> str:
    """ "Paused 2026-11-23 09:00 from chat ("note")", or "" when it is not paused."""
    if agency.paused_at is None:
        return ""
    by = agencies.PAUSED_BY.get(str(agency.paused_by), f"on the {agency.paused_by} channel")
    note = f' ("{agency.pause_note}")' if agency.pause_note else ""
    return f"Paused {console_tables.local_time(agency.paused_at, timezone)} {by}{note}."


# --- acts --------------------------------------------------------------------------------------------


async def pause(core: ConsoleCore, request: Request) -> Response:
    """Stop an agency: nothing is claimed or allowed for it until it is resumed."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    note = _text(first(form, "note"))
    try:
        async with core.store.write() as tx:
            view = await agencies.pause_agency(tx, session.actor, await _agency(tx, request), note=note)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(request))
    return core.done(request, session, f"{view.name} is paused: nothing is claimed or allowed for it.", _at(view))


async def resume(core: ConsoleCore, request: Request) -> Response:
    """Lift an agency's pause, whoever made it: the console is a verified channel."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            ref = await _agency(tx, request)
            # The page's Resume form always says which pause it showed; a stale one lifts nothing (PAUSE_MOVED).
            # A post without it (a script with the session's token) resumes whatever pause there is.
            seen = first(form, "seen")
            now = await agencies.get_agency(tx, ref)
            if seen and now.paused_at is not None and seen != pause_seen(now):
                now_words = _paused_words(now, (await workspace.get(tx)).timezone).removeprefix("Paused ")
                raise Conflict(PAUSE_MOVED.format(name=now.name, now="paused " + now_words.removesuffix(".")))
            view = await agencies.resume_agency(tx, session.actor, ref)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(request))
    return core.done(request, session, f"{view.name} is resumed: its grants allow again what they allow.", _at(view))


async def retire(core: ConsoleCore, request: Request) -> Response:
    """Retire an agency: it keeps its record, and nothing is claimed or allowed for it."""
    session = await core.session(request)
    await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            view = await agencies.update_agency(tx, session.actor, await _agency(tx, request), status="retired")
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(request))
    said = f"{view.name} is retired: nothing is claimed or allowed for it, and its grants stay as they are."
    return core.done(request, session, said, _at(view))


async def reactivate(core: ConsoleCore, request: Request) -> Response:
    """Bring a retired agency back, with every grant it held: only with the confirmation box ticked."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            ref = await _agency(tx, request)
            _confirmed(form, f"Reactivating {ref}")
            was = await agencies.get_agency(tx, ref)
            # Only a retired agency is brought back: one active or paused already (a stale tab, a double post)
            # is left as it is, with no audit row for a change that did not happen.
            view = (
                await agencies.update_agency(tx, session.actor, ref, status="active")
                if was.status == "retired"
                else was
            )
            timezone = (await workspace.get(tx)).timezone
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(request))
    said = (
        f"{view.name} is active again, with the grants it held."
        if was.status == "retired"
        else f"{view.name} is not retired, so nothing was changed."
    )
    return core.done(request, session, said + _still_paused(view, timezone), _at(view))


def _still_paused(view: AgencyView, timezone: str) -> str:
    """A retired agency keeps the pause it had, and it comes back with it: never say "active" and stop there."""
    if view.status != "paused":
        return ""
    since = _paused_words(view, timezone).removeprefix("Paused ").removesuffix(".")
    return f" It is still paused ({since}): nothing is claimed or allowed for it until you resume it."


async def retire_role(core: ConsoleCore, request: Request) -> Response:
    """Retire one role: the agency's other roles go on; nothing is claimed or allowed for this seat."""
    return await _set_role_status(core, request, "retired")


async def reactivate_role(core: ConsoleCore, request: Request) -> Response:
    """Bring a retired role back, with the grants that name it: only with the confirmation box ticked."""
    return await _set_role_status(core, request, "active")


async def _set_role_status(core: ConsoleCore, request: Request, status: agencies.Status) -> Response:
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        async with core.store.write() as tx:
            agency = await _agency(tx, request)
            role = _role_id(request)
            found = await agencies.resolve_role(tx, ids.parse_id("agency", agency, field="agency"), role)
            assert found is not None  # resolve_role refuses a role that is not the agency's
            if status == "active":
                _confirmed(form, f"Reactivating {role}")
                if found["status"] != "retired":  # a stale tab or a double post: nothing to bring back
                    named = await agencies.get_agency(tx, agency)
                    said = f"{found['name']} ({named.name}) is not retired, so nothing was changed."
                    return core.done(request, session, said, f"{PAGE}#{role}")
            view = await agencies.set_role(tx, session.actor, agency=agency, name=found["name"], status=status)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(request))
    said = (
        f"{view.name} ({view.agency}) is active again, with the grants that name it."
        if status == "active"
        else f"{view.name} ({view.agency}) is retired: nothing is claimed or allowed for this role."
    )
    return core.done(request, session, said, f"{PAGE}#{view.id}")


async def _agency(tx: Tx, request: Request) -> str:
    """The path's agency, by id (A1) only: a page's forms name agencies by id, which a rename cannot move."""
    ref = ids.format_id("agency", ids.parse_id("agency", request.path_params["agency"], field="agency"))
    await agencies.resolve_agency(tx, ref)  # NotFound, naming the known agencies, before anything is done
    return ref


def _role_id(request: Request) -> str:
    return ids.format_id("role", ids.parse_id("role", request.path_params["role"], field="role"))


def _confirmed(form: dict[str, list[str]], what: str) -> None:
    if first(form, "confirm") != "yes":
        raise InvalidInput(NOT_CONFIRMED.format(what=what))


def _text(value: str) -> str:
    """A note as typed, with a browser's CRLF line ends read as LF; the domain checks its length."""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _at(view: AgencyView) -> str:
    return f"{PAGE}#{view.id}"


def _back(request: Request) -> str:
    """Where a refusal shows its message: at the agency's card when the path's id reads as one."""
    try:
        return f"{PAGE}#{ids.format_id('agency', ids.parse_id('agency', request.path_params['agency']))}"
    except InvalidInput:
        return PAGE

"""The console's Authority page: the delegation letter, each grant's use against its budgets and its kept
versions, the chat allowance, and the operator's acts on grants (give, change, restore a version, revoke,
hand a stopped grant's space over).

Every act goes through chief_of_staff.domain.authority.grants with the session's actor (`operator:console-N`
on the verified channel), as the command line's do. A form's fields are read here into the domain's own
models (GrantSpec, GrantTerms), whose validation is the one source of truth; a field that cannot be read is
named by its label on the page, and nothing changes. Amounts are typed in the workspace currency ("12.50"),
counts as whole numbers; an empty limit is no limit.

A change is two posts. The first (`/authority/grants/GRn/preview`) changes nothing: it shows the grant's
bounds as they are and as they would be, and whether that widens authority. Only the second, carrying the
same values, the version they were compared with and the preview's seal (an HMAC of all three under the
session's CSRF token), applies it; if the grant moved on since, nothing is changed. Restoring a kept version
is the same two posts (`/restore/preview`, then `/restore`), sealed to the version restored.

Handing a stopped grant's space over widens authority and cannot be undone, so it is two posts as well:
`/hand-over/preview` says what happens and lists the grants that may then answer what the grant held back;
the second post needs the box ticked that says so, and is sealed to that list (a grant given, changed or
stopped since the page was shown refuses it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chief_of_staff.core import ids
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import MAX_CENTS, money
from chief_of_staff.domain import agencies, goals, trust, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec, GrantView
from chief_of_staff.domain.authority.terms import BudgetSpec, GrantTerms, Period, largest_money_bound, widens
from chief_of_staff.domain.console_access import ConsoleSession
from chief_of_staff.http import console_tables
from chief_of_staff.http.console_gauges import Gauge, allowance_gauge, budget_gauges
from chief_of_staff.http.console_kit import ConsoleCore, Endpoint, cents_of, first

PERIODS: tuple[Period, ...] = ("day", "week", "month")
MODES = (
    ("auto", "acts on its own"),
    ("notify", "acts on its own, and tells you"),
    ("approve", "asks you first, each time"),
)
TIMEOUTS = (
    ("deny", "is denied when it expires"),
    ("approve", "goes ahead when it expires"),
)
# Each form field's label on the page: what a refusal names.
LABELS = {
    "agency": "Agency",
    "role": "Role",
    "capability": "Capability",
    "goal": "Goal",
    "mode": "Mode",
    "cap": "Most per action",
    "day_count": "Actions a day",
    "day_amount": "Amount a day",
    "week_count": "Actions a week",
    "week_amount": "Amount a week",
    "month_count": "Actions a month",
    "month_amount": "Amount a month",
    "allow": "Only for targets",
    "deny": "Never for targets",
    "expires_on": "Last day",
    "on_timeout": "A request left unanswered",
    "rationale": "Why",
    "grant": "Grant",
}
# The domain models' fields that have a form field of another name.
_FORM_NAMES = {"per_action_cap_cents": "cap", "scope_allow": "allow", "scope_deny": "deny"}
_COUNT = re.compile(r"[0-9]{1,12}")
_PATTERN_GAPS = re.compile(r"[\s,]+")
NOT_PREVIEWED = (
    "{grant}: these values are not the ones the preview showed, so nothing was changed. Change the grant "
    "from the Authority page, look at its bounds before and after, and apply that."
)
RESTORE_NOT_PREVIEWED = (
    "{grant}: this is not the restore the preview showed, so nothing was changed. Pick the version in "
    "{grant}'s versions on the Authority page, look at its bounds before and after, and restore that."
)
HAND_OVER_NOT_SHOWN = (
    "{grant}: this hand-over is not the one its page showed, so nothing was changed. Press Hand over {grant} "
    "on the Authority page, read what it does, and confirm it there."
)
_VERSION = re.compile(r"[0-9]{1,12}")

# A grant card lists its newest versions; older ones are restored by number. Any actor may narrow a grant,
# and each narrowing is a version, so an agency must not be able to grow the operator's page without bound.
VERSIONS_SHOWN = 20

M = TypeVar("M", bound=BaseModel)


def routes(core: ConsoleCore) -> list[Route]:
    def bound(endpoint: Callable[[ConsoleCore, Request], Awaitable[Response]]) -> Endpoint:
        return partial(endpoint, core)

    return [
        core.route("/authority", bound(authority_page)),
        core.route("/authority/grants", bound(create), "POST"),
        core.route("/authority/grants/{grant}/preview", bound(preview), "POST"),
        core.route("/authority/grants/{grant}", bound(apply_change), "POST"),
        core.route("/authority/grants/{grant}/revoke", bound(revoke), "POST"),
        core.route("/authority/grants/{grant}/restore/preview", bound(restore_preview), "POST"),
        core.route("/authority/grants/{grant}/restore", bound(restore), "POST"),
        core.route("/authority/grants/{grant}/hand-over/preview", bound(hand_over_preview), "POST"),
        core.route("/authority/grants/{grant}/hand-over", bound(hand_over), "POST"),
    ]


# --- the page ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionLine:
    """A kept version as its grant's card lists it: when, on which channel, what made it, and each bound it
    had that differs from the bounds in force now (as (label, then))."""

    version: int
    at: str
    channel: str
    change: str
    differs: list[tuple[str, str]]
    current: bool


@dataclass(frozen=True)
class GrantCard:
    """A grant as the page shows it: its bounds in words, a gauge per budget limit, its change form's values,
    and its kept versions."""

    grant: GrantView
    bounds: list[tuple[str, str]]
    gauges: list[Gauge]
    values: dict[str, str]
    history: list[VersionLine]


@dataclass(frozen=True)
class RevokedLine:
    """A revoked grant as the Revoked table lists it: when it handed its space over (local time), if it did."""

    grant: GrantView
    handed_over: str | None


async def authority_page(core: ConsoleCore, request: Request) -> Response:
    """The letter, every grant with its budgets' use, the chat allowance, and the forms that act on grants."""
    session = await core.session(request)
    async with core.store.read() as tx:
        ws = await workspace.get(tx)
        letter = await grants.authority_letter(tx)
        shown = await grants.list_grants(tx, include_revoked=True)
        histories = {
            g.id: await grants.grant_versions(tx, g.id, newest=VERSIONS_SHOWN) for g in shown if g.status != "revoked"
        }
        handed = await grants.hand_overs(tx)
        allowance = await trust.chat_allowance(tx)
        roster = await agencies.roster(tx)
        open_goals = await goals.list_goals(tx)
        as_of = console_tables.local_time(tx.now_text, ws.timezone)
    active = [agency for agency in roster.agencies if agency.status == "active"]
    context = {
        "workspace": ws,
        "as_of": as_of,
        "letter": letter_blocks(letter),
        "grants": [_card(g, histories[g.id], ws.currency, ws.timezone) for g in shown if g.status != "revoked"],
        "revoked": [
            RevokedLine(g, console_tables.local_time(handed[g.id], ws.timezone) if g.id in handed else None)
            for g in shown
            if g.status == "revoked"
        ],
        "allowance": allowance,
        "allowance_gauge": allowance_gauge(allowance, ws.currency),
        "agencies": active,
        "roles": sorted({role.name for agency in active for role in agency.roles if role.status == "active"}),
        "goals": open_goals,
        "blank": {**dict.fromkeys(_value_names(), ""), "mode": "auto", "on_timeout": "deny"},
        **_choices(),
        "title": "Authority",
        "page": "authority",
    }
    return core.page(request, "authority.html", session, context)


def _card(grant: GrantView, history: list[grants.GrantVersion], currency: str, timezone: str) -> GrantCard:
    terms = terms_of(grant)
    rows = bound_rows(terms, currency)
    lines = [_version_line(kept, grant, rows, currency, timezone) for kept in reversed(history)]
    return GrantCard(grant, rows, budget_gauges(grant, currency), form_values(terms), lines)


def _version_line(
    kept: grants.GrantVersion, grant: GrantView, now: list[tuple[str, str]], currency: str, timezone: str
) -> VersionLine:
    """A kept version with only the bounds it had that differ from `now` (the grant's bounds in words)."""
    then = bound_rows(kept.terms, currency)
    differs = [(label, words) for (label, words), shown in zip(then, now, strict=True) if (label, words) != shown]
    when = console_tables.local_time(kept.at, timezone)
    return VersionLine(kept.version, when, kept.channel, kept.change, differs, kept.version == grant.version)


def _choices() -> dict[str, Any]:
    return {"modes": MODES, "timeouts": TIMEOUTS, "periods": PERIODS, "labels": LABELS}


# --- acts --------------------------------------------------------------------------------------------


async def create(core: ConsoleCore, request: Request) -> Response:
    """Give an agency (or one role) authority over one capability, as the console session."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        spec = FormReader(form).spec()
        async with core.store.write() as tx:
            view = await grants.create_grant(tx, session.actor, spec)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), "/authority#new-grant", keep=("new-grant", form))
    said = f"{view.id} granted: {_who(view)} may {view.capability} ({view.mode})."
    return core.done(request, session, said, f"/authority#{view.id}")


async def preview(core: ConsoleCore, request: Request) -> Response:
    """A change to a grant, before and after, changing nothing; the form that applies it carries the same values."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    ref = request.path_params["grant"]
    try:
        after = FormReader(form).terms()
        async with core.store.read() as tx:
            ws = await workspace.get(tx)
            grant = await _grant(tx, ref)
            summary = await grants.preview_change(tx, grant.id, **changes(after))
    except ChiefOfStaffError as refused:
        # What was typed comes back in the grant's change form (named by its id), open, to be corrected.
        back = _back(ref)
        return core.refused(request, session, str(refused), back, keep=(back.partition("#")[2], form))
    shown = BeforeAfter(
        title=f"Change {grant.id}",
        heading=f"{grant.id}'s bounds before and after",
        apply_path=f"/authority/grants/{grant.id}",
        apply_label=f"Apply this change to {grant.id}",
    )
    return _before_after(core, request, session, ws, grant, after, summary, shown, form_values(after), "change")


@dataclass(frozen=True)
class BeforeAfter:
    """The words of a before-and-after page (a change, or a version restored) and where its one form posts."""

    title: str
    heading: str
    apply_path: str
    apply_label: str


def _before_after(
    core: ConsoleCore,
    request: Request,
    session: ConsoleSession,
    ws: workspace.Workspace,
    grant: GrantView,
    after: GrantTerms,
    summary: str,
    shown: BeforeAfter,
    values: dict[str, str],
    act: Act,
) -> Response:
    """A grant's bounds now and after, each row marked when it moves; the form that applies it carries `values`,
    the version compared with and their seal."""
    before = terms_of(grant)
    rows = [
        (label, now, then, now != then)
        for (label, now), (_, then) in zip(bound_rows(before, ws.currency), bound_rows(after, ws.currency), strict=True)
    ]
    context = {
        "workspace": ws,
        "grant": grant,
        "shown": shown,
        "rows": rows,
        "widens": widens(before, after),
        "unchanged": after == before,
        "summary": summary,
        "values": values,
        "version": grant.version,
        "seal": seal(session, grant.id, str(grant.version), values, act),
        "title": shown.title,
        "page": "authority",
    }
    return core.page(request, "authority_change.html", session, context)


async def apply_change(core: ConsoleCore, request: Request) -> Response:
    """Apply a change the operator previewed: the same values, against the same version of the grant."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    ref = request.path_params["grant"]
    try:
        short = _short(ref)
        after = FormReader(form).terms()
        seen = first(form, "version")
        if not _sealed(session, form, short, seen, form_values(after), "change"):
            raise InvalidInput(NOT_PREVIEWED.format(grant=short))
        async with core.store.write() as tx:
            now = await _grant(tx, short)
            _still_at(now, seen, "Look at its bounds again and make the change anew.")
            view = await grants.update_grant(tx, session.actor, short, **changes(after))
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(ref))
    said = (
        f"{view.id} is unchanged (version {view.version}): its bounds already were these."
        if view.version == now.version
        else f"{view.id} is now version {view.version}: {_who(view)} may {view.capability} ({view.mode})."
    )
    return core.done(request, session, said, f"/authority#{view.id}")


async def revoke(core: ConsoleCore, request: Request) -> Response:
    """Withdraw a grant at once; its pending decisions are cancelled, and it keeps holding its space."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    ref = request.path_params["grant"]
    try:
        async with core.store.write() as tx:
            view = await grants.revoke_grant(tx, session.actor, ref, reason=FormReader(form).text("reason"))
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(ref))
    said = (
        f"{view.id} revoked: {_who(view)} may no longer {view.capability} under it. Requests it covered now come "
        "to you as decisions; handing it over (below) lets broader grants cover them."
    )
    return core.done(request, session, said, "/authority#revoked")


async def restore_preview(core: ConsoleCore, request: Request) -> Response:
    """A kept version's bounds against the grant's now, changing nothing; its form restores that version."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    ref = request.path_params["grant"]
    try:
        short = _short(ref)
        number = _version(first(form, "restore"), short)
        async with core.store.read() as tx:
            ws = await workspace.get(tx)
            grant = await _grant(tx, short)
            summary = await grants.preview_change(tx, short, restore_version=number)
            kept = {v.version: v for v in await grants.grant_versions(tx, short)}
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(ref))
    shown = BeforeAfter(
        title=f"Restore {short}'s version {number}",
        heading=f"{short}'s bounds now, and as version {number} had them",
        apply_path=f"/authority/grants/{short}/restore",
        apply_label=f"Restore {short}'s version {number}",
    )
    values = {"restore": str(number)}
    return _before_after(core, request, session, ws, grant, kept[number].terms, summary, shown, values, "restore")


async def restore(core: ConsoleCore, request: Request) -> Response:
    """Restore the version the operator previewed, against the same version of the grant (audited as a restore)."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    ref = request.path_params["grant"]
    try:
        short = _short(ref)
        sent, seen = first(form, "restore"), first(form, "version")
        number = _version(sent, short)
        if not _sealed(session, form, short, seen, {"restore": sent}, "restore"):
            raise InvalidInput(RESTORE_NOT_PREVIEWED.format(grant=short))
        async with core.store.write() as tx:
            now = await _grant(tx, short)
            _still_at(now, seen, f"Look at version {number} against its bounds again and restore it anew.")
            view = await grants.restore_version(tx, session.actor, short, number)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(ref))
    said = (
        f"{view.id} is unchanged (version {view.version}): its bounds already were version {number}'s."
        if view.version == now.version
        else f"{view.id} is now version {view.version}, with version {number}'s bounds: {_who(view)} may "
        f"{view.capability} ({view.mode})."
    )
    return core.done(request, session, said, f"/authority#{view.id}")


async def hand_over_preview(core: ConsoleCore, request: Request) -> Response:
    """What handing a stopped grant's space over does, and which grants may then answer for it; changing nothing."""
    session = await core.session(request)
    await core.checked_form(request, session)  # its CSRF token: the page leads to an act
    ref = request.path_params["grant"]
    try:
        short = _short(ref)
        async with core.store.read() as tx:
            ws = await workspace.get(tx)
            grant = await _grant(tx, short)
            _handable(grant, await grants.hand_overs(tx), ws.timezone)
            successors = await grants.hand_over_successors(tx, short)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(ref))
    values = {"covered_by": covered_by(successors)}
    context = {
        "workspace": ws,
        "grant": grant,
        "successors": [(other, bound_rows(terms_of(other), ws.currency)) for other in successors],
        "values": values,
        "version": grant.version,
        "seal": seal(session, short, str(grant.version), values, "hand-over"),
        "title": f"Hand over {short}",
        "page": "authority",
    }
    return core.page(request, "authority_hand_over.html", session, context)


async def hand_over(core: ConsoleCore, request: Request) -> Response:
    """Hand a stopped grant's space over, as its page showed it and once the operator ticked that they understand."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    ref = request.path_params["grant"]
    try:
        short = _short(ref)
        seen, shown = first(form, "version"), first(form, "covered_by")
        if not _sealed(session, form, short, seen, {"covered_by": shown}, "hand-over"):
            raise InvalidInput(HAND_OVER_NOT_SHOWN.format(grant=short))
        if first(form, "confirm") != "yes":
            raise InvalidInput(
                f"{short}: tick the box saying you understand what handing it over does, then press Hand over "
                f"{short}; nothing was changed."
            )
        reason = FormReader(form).text("reason")
        async with core.store.write() as tx:
            now = await _grant(tx, short)
            _handable(now, await grants.hand_overs(tx), (await workspace.get(tx)).timezone)
            _still_at(now, seen, f"Press Hand over {short} again and read what it does now.")
            successors = await grants.hand_over_successors(tx, short)
            if covered_by(successors) != shown:
                raise Conflict(
                    f"{short}: the grants that may answer for it changed since its page was shown (a grant was "
                    f"given, changed or stopped), so nothing was changed. Press Hand over {short} again and read "
                    "what it does now."
                )
            view = await grants.revoke_grant(tx, session.actor, short, reason=reason, hand_over=True)
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), _back(ref))
    answering = ", ".join(other.id for other in successors)
    said = (
        f"{view.id} handed over: {answering} may now answer what it held back for {_who(view)}, each within its "
        "own role, capability and bounds."
        if successors
        else f"{view.id} handed over: no other grant covers what it held back for {_who(view)}, so those requests "
        "come to you as for any action no grant covers, until a grant covers them."
    )
    return core.done(request, session, said, f"/authority#{view.id}")


def covered_by(successors: list[GrantView]) -> str:
    """The grants a hand-over page listed, as its seal binds them: each one's id, version and status."""
    return " ".join(f"{other.id}@{other.version}:{other.status}" for other in successors)


def _handable(grant: GrantView, handed: dict[str, str], timezone: str) -> None:
    """Only a stopped grant that still holds its space is handed over here; an active one is revoked first."""
    if grant.id in handed:
        when = console_tables.local_time(handed[grant.id], timezone)
        raise Conflict(f"grant: {grant.id} was already handed over on {when}; nothing was changed.")
    if grant.status == "active":
        raise Conflict(
            f"grant: {grant.id} is active, so it has no space to hand over; nothing was changed. Revoke it first "
            f"(Revoke {grant.id} on its card), then hand it over."
        )


def _still_at(now: GrantView, seen: str, again: str) -> None:
    """A confirmation applies to the version of the grant its page showed; Conflict if the grant moved on."""
    if str(now.version) != seen:
        raise Conflict(
            f"{now.id} changed since the preview (it is at version {now.version}, the preview showed version "
            f"{seen}), so nothing was changed. {again}"
        )


def _version(text: str, short: str) -> int:
    """A version number as a form sends it; InvalidInput saying what to send otherwise."""
    if not _VERSION.fullmatch(text):
        raise InvalidInput(
            f"version: send the number of one of {short}'s versions, e.g. 1, as its history on the Authority page "
            f"lists them; not {_quoted(text)}. Nothing was changed."
        )
    return int(text)


async def _grant(tx: Tx, ref: str) -> GrantView:
    """One grant as list_grants shows it, revoked or not; NotFound naming it otherwise."""
    short = _short(ref)
    for view in await grants.list_grants(tx, include_revoked=True):
        if view.id == short:
            return view
    raise NotFound(f"grant: there is no grant {short}; the Authority page lists every grant.")


def _short(ref: str) -> str:
    return ids.format_id("grant", ids.parse_id("grant", ref, field="grant"))


def _back(ref: str) -> str:
    """Where a refusal shows its message: at the grant's card when the id reads as one."""
    try:
        return f"/authority#{_short(ref)}"
    except InvalidInput:
        return "/authority"


def _who(view: GrantView) -> str:
    return view.agency + (f" / {view.role}" if view.role else "")


Act = Literal["change", "restore", "hand-over"]


def seal(session: ConsoleSession, grant: str, version: str, values: dict[str, str], act: Act = "change") -> str:
    """What binds a confirmation to its preview: the act, the grant, the version compared with, the values."""
    payload = json.dumps([act, grant, version, values], sort_keys=True).encode("utf-8", "surrogatepass")
    return hmac.new(session.csrf.encode("ascii"), payload, hashlib.sha256).hexdigest()


def _sealed(
    session: ConsoleSession, form: dict[str, list[str]], grant: str, version: str, values: dict[str, str], act: Act
) -> bool:
    """Whether the form's seal is the one its preview gave for exactly this act, grant, version and values."""
    sent = first(form, "seal").encode("utf-8", "surrogatepass")
    return hmac.compare_digest(sent, seal(session, grant, version, values, act).encode("ascii"))


# --- the bounds, in words and as form values ---------------------------------------------------------------


def terms_of(grant: GrantView) -> GrantTerms:
    """A grant's bounds as the domain compares them (what a change may move)."""
    budgets = [BudgetSpec(period=b.period, max_count=b.max_count, max_cents=b.max_cents) for b in grant.budgets]
    shown = grant.model_dump(include=set(GrantTerms.model_fields) - {"budgets"})
    return GrantTerms.model_validate({**shown, "budgets": budgets})


def changes(terms: GrantTerms) -> dict[str, Any]:
    """Every bound, as update_grant's (and preview_change's) keywords: a form states the whole grant."""
    return {name: getattr(terms, name) for name in GrantTerms.model_fields}


def bound_rows(terms: GrantTerms, currency: str) -> list[tuple[str, str]]:
    """Each bound in words, labelled as on the form: what the grant card and a change's before and after show."""
    budgets = {budget.period: budget for budget in terms.budgets}
    if terms.per_action_cap_cents is not None:
        cap = money(terms.per_action_cap_cents, currency)
    else:
        cap = "no cap" if largest_money_bound(terms) is not None else "no money: amount 0 only"
    rows = [("Mode", f"{terms.mode}: {dict(MODES)[terms.mode]}"), (LABELS["cap"], cap)]
    rows += [(f"{period.capitalize()} budget", _budget_words(budgets.get(period), currency)) for period in PERIODS]
    return [
        *rows,
        (LABELS["allow"], ", ".join(terms.scope_allow) or "any target"),
        (LABELS["deny"], ", ".join(terms.scope_deny) or "none"),
        (LABELS["expires_on"], terms.expires_on.isoformat() if terms.expires_on else "no end date"),
        (LABELS["on_timeout"], dict(TIMEOUTS)[terms.on_timeout]),
        (LABELS["rationale"], terms.rationale or "not given"),
    ]


def _budget_words(budget: BudgetSpec | None, currency: str) -> str:
    if budget is None:
        return "none"
    limits = [f"{budget.max_count} actions"] if budget.max_count is not None else []
    limits += [money(budget.max_cents, currency)] if budget.max_cents is not None else []
    return " and ".join(limits)


def _value_names() -> list[str]:
    budgets = [f"{period}_{kind}" for period in PERIODS for kind in ("count", "amount")]
    return ["mode", "cap", *budgets, "allow", "deny", "expires_on", "on_timeout", "rationale"]


def form_values(terms: GrantTerms) -> dict[str, str]:
    """The change form's fields as these bounds fill them; FormReader reads them back to the same bounds."""
    budgets = {budget.period: budget for budget in terms.budgets}
    values = {
        "mode": terms.mode,
        "cap": _amount_text(terms.per_action_cap_cents),
        "allow": "\n".join(terms.scope_allow),
        "deny": "\n".join(terms.scope_deny),
        "expires_on": terms.expires_on.isoformat() if terms.expires_on else "",
        "on_timeout": terms.on_timeout,
        "rationale": terms.rationale,
    }
    for period in PERIODS:
        budget = budgets.get(period)
        values[f"{period}_count"] = "" if budget is None or budget.max_count is None else str(budget.max_count)
        values[f"{period}_amount"] = _amount_text(None if budget is None else budget.max_cents)
    return values


def _amount_text(cents: int | None) -> str:
    return "" if cents is None else money(cents)


# --- reading a form ------------------------------------------------------------------------------------


class FormReader:
    """A grant form's fields as the domain's values. Every field it cannot read is named by its label; then
    `spec()` or `terms()` refuses with all of them at once (InvalidInput), before anything is changed."""

    def __init__(self, form: dict[str, list[str]]) -> None:
        self.form = form
        self.problems: list[str] = []

    def text(self, name: str) -> str:
        """A field's text, trimmed, with a browser's CRLF line ends read as LF."""
        return first(self.form, name).replace("\r\n", "\n").replace("\r", "\n").strip()

    def optional(self, name: str) -> str | None:
        return self.text(name) or None

    def amount(self, name: str) -> int | None:
        """An amount in the workspace currency ("1,250.50"), as whole cents; empty is no limit."""
        text = self.text(name)
        if not text:
            return None
        if text.startswith("-"):
            self._problem(name, f"a limit is zero or more, not {_quoted(text)}; leave it empty for no limit.")
        elif (cents := cents_of(text)) is None:
            self._problem(name, f"send an amount like 12.50, or leave it empty for no limit; not {_quoted(text)}.")
        elif cents <= MAX_CENTS:
            return cents
        else:
            self._problem(name, f"send at most {money(MAX_CENTS)}, or leave it empty for no limit.")
        return None

    def count(self, name: str) -> int | None:
        """A whole number of actions; empty is no limit."""
        text = self.text(name)
        if not text:
            return None
        if _COUNT.fullmatch(text):
            return int(text)
        if text.startswith("-"):
            self._problem(name, f"a limit is zero or more, not {_quoted(text)}; leave it empty for no limit.")
        else:
            self._problem(name, f"send a whole number, or leave it empty for no limit; not {_quoted(text)}.")
        return None

    def patterns(self, name: str) -> list[str]:
        """Target patterns, one a line (spaces and commas separate them too)."""
        return [pattern for pattern in _PATTERN_GAPS.split(self.text(name)) if pattern]

    def bounds(self) -> dict[str, Any]:
        """The fields a grant's change moves, as GrantTerms names them."""
        budgets = []
        for period in PERIODS:
            count, cents = self.count(f"{period}_count"), self.amount(f"{period}_amount")
            if count is not None or cents is not None:
                budgets.append({"period": period, "max_count": count, "max_cents": cents})
        return {
            "mode": self.text("mode"),
            "per_action_cap_cents": self.amount("cap"),
            "budgets": budgets,
            "scope_allow": self.patterns("allow"),
            "scope_deny": self.patterns("deny"),
            "expires_on": self.optional("expires_on"),
            "on_timeout": self.text("on_timeout") or "deny",
            "rationale": self.text("rationale"),
        }

    def spec(self) -> GrantSpec:
        """A new grant, as GrantSpec reads it."""
        fields = {
            "agency": self.text("agency"),
            "role": self.optional("role"),
            "capability": self.text("capability"),
            "goal": self.optional("goal"),
            **self.bounds(),
        }
        return self.checked(GrantSpec, fields)

    def terms(self) -> GrantTerms:
        """A grant's bounds after a change, as GrantTerms reads them."""
        return self.checked(GrantTerms, self.bounds())

    def checked(self, model: type[M], fields: dict[str, Any]) -> M:
        if not self.problems:
            try:
                return model.model_validate(fields)
            except ValidationError as exc:
                for error in exc.errors():
                    name = _form_name(error["loc"], fields["budgets"])
                    self._problem(name, error["msg"].removeprefix("Value error, ") + ".")
        raise InvalidInput("Nothing was changed:\n- " + "\n- ".join(self.problems))

    def _problem(self, name: str, message: str) -> None:
        self.problems.append(f"{LABELS.get(name, name)}: {message}")


def _form_name(loc: Sequence[int | str], budgets: list[dict[str, Any]]) -> str:
    """The form field behind a model field, e.g. budgets.0.max_cents -> day_amount."""
    if not loc:
        return "grant"
    if loc[0] == "budgets" and len(loc) > 2 and isinstance(loc[1], int):
        return f"{budgets[loc[1]]['period']}_{'count' if loc[2] == 'max_count' else 'amount'}"
    return _FORM_NAMES.get(str(loc[0]), str(loc[0]))


def _quoted(text: str) -> str:
    return repr(console_tables.short(text, 40))


# --- the letter --------------------------------------------------------------------------------------------

Span = tuple[Literal["text", "code", "grant"], str]
_INLINE = re.compile(r"`([^`]*)`|\*\*(GR[0-9]+)\*\*")


@dataclass(frozen=True)
class Block:
    """A part of the letter: its title, an agency's heading, a paragraph, or a list (one line per grant)."""

    kind: Literal["title", "heading", "text", "list"]
    lines: list[list[Span]]


def letter_blocks(letter: str) -> list[Block]:
    """The letter's markdown (authority_letter writes a small, known part of it) as blocks the template draws."""
    blocks: list[Block] = []
    for line in letter.splitlines():
        if line.startswith("# "):
            blocks.append(Block("title", [spans(line[2:])]))
        elif line.startswith("## "):
            blocks.append(Block("heading", [spans(line[3:])]))
        elif line.startswith("- ") and blocks and blocks[-1].kind == "list":
            blocks[-1].lines.append(spans(line[2:]))
        elif line.startswith("- "):
            blocks.append(Block("list", [spans(line[2:])]))
        elif line.strip():
            blocks.append(Block("text", [spans(line)]))
    return blocks


def spans(line: str) -> list[Span]:
    """A line's code spans (capabilities and patterns) and grant ids in bold, between plain text."""
    found: list[Span] = []
    at = 0
    for match in _INLINE.finditer(line):
        if match.start() > at:
            found.append(("text", line[at : match.start()]))
        found.append(("code", match[1]) if match[1] is not None else ("grant", match[2]))
        at = match.end()
    if at < len(line):
        found.append(("text", line[at:]))
    return found

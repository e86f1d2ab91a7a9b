"""The console's Authority page: the delegation letter, each grant's use against its budgets, the chat allowance,
and the operator's acts on grants (give, change, revoke).

Every act goes through chief_of_staff.domain.authority.grants with the session's actor (`operator:console-N`
on the verified channel), as the command line's do. A form's fields are read here into the domain's own
models (GrantSpec, GrantTerms), whose validation is the one source of truth; a field that cannot be read is
named by its label on the page, and nothing changes. Amounts are typed in the workspace currency ("12.50"),
counts as whole numbers; an empty limit is no limit.

A change is two posts. The first (`/authority/grants/GRn/preview`) changes nothing: it shows the grant's
bounds as they are and as they would be, and whether that widens authority. Only the second, carrying the
same values, the version they were compared with and the preview's seal (an HMAC of all three under the
session's CSRF token), applies it; if the grant moved on since, nothing is changed.
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
    ]


# --- the page ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantCard:
    """A grant as the page shows it: its bounds in words, a gauge per budget limit, its change form's values."""

    grant: GrantView
    bounds: list[tuple[str, str]]
    gauges: list[Gauge]
    values: dict[str, str]


async def authority_page(core: ConsoleCore, request: Request) -> Response:
    """The letter, every grant with its budgets' use, the chat allowance, and the forms that act on grants."""
    session = await core.session(request)
    async with core.store.read() as tx:
        ws = await workspace.get(tx)
        letter = await grants.authority_letter(tx)
        shown = await grants.list_grants(tx, include_revoked=True)
        allowance = await trust.chat_allowance(tx)
        roster = await agencies.roster(tx)
        open_goals = await goals.list_goals(tx)
        as_of = console_tables.local_time(tx.now_text, ws.timezone)
    active = [agency for agency in roster.agencies if agency.status == "active"]
    context = {
        "workspace": ws,
        "as_of": as_of,
        "letter": letter_blocks(letter),
        "grants": [_card(grant, ws.currency) for grant in shown if grant.status != "revoked"],
        "revoked": [grant for grant in shown if grant.status == "revoked"],
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


def _card(grant: GrantView, currency: str) -> GrantCard:
    terms = terms_of(grant)
    return GrantCard(grant, bound_rows(terms, currency), budget_gauges(grant, currency), form_values(terms))


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
        return core.refused(request, session, str(refused), "/authority#new-grant")
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
        return core.refused(request, session, str(refused), _back(ref))
    before = terms_of(grant)
    values = form_values(after)
    rows = [
        (label, now, then, now != then)
        for (label, now), (_, then) in zip(bound_rows(before, ws.currency), bound_rows(after, ws.currency), strict=True)
    ]
    context = {
        "workspace": ws,
        "grant": grant,
        "rows": rows,
        "widens": widens(before, after),
        "unchanged": after == before,
        "summary": summary,
        "values": values,
        "version": grant.version,
        "seal": seal(session, grant.id, str(grant.version), values),
        "title": f"Change {grant.id}",
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
        sent = first(form, "seal").encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(sent, seal(session, short, seen, form_values(after)).encode("ascii")):
            raise InvalidInput(NOT_PREVIEWED.format(grant=short))
        async with core.store.write() as tx:
            now = await _grant(tx, short)
            if str(now.version) != seen:
                raise Conflict(
                    f"{short} changed since the preview (it is at version {now.version}, the preview showed version "
                    f"{seen}), so nothing was changed. Look at its bounds again and make the change anew."
                )
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
        f"to you as decisions; `{grants.hand_over_command(view.id)}` lets broader grants cover them."
    )
    return core.done(request, session, said, "/authority#revoked")


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


def seal(session: ConsoleSession, grant: str, version: str, values: dict[str, str]) -> str:
    """What binds a change's confirmation to its preview: the grant, the version compared with, the values."""
    payload = json.dumps([grant, version, values], sort_keys=True).encode("utf-8", "surrogatepass")
    return hmac.new(session.csrf.encode("ascii"), payload, hashlib.sha256).hexdigest()


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

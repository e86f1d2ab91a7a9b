"""The console's Review page: the packet, its proposals accepted as one change set, and reverting one.

- `GET /review` shows the operator's packet (chief_of_staff.domain.review.packet): since you last looked,
  goals and pace, scorecards, anomalies, decisions waiting, and the proposals, each with a checkbox, its
  reason, its evidence and what accepting it would change. Opening it is a look, as the terminal's
  `chief-of-staff review` is: a top-level navigation moves the "since you last looked" mark and runs the
  server's chores, as the Today page does; anything else (a prefetch, a HEAD) reads only.
- `POST /review` records the checked proposals and a note as one change set
  (changesets.record_review), then shows that change set with its Revert button. Proposals are named by
  key (kind and subject, proposals.proposal_key), never by position, and each carries the version of the
  change the operator read: a proposal gone since, or one that now makes another change, refuses the whole
  record and changes nothing (packet.accepted_adjustments).
- `GET /review/change-sets/CSn` shows one change set: its changes, before and after, what a revert would
  undo, and the Revert button; `POST /review/change-sets/CSn/revert` undoes it as a new change set
  (changesets.revert_change_set), which has a page and a Revert button of its own.

Every act is the session's (`operator:console-N` on the verified channel) through the domain's functions;
a refusal is shown on the next page and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from chief_of_staff.core import ids
from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import ChiefOfStaffError, InvalidInput, NotFound, WorkspaceSealed
from chief_of_staff.core.fields import money
from chief_of_staff.domain import brief, workspace
from chief_of_staff.domain.review import adjustments, changesets, packet
from chief_of_staff.domain.review.adjustments import AdjustmentTool
from chief_of_staff.domain.review.changesets import ChangeSetView
from chief_of_staff.domain.review.proposals import Proposal, ProposalKind, proposal_key, proposal_version
from chief_of_staff.http import console_charts, console_tables
from chief_of_staff.http.console_kit import ConsoleCore, Endpoint, Refused, first

# The newest change sets listed on the page; any other is reachable by its id.
RECENT_SETS = 6
# Each kind of proposal, as its heading says it.
KINDS: dict[ProposalKind, str] = {
    "grant_widen": "let a grant act and notify you",
    "grant_narrow": "have a grant ask you first again",
    "goal_target": "move a key result's target",
    "routine_add": "add a routine",
    "routine_drop": "pause a routine",
    "role_add": "add a role",
    "role_retire": "retire a role",
}
NO_CHANGE_SET = "There is no change set {label}; the Review page lists the recent ones."


def routes(core: ConsoleCore) -> list[Route]:
    def bound(endpoint: Callable[[ConsoleCore, Request], Awaitable[Response]]) -> Endpoint:
        return partial(endpoint, core)

    return [
        core.route("/review", bound(review_page)),
        core.route("/review", bound(record), "POST"),
        core.route("/review/change-sets", bound(open_change_set)),
        core.route("/review/change-sets/{change_set}", bound(change_set_page)),
        core.route("/review/change-sets/{change_set}/revert", bound(revert), "POST"),
    ]


# --- the packet ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProposalCard:
    """A proposal as the page shows it: its key and version (the form's), its evidence and its effect in words."""

    proposal: Proposal
    key: str
    version: str
    evidence: list[tuple[str, str]]
    sends: list[tuple[str, str]]
    effect: str | None


async def review_page(core: ConsoleCore, request: Request) -> Response:
    session = await core.session(request)
    # Only the operator looking moves the mark: a top-level page, not a subresource or a prefetch.
    looked = request.method == "GET" and request.headers.get("sec-fetch-dest", "document") == "document"
    context = await _packet_page(core, looked=looked)
    return core.page(request, "review.html", session, {**context, "title": "Review", "page": "review"})


async def _packet_page(core: ConsoleCore, *, looked: bool) -> dict[str, Any]:
    if not looked:
        async with core.store.read() as tx:
            return await _packet_in(tx, mark_seen=False)
    try:
        async with core.store.write() as tx:
            await brief.housekeeping(tx, SYSTEM)  # the server's chores, whoever happens to look
            return await _packet_in(tx, mark_seen=True)
    except WorkspaceSealed as sealed:
        async with core.store.read() as tx:
            return {**await _packet_in(tx, mark_seen=False), "sealed": str(sealed)}


async def _packet_in(tx: Tx, *, mark_seen: bool) -> dict[str, Any]:
    ws = await workspace.get(tx)
    view = await packet.build_packet(tx, mark_seen=mark_seen)
    return {
        "workspace": ws,
        "packet": view,
        "changes": brief.change_summary(view.changes, ws.timezone),
        "cards": [await _card(tx, proposal, ws.currency) for proposal in view.proposals],
        "recent": await changesets.recent(tx, RECENT_SETS),
        "kinds": KINDS,
        "local": lambda stamp: console_tables.local_time(stamp, ws.timezone),
        "sealed": None,
    }


async def _card(tx: Tx, proposal: Proposal, currency: str) -> ProposalCard:
    change = proposal.adjustment
    return ProposalCard(
        proposal=proposal,
        key=proposal_key(proposal),
        version=proposal_version(proposal),
        evidence=[(_words(name), _amount_or_value(name, value, currency)) for name, value in proposal.evidence.items()],
        sends=[("change", change.tool)]
        + [(_words(name), _amount_or_value(name, value, currency)) for name, value in change.arguments.items()],
        effect=await _effect(tx, proposal),
    )


async def _effect(tx: Tx, proposal: Proposal) -> str | None:
    """What accepting it would change, read from the store now, where the domain can say (a grant's bounds)."""
    change = proposal.adjustment
    if change.tool != "update_grant":
        return None  # the proposal's message says it, and its arguments show exactly what is sent
    try:
        args = adjustments.parse_arguments(change.tool, change.arguments, "adjustment.arguments")
        return await adjustments.describe(tx, change.tool, args)
    except ChiefOfStaffError as cannot:  # a grant that moved on since: recording will say so, too
        return str(cannot)


def _words(name: str) -> str:
    return name.removesuffix("_cents").replace("_", " ")


def _amount_or_value(name: str, value: Any, currency: str) -> str:
    """Whole cents (a name ending in _cents) as money in the workspace currency; anything else as text."""
    if name.endswith("_cents") and isinstance(value, int) and not isinstance(value, bool):
        return money(value, currency)
    return _value(value)


def _value(value: Any) -> str:
    """An argument or evidence value as text: words as they are, numbers as a person writes them."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return console_charts.number(value)
    if isinstance(value, str):
        return value
    return "none" if value is None else json.dumps(value, ensure_ascii=False)


# --- change sets --------------------------------------------------------------------------------------


async def _change_set(tx: Tx, number: int) -> ChangeSetView | None:
    try:
        return await changesets.get_change_set(tx, ids.format_id("change_set", number))
    except NotFound:
        return None


def _label(ref: str) -> str:
    """A change set's id as shown ("CS3"), or a 404 page for anything that is not one."""
    try:
        return ids.format_id("change_set", ids.parse_id("change_set", ref.strip(), field="change_set"))
    except InvalidInput as bad:
        raise Refused(404, "No such change set", str(bad)) from None


async def open_change_set(core: ConsoleCore, request: Request) -> Response:
    """The page's "open a change set" form (a GET): on to that change set's own address."""
    await core.session(request)
    label = _label(request.query_params.get("change_set", ""))
    return RedirectResponse(f"{core.root(request)}/review/change-sets/{label}", status_code=303)


async def change_set_page(core: ConsoleCore, request: Request) -> Response:
    """One change set: who made it and when, each change before and after, and what reverting it would undo."""
    session = await core.session(request)
    label = _label(request.path_params["change_set"])
    async with core.store.read() as tx:
        ws = await workspace.get(tx)
        view = await _change_set(tx, ids.parse_id("change_set", label))
        if view is None:
            raise Refused(404, "No such change set", NO_CHANGE_SET.format(label=label))
        undoes = [] if view.reverted_by else await _undoes(tx, view)
    context = {
        "workspace": ws,
        "view": view,
        "undoes": undoes,
        "state": lambda state: _state(state, ws.currency),
        "local": lambda stamp: console_tables.local_time(stamp, ws.timezone),
        "title": f"Change set {label}",
        "page": "review",
    }
    return core.page(request, "review_change_set.html", session, context)


async def _undoes(tx: Tx, view: ChangeSetView) -> list[str]:
    """What reverting the set would apply, newest change first, each in words from the store now (for a
    grant, its bounds now and after, and whether that widens authority: undoing a narrowing does)."""
    words = []
    for change in reversed(view.changes):
        tool = cast(AdjustmentTool, change.tool)  # stored by record_review, from adjustments.TOOLS
        undo = adjustments.inverse(
            adjustments.Applied(tool, change.subject, change.arguments, change.before, change.after)
        )
        if undo is None:
            continue
        try:
            args = adjustments.parse_arguments(undo.tool, undo.arguments, "revert")
            words.append(await adjustments.describe(tx, undo.tool, args))
        except ChiefOfStaffError as cannot:  # the subject moved on: the revert itself will refuse, and say so
            words.append(f"{change.tool} {change.subject}: {cannot}")
    return words


def _state(state: dict[str, Any] | None, currency: str) -> list[tuple[str, str]]:
    """A change's arguments, or its subject's stored state, as name and value pairs (none: it did not exist)."""
    return [] if state is None else [(_words(name), _amount_or_value(name, v, currency)) for name, v in state.items()]


# --- acts ---------------------------------------------------------------------------------------------


async def record(core: ConsoleCore, request: Request) -> Response:
    """The checked proposals and the note, recorded as one change set; then that change set, to revert."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    try:
        keys, shown = _accepted(form.get("accept", []))
        async with core.store.write() as tx:
            accepted = await packet.accepted_adjustments(tx, keys, field="accept", shown=shown) if keys else []
            view = await changesets.record_review(tx, session.actor, adjustments=accepted, note=first(form, "note"))
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), "/review")
    return core.done(request, session, _recorded(view), f"/review/change-sets/{view.id}")


def _accepted(values: list[str]) -> tuple[list[str], dict[str, str]]:
    """The checked boxes, each `key@version` (the change the operator read), as keys and their versions.

    The version rides in the checkbox's own value, so only checked proposals send a field (an agency
    cannot swell the form past its field limit with proposals of its making), and no key arrives without
    the version it must match.
    """
    shown: dict[str, str] = {}
    for value in values:
        key, at, version = value.rpartition("@")
        if not at or not key.strip() or not version:
            raise InvalidInput(
                f"accept: {value[:80]!r} does not name a proposal as the review shows it (key@version); nothing "
                "was changed. Reload the review and check the proposals again."
            )
        shown.setdefault(key.strip(), version)
    return list(shown), shown


def _recorded(view: ChangeSetView) -> str:
    if not view.changes:
        return f"{view.id}: review recorded, with no changes."
    count = len(view.changes)
    return f"{view.id}: review recorded, {count} change{'' if count == 1 else 's'} applied. Revert it below to undo."


async def revert(core: ConsoleCore, request: Request) -> Response:
    """Undo a change set as a new one (refused, changing nothing, if what it touched has moved on since)."""
    session = await core.session(request)
    form = await core.checked_form(request, session)
    label = _label(request.path_params["change_set"])
    try:
        async with core.store.write() as tx:
            view = await changesets.revert_change_set(tx, session.actor, label, note=first(form, "note"))
    except ChiefOfStaffError as refused:
        return core.refused(request, session, str(refused), f"/review/change-sets/{label}")
    count = len(view.changes)
    message = f"{view.id}: reverted {view.reverts}, {count} change{'' if count == 1 else 's'} undone."
    return core.done(request, session, message, f"/review/change-sets/{view.id}")

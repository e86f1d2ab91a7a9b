"""The review packet: everything the operator needs to judge a period, and what they could adjust.

One read of the workspace: what changed since this viewer last looked, each goal's progress, pace
and forecast, the agencies' scorecards for the period, the anomalies the server found, the
decisions waiting, and proposals. It reads what the brief, the scorecards, the anomalies and the
proposals read (rollups and index ranges), so it costs the same at ten thousand outcomes and at a
million. Proposals are only proposals: accepting one is `changesets.record_review`.

The packet never fails because of what is stored: a section the stored data does not let it
compute (a number written before numbers were bounded, say) is left empty and named in
`problems`, an item holding a number too large to show is left out and named there too, and the
rest of the packet is shown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from chief_of_staff.core.clock import local_date
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import Model, money
from chief_of_staff.domain import brief, decisions, goals, viewers, workspace
from chief_of_staff.domain.pace import way
from chief_of_staff.domain.review import anomalies, changesets, proposals, scorecards
from chief_of_staff.domain.review.adjustments import Adjustment
from chief_of_staff.domain.review.anomalies import Anomaly
from chief_of_staff.domain.review.scorecards import GrantSpend, Scorecard

MAX_DAYS = 92
PENDING_SHOWN = 10
# What bad stored data raises while a section is computed: overflow, a malformed date or JSON, a
# value a view refuses. Anything else (the store failing, a bug) still fails the call.
_DATA_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError)

T = TypeVar("T")
log = logging.getLogger(__name__)


class LastReview(Model):
    id: str
    at: str
    note: str
    changes: int
    reverted_by: str | None


class Packet(Model):
    workspace: str
    timezone: str
    today: date
    viewer: str
    since: date
    until: date
    last_review: LastReview | None
    changes: brief.Changes
    goals: list[goals.GoalView]
    scorecards: list[Scorecard]
    anomalies: list[Anomaly]
    pending_decisions: list[decisions.DecisionView]
    pending_decision_count: int
    proposals: list[proposals.Proposal]
    problems: list[str] = Field(
        default_factory=list, description="Sections or items the stored data did not let the packet show, and why"
    )


async def build_packet(tx: Tx, *, viewer: str = "operator", days: int = 7, mark_seen: bool = False) -> Packet:
    """The packet for the `days` local days up to today; with mark_seen (a write unit) move the viewer's mark.

    An agency's viewer ("agency:Outbound/SDR") gets its own agency's goals, scorecard, anomalies,
    decisions and proposals only, and not the operator's last review (chief_of_staff.domain.viewers).
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days: send a whole number of days from 1 to {MAX_DAYS}, e.g. 7 for a weekly review.")
    space = await workspace.get(tx)
    who = await viewers.resolve_viewer(tx, viewer)
    today = local_date(tx.now, space.timezone)
    since = today - timedelta(days=days - 1)
    problems: list[str] = []
    unchanged = (brief.Changes(since=None, total=0, more=False, by_action={}, latest=[]), None)
    changes, head = await _section(problems, "changes", brief.changes_since(tx, who), unchanged)
    pending, pending_count = await _section(
        problems,
        "pending_decisions",
        decisions.pending_with_count(tx, limit=PENDING_SHOWN, agency_id=who.agency_id),
        ([], 0),
    )
    cards = await _section(problems, "scorecards", scorecards.scorecards(tx, since=since, until=today), [])
    found = await _section(problems, "anomalies", anomalies.anomalies(tx, today=today), [])
    proposed = await _section(problems, "proposals", proposals.proposals(tx, today=today), [])
    if who.is_agency:
        cards = [card for card in cards if card.agency == who.agency]
        found, proposed = await _own(tx, who, found), await _own(tx, who, proposed)
    packet = Packet(
        workspace=space.name,
        timezone=space.timezone,
        today=today,
        viewer=who.name,
        since=since,
        until=today,
        last_review=None if who.is_agency else await _section(problems, "last_review", _last_review(tx), None),
        changes=changes,
        goals=_shown(
            problems, "goals", await _section(problems, "goals", goals.list_goals(tx, agency=who.agency_ref), [])
        ),
        scorecards=_shown(problems, "scorecards", cards),
        anomalies=_shown(problems, "anomalies", found),
        pending_decisions=pending,
        pending_decision_count=pending_count,
        proposals=_shown(problems, "proposals", proposed),
        problems=problems,
    )
    if mark_seen and head is not None:
        await brief.advance_viewer(tx, who.name, head)
    return packet


async def accepted_adjustments(
    tx: Tx, keys: Sequence[str], *, field: str = "accept", shown: Mapping[str, str] | None = None
) -> list[Adjustment]:
    """The adjustments of the proposals the operator accepts by key (proposals.proposal_key), in the order named.

    Keys are matched against what the operator's packet proposes now, so a proposal that is gone since
    the operator read the list refuses the whole acceptance (InvalidInput naming it and what is proposed
    now). With `shown` (key -> proposals.proposal_version of the proposal the caller showed), a proposal
    that now makes another change under the same key is refused too. A key named twice counts once.
    """
    picked = list(dict.fromkeys(key.strip() for key in keys if key.strip()))
    offered = {proposals.proposal_key(p): p for p in await _operator_proposals(tx)}
    missing = [key for key in picked if key not in offered]
    if not picked or missing:
        what = f"{', '.join(missing)} {_is(missing)} not proposed now" if missing else "no proposal named"
        raise InvalidInput(
            f"{field}: {what} (proposed: {', '.join(offered) or 'none'}); nothing was changed. Name proposals "
            "by the keys the review lists now, e.g. grant_widen:GR4."
        )
    # With `shown`, a key without the version it was read at is as good as moved: the check fails closed.
    moved = [key for key in picked if shown is not None and shown.get(key) != proposals.proposal_version(offered[key])]
    if moved:
        now = " ".join(f"{key} now proposes: {offered[key].message}" for key in moved)
        raise InvalidInput(
            f"{field}: {', '.join(moved)} {_is(moved)} no longer the change you read; nothing was changed. {now} "
            "Read the review again and accept what it proposes now."
        )
    return [offered[key].adjustment for key in picked]


def _is(keys: Sequence[str]) -> str:
    return "is" if len(keys) == 1 else "are"


async def _operator_proposals(tx: Tx) -> list[proposals.Proposal]:
    """The proposals the operator's packet shows now, and only those (build_packet computes them the same way)."""
    problems: list[str] = []
    today = local_date(tx.now, (await workspace.get(tx)).timezone)
    found = await _section(problems, "proposals", proposals.proposals(tx, today=today), [])
    return _shown(problems, "proposals", found)


Subjected = TypeVar("Subjected", Anomaly, proposals.Proposal)


async def _own(tx: Tx, who: viewers.Viewer, items: list[Subjected]) -> list[Subjected]:
    """The items whose subject (a task, a grant, a key result...) belongs to the viewer's agency."""
    owner = await viewers.owners(tx, (item.subject for item in items))
    return [item for item in items if owner.get(item.subject) == who.agency_id]


async def _section(problems: list[str], name: str, compute: Awaitable[T], empty: T) -> T:
    """One section of the packet, or `empty` and a line in `problems` when the stored data breaks it."""
    try:
        return await compute
    except _DATA_ERRORS as error:
        log.warning("review packet: the %s section could not be computed", name, exc_info=True)
        problems.append(
            f"{name}: could not be computed from the stored data ({type(error).__name__}); it is left empty "
            "and the other sections are complete."
        )
        return empty


def _shown(problems: list[str], name: str, items: list[T]) -> list[T]:
    """The items whose every number can be shown; one left out is named in `problems`."""
    kept = []
    for item in items:
        if _finite(item.model_dump() if isinstance(item, BaseModel) else item):
            kept.append(item)
        else:
            label = getattr(item, "id", None) or getattr(item, "agency", None) or getattr(item, "kind", None) or "one"
            problems.append(
                f"{name}: {label} holds a number that cannot be shown (infinite or not a number, stored before "
                "numbers were bounded); left out."
            )
    return kept


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


async def _last_review(tx: Tx) -> LastReview | None:
    found = await changesets.last_review(tx)
    if found is None:
        return None
    return LastReview(
        id=found.id, at=found.created_at, note=found.note, changes=len(found.changes), reverted_by=found.reverted_by
    )


# --- markdown ------------------------------------------------------------------------------------


def _money(cents: int | None) -> str:
    return "-" if cents is None else money(cents)


def _scorecard_lines(packet: Packet) -> list[str]:
    lines = []
    for card in packet.scorecards:
        rate = "-" if card.success_rate is None else f"{card.success_rate:.0%}"
        lines.append(
            f"- **{card.agency}**: {card.outcomes} outcomes ({card.successes} ok, {card.partials} partial, "
            f"{card.failures} failed, {rate} success), cost {_money(card.cost_cents)} "
            f"({_money(card.cost_per_outcome_cents)} per outcome), {card.minutes_saved} minutes saved"
        )
        lines += [
            f"  - {kr.key_result} {kr.metric}: moved {kr.moved:g} {kr.unit}, "
            f"{_money(kr.cost_per_unit_cents)} per unit".rstrip()
            for kr in card.key_results
        ]
        lines += [f"  - role {role.role}: {role.outcomes} outcomes, {role.failures} failed" for role in card.roles]
        lines += [_grant_line(grant) for grant in card.grants if grant.budgets]
        asked = card.decisions
        if asked.asked:
            lines.append(
                f"  - decisions: {asked.asked} asked, {asked.approved} approved, {asked.denied} denied, "
                f"{asked.expired} expired, {asked.pending} pending"
            )
    return lines or ["- No agencies yet."]


def _grant_line(grant: GrantSpend) -> str:
    """Authority used against authority granted: "GR3 spend.ads (SDR): week 2026-W49 90.00 of 90.00"."""
    used = []
    for budget in grant.budgets:
        parts = [f"{budget.used_count} of {budget.max_count}"] if budget.max_count is not None else []
        if budget.max_cents is not None:
            parts.append(f"{money(budget.used_cents)} of {money(budget.max_cents)}")
        used.append(f"{budget.period} {budget.periods} {', '.join(parts)}")
    who = f" ({grant.role})" if grant.role else ""
    stopped = "" if grant.status == "active" else f" [{grant.status}]"
    return f"  - {grant.grant} {grant.capability}{who}{stopped}: " + "; ".join(used)


def _goal_lines(packet: Packet) -> list[str]:
    lines = []
    for goal in packet.goals:
        lines.append(f"- **{goal.id} {goal.title}** ({goal.agency})")
        for kr in goal.key_results:
            risk = f"; at risk: {kr.risk_reason}" if kr.at_risk else ""
            outlook = kr.forecast_note if kr.forecast_at_due is None else f"forecast {kr.forecast_at_due:g}"
            lines.append(
                f"  - {kr.id} {kr.metric}: {kr.current:g} of {kr.target:g} {kr.unit} by {kr.due_date}, "
                f"{way(kr.progress)} ({kr.pace}, expected {kr.expected_now:g} today; {outlook}){risk}"
            )
    return lines or ["- No goals yet."]


def render_packet(packet: Packet) -> str:
    """The packet as markdown, for the resource, the command line and the weekly review prompt."""
    last = packet.last_review
    lines = [
        f"# Review for {packet.viewer}: {packet.workspace}, {packet.since} to {packet.until} ({packet.timezone})",
        "",
        f"Last review: {last.id} at {last.at}"
        + (f" ({last.note})" if last.note else "")
        + (f", reverted by {last.reverted_by}" if last.reverted_by else "")
        if last
        else "Last review: none yet.",
        "",
        "## Since you last looked",
        brief.change_summary(packet.changes, packet.timezone),
        *[f"- {item}" for item in packet.changes.latest],
        "",
        "## Goals: progress, pace and forecast",
        *_goal_lines(packet),
        "",
        "## Scorecards",
        *_scorecard_lines(packet),
        "",
        f"## Anomalies ({len(packet.anomalies)})",
        *([f"- [{a.kind}] {a.message}" for a in packet.anomalies] or ["- None found."]),
        "",
        f"## Decisions waiting ({packet.pending_decision_count})",
        *([decisions.markdown_item(d) for d in packet.pending_decisions] or ["- None."]),
        "",
        f"## Proposals ({len(packet.proposals)})",
        *([f"- [{p.kind}] {p.message}" for p in packet.proposals] or ["- Nothing to propose."]),
    ]
    if packet.problems:
        lines += ["", f"## Not shown ({len(packet.problems)})", *[f"- {problem}" for problem in packet.problems]]
    if packet.proposals:
        lines += [
            "",
            "Accept any with `record_review` (or `chief-of-staff review-record`); each proposal carries "
            "its adjustment.",
        ]
    return "\n".join(lines) + "\n"

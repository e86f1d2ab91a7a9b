"""The brief: what changed since this viewer last looked, and what needs the operator now.

It reads rollups and indexes only (key-result rollups, open tasks, current budget
periods, pending decisions, the audit tail since the viewer's cursor), so it
costs the same on an empty workspace and on one with a million outcomes.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import local_date, local_minute, parse_ts
from chief_of_staff.core.db import Tx
from chief_of_staff.core.fields import View, money
from chief_of_staff.domain import agencies, decisions, goals, inbox, outcomes, routines, trust, viewers, workspace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.pace import way

# The change count stops here: a viewer back from a long absence sees "10000+" rather than a table scan.
CHANGE_SCAN_LIMIT = 10_000
HIGHLIGHTS = 8
# Changes worth a line of their own; the rest are only counted.
NOTABLE = (
    "outcome.",
    "task.complete",
    "decision.",
    "grant.",
    "goal.",
    "agency.",
    "role.",
    "blueprint.",
    "review.",
    "routine.pause",
    "routine.resume",
)
# (one, many) for each kind of change, in the operator's words.
PHRASES = {
    "workspace.create": ("workspace created", "workspaces created"),
    "blueprint.apply": ("blueprint applied", "blueprints applied"),
    "agency.create": ("agency created", "agencies created"),
    "agency.update": ("agency changed", "agency changes"),
    "role.create": ("role created", "roles created"),
    "role.update": ("role changed", "role changes"),
    "goal.create": ("goal created", "goals created"),
    "goal.adjust": ("goal adjusted", "goal adjustments"),
    "lesson.add": ("lesson added", "lessons added"),
    "routine.add": ("routine added", "routines added"),
    "routine.pause": ("routine paused", "routines paused"),
    "routine.resume": ("routine resumed", "routines resumed"),
    "lesson.remove": ("lesson removed", "lessons removed"),
    "lesson.restore": ("lesson restored", "lessons restored"),
    "review.record": ("review recorded", "reviews recorded"),
    "review.revert": ("review reverted", "reviews reverted"),
    "outcome.log": ("outcome logged", "outcomes logged"),
    "task.add": ("task added", "tasks added"),
    "task.claim": ("task claimed", "tasks claimed"),
    "task.update": ("task update", "task updates"),
    "task.complete": ("task completed", "tasks completed"),
    "authority.authorize": ("authorization", "authorizations"),
    "authority.settle": ("settlement", "settlements"),
    "authority.release": ("release", "releases"),
    "decision.open": ("decision opened", "decisions opened"),
    "decision.approve": ("decision approved", "decisions approved"),
    "decision.deny": ("decision denied", "decisions denied"),
    "decision.expire": ("decision expired", "decisions expired"),
    "decision.redeem": ("approval used", "approvals used"),
    "decision.cancel": ("decision cancelled", "decisions cancelled"),
    "task.wait": ("task waiting on you", "tasks waiting on you"),
    "task.resume": ("task back from a decision", "tasks back from decisions"),
    "console.link": ("console link made", "console links made"),
    "console.login": ("console login", "console logins"),
    "grant.create": ("grant created", "grants created"),
    "grant.revoke": ("grant revoked", "grants revoked"),
    "grant.update": ("grant changed", "grants changed"),
}


class Changes(View):
    since: str | None
    total: int
    more: bool
    by_action: dict[str, int]
    latest: list[str]


class Brief(View):
    workspace: str
    timezone: str
    today: date
    viewer: str
    changes: Changes
    goals: list[goals.GoalView]
    inbox: inbox.InboxSummary
    authority: list[grants.GrantView]
    pending_decisions: list[decisions.DecisionView]
    pending_decision_count: int
    recent_outcomes: list[outcomes.OutcomeView]
    chat_allowance: trust.Allowance | None = None
    # Each paused agency in a sentence (since when, by whom, who may resume it): a pause stops work silently.
    paused: list[str] = Field(default_factory=list)


async def housekeeping(tx: Tx, actor: Actor) -> None:
    """The server's own chores, done when someone looks rather than on a heartbeat.

    One probe statement asks which chores have work; usually none has, and none runs.
    """
    today = local_date(tx.now, (await workspace.get(tx)).timezone).isoformat()
    due = await tx.one(
        f"SELECT {decisions.DUE_EXISTS} AS decisions, {ledger.EXPIRED_EXISTS} AS holds, "
        f"{routines.DUE_EXISTS} AS routines",
        {"now": tx.now_text, "today": today},
    )
    assert due is not None
    if due["decisions"]:
        await ledger.expire_decisions(tx)
    if due["holds"]:
        await ledger.spend_expired(tx)
    if due["routines"]:
        await routines.materialize_routines(tx, actor)


# The viewer's cursor (a row with id NULL, when the viewer has looked before) and the audit rows after
# it, in one statement; each part reads through its own index and the tail stops at the limit.
_CHANGES = (
    "SELECT last_audit_id AS after, last_seen_at AS since, NULL AS id, NULL AS action, NULL AS subject "
    "FROM viewers WHERE name = :viewer "
    "UNION ALL SELECT * FROM (SELECT NULL, NULL, id, action, subject FROM audit_log "
    "WHERE id > coalesce((SELECT last_audit_id FROM viewers WHERE name = :viewer), 0) ORDER BY id LIMIT :limit)"
)
# The same for an agency's viewer: the tail is numbered and scanned to the same limit, and only the rows
# about the agency's own work objects are returned (see chief_of_staff.domain.viewers), with the number of
# rows scanned and the last id counted, so the cursor moves past everything scanned (others' rows too)
# and "more" still means the scan stopped early.
_AGENCY_CHANGES = (
    "WITH tail AS MATERIALIZED (SELECT id, action, subject, row_number() OVER (ORDER BY id) AS n FROM "
    "(SELECT id, action, subject FROM audit_log WHERE id > coalesce((SELECT last_audit_id FROM viewers "
    "WHERE name = :viewer), 0) ORDER BY id LIMIT :scan)) "
    "SELECT last_audit_id AS after, last_seen_at AS since, NULL AS id, NULL AS action, NULL AS subject, "
    "NULL AS scanned, NULL AS head FROM viewers WHERE name = :viewer "
    "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, count(*), max(CASE WHEN n <= :limit THEN id END) FROM tail "
    "UNION ALL SELECT NULL, NULL, id, action, subject, NULL, NULL FROM tail "
    f"WHERE n <= :limit AND {viewers.owner_sql('subject', viewers.WORK_KINDS)} = :agency"
)


async def changes_since(tx: Tx, viewer: viewers.Viewer) -> tuple[Changes, int | None]:
    """What changed since the viewer's cursor, and the audit id to move the cursor to once it has looked
    (None when nothing was read past it).

    An agency's viewer counts only the changes to its own work objects (chief_of_staff.domain.viewers).
    """
    if viewer.is_agency:
        params = {"viewer": viewer.name, "scan": CHANGE_SCAN_LIMIT + 1, "limit": CHANGE_SCAN_LIMIT}
        found = await tx.all(_AGENCY_CHANGES, {**params, "agency": viewer.agency_id})
    else:
        found = await tx.all(_CHANGES, {"viewer": viewer.name, "limit": CHANGE_SCAN_LIMIT + 1})
    cursor = next((row for row in found if row["id"] is None and row["after"] is not None), None)
    after, since = (0, None) if cursor is None else (cursor["after"], cursor["since"])
    # A compound SELECT promises no order without an ORDER BY of its own; the tail is sorted here instead.
    rows = sorted((row for row in found if row["id"] is not None), key=lambda row: row["id"])
    if viewer.is_agency:
        scan = next(row for row in found if row["id"] is None and row["after"] is None)
        more = scan["scanned"] > CHANGE_SCAN_LIMIT
        head = after if scan["head"] is None else scan["head"]
    else:
        more = len(rows) > CHANGE_SCAN_LIMIT
        rows = rows[:CHANGE_SCAN_LIMIT]
        head = rows[-1]["id"] if rows else after
    by_action: dict[str, int] = {}
    for row in rows:
        by_action[row["action"]] = by_action.get(row["action"], 0) + 1
    notable = [r for r in rows if r["action"].startswith(NOTABLE)]
    latest = [f"{r['action']} {r['subject']}".strip() for r in notable[-HIGHLIGHTS:]]
    changes = Changes(since=since, total=len(rows), more=more, by_action=by_action, latest=latest)
    return changes, (head if head != after else None)


async def build_brief(tx: Tx, viewer: str | viewers.Viewer = viewers.OPERATOR, *, mark_seen: bool = False) -> Brief:
    """Assemble the brief as `viewer` sees it; with mark_seen (a write transaction) move its cursor to now.

    An agency's viewer ("agency:Outbound/SDR") gets its own agency only, and no chat allowance (the
    operator's setting): see chief_of_staff.domain.viewers for what each viewer sees.
    """
    ws = await workspace.get(tx)
    who = viewer if isinstance(viewer, viewers.Viewer) else await viewers.resolve_viewer(tx, viewer)
    changes, head = await changes_since(tx, who)
    pending, pending_count = await decisions.pending_with_count(tx, limit=10, agency_id=who.agency_id)
    brief = Brief(
        workspace=ws.name,
        timezone=ws.timezone,
        today=local_date(tx.now, ws.timezone),
        viewer=who.name,
        changes=changes,
        goals=await goals.list_goals(tx, agency=who.agency_ref),
        inbox=await inbox.inbox_summary(tx, agency_id=who.agency_id),
        authority=await grants.list_grants(tx, agency=who.agency_ref),
        pending_decisions=pending,
        pending_decision_count=pending_count,
        recent_outcomes=await outcomes.recent_outcomes(tx, agency=who.agency_ref, limit=5),
        chat_allowance=None if who.is_agency else await trust.chat_allowance(tx),
        paused=await agencies.paused_lines(tx, ws.timezone, agency_id=who.agency_id),
    )
    if mark_seen and head is not None:
        await advance_viewer(tx, who.name, head)
    return brief


async def advance_viewer(tx: Tx, viewer: str, head: int) -> None:
    """Move the viewer's cursor: its next brief or review packet starts after audit row `head`."""
    await tx.run(
        "INSERT INTO viewers (name, last_audit_id, last_seen_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET last_audit_id = excluded.last_audit_id, "
        "last_seen_at = excluded.last_seen_at",
        (viewer, head, tx.now_text),
    )


def change_summary(changes: Changes, timezone: str) -> str:
    """How many changes since the viewer last looked, by kind; "since" in the workspace's local time."""
    when = None if not changes.since else local_minute(parse_ts(changes.since), timezone)
    if not changes.total:
        return "Nothing has changed" + (f" since {when}." if when else ".")
    counted = sorted(changes.by_action.items(), key=lambda item: (-item[1], item[0]))
    parts = [f"{count} {PHRASES.get(action, (action, action))[count != 1]}" for action, count in counted]
    plus = "+" if changes.more else ""
    since = f" since {when}" if when else ""
    noun = "change" if changes.total == 1 and not changes.more else "changes"
    return f"{changes.total}{plus} {noun}{since}: " + ", ".join(parts) + "."


def _goal_lines(brief: Brief) -> list[str]:
    lines = []
    for goal in brief.goals:
        lines.append(f"- **{goal.id} {goal.title}** ({goal.agency})")
        for kr in goal.key_results:
            lines.append(
                f"  - {kr.id} {kr.metric}: {kr.current:g} of {kr.target:g} {kr.unit} by {kr.due_date}, "
                f"{way(kr.progress)} — {kr.pace}" + (f", behind by {kr.behind_by:g}" if kr.behind_by else "")
            )
    return lines or ["- No goals yet. Apply a blueprint or create a goal."]


def _authority_lines(brief: Brief) -> list[str]:
    lines = []
    for grant in brief.authority:
        used = ", ".join(
            f"{b.period}: {b.used_count}/{b.max_count}"
            if b.max_count is not None
            else f"{b.period}: {money(b.used_cents)}/{money(b.max_cents or 0)}"
            for b in grant.budgets
        )
        who = f"{grant.agency}/{grant.role}" if grant.role else grant.agency
        lines.append(f"- {grant.id} {grant.capability} ({who}, {grant.mode}) {used}".rstrip())
    return lines or ["- No authority granted yet: every action will ask you first."]


def _allowance_lines(brief: Brief) -> list[str]:
    allowance = brief.chat_allowance
    if allowance is None:  # an agency's brief: the chat allowance is the operator's setting
        return []
    return [
        f"- chat allowance: {money(allowance.left_cents)} of {money(allowance.allowance_cents)} "
        f"left for approvals in chat over {allowance.window_days} days"
    ]


def render_brief(brief: Brief) -> str:
    """The brief as markdown, for the resource, the command line and the daily prompt."""
    box = brief.inbox
    # An agency reads the same brief of its own agency; the decisions in it wait for the operator, not for it.
    operator = brief.chat_allowance is not None
    whom = "you" if operator else "the operator"
    lines = [
        f"# Brief for {brief.viewer} — {brief.workspace}, {brief.today.isoformat()} ({brief.timezone})",
        "",
        "## Since you last looked",
        change_summary(brief.changes, brief.timezone),
        *[f"- {item}" for item in brief.changes.latest],
        "",
        f"## Decisions waiting for {whom} ({brief.pending_decision_count})",
        *([decisions.markdown_item(d) for d in brief.pending_decisions] or ["- None."]),
        *(
            [
                "Decide in chat, in the console (open_console), or in a terminal: "
                "`chief-of-staff approve D…` / `chief-of-staff deny D…`."
            ]
            if brief.pending_decisions and operator
            else []
        ),
        "",
        *(["## Paused", *[f"- {line}" for line in brief.paused], ""] if brief.paused else []),
        "## Goals",
        *_goal_lines(brief),
        "",
        "## Inbox",
        f"- open {box.open}, claimed {box.claimed}, blocked {box.blocked}, waiting on {whom} {box.waiting}, "
        f"overdue {box.overdue}; done today {box.done_today}, failed today {box.failed_today}",
        *[f"- next: {t.id} [{t.priority}] {t.title}" for t in box.next_up],
        "",
        "## Authority used",
        *_authority_lines(brief),
        *_allowance_lines(brief),
        "",
        "## Recent outcomes",
        *([f"- {o.id} {o.result}: {o.summary}" for o in brief.recent_outcomes] or ["- None yet."]),
    ]
    return "\n".join(lines) + "\n"

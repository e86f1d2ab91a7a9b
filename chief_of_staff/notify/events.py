"""The events a running server raises on its own clock: decisions about to expire, the daily brief, anomalies.

Events caused by a change (a decision opened, a grant changed) are queued by that change's
own transaction. These three have no such change: time makes them due. A running server
looks for them on each tick of its delivery loop (`webhook_runner`): reads first, and a
write only when something is due; with nobody listening a tick is one indexed read. Each
is queued under a dedupe key, so however many ticks or server processes find it, an
endpoint gets it once: one `decision.expiring` per decision, one `brief.daily` per local
day, one `anomaly.found` per anomaly per local day.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts, parse_ts
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import InvalidInput, OperatorActRefused
from chief_of_staff.domain import brief, decisions, outbox, viewers, workspace
from chief_of_staff.domain.review import anomalies

DAILY_EVENTS = frozenset({"brief.daily", "anomaly.found"})

# A pending decision is announced as expiring this long before it does.
EXPIRING_WINDOW = timedelta(hours=12)
_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


async def subscribed_events(tx: Tx) -> set[str]:
    """The events some active endpoint wants; empty when nobody listens (the usual case)."""
    rows = await tx.all(
        "SELECT events FROM webhook_endpoints INDEXED BY webhook_endpoints_active "
        "WHERE disabled_at IS NULL AND removed_at IS NULL"
    )
    return {event for row in rows for event in row["events"].split(",") if event}


async def expiring_due(tx: Tx, announced: set[str]) -> list[int]:
    """Pending decisions inside the expiring window that this process has not announced yet (a read)."""
    numbers = json.dumps(sorted(ids.parse_id("decision", text) for text in announced))
    rows = await tx.all(
        "SELECT id FROM decisions INDEXED BY decisions_pending "
        "WHERE status = 'pending' AND expires_at > ? AND expires_at <= ? "
        "AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY expires_at LIMIT 100",
        (tx.now_text, format_ts(tx.now + EXPIRING_WINDOW), numbers),
    )
    return [row["id"] for row in rows]


async def daily_due(tx: Tx) -> str | None:
    """Today's local date once the workspace's daily brief time has passed; None before it."""
    space = await workspace.get(tx)
    local_now = tx.now.astimezone(ZoneInfo(space.timezone))
    return local_now.date().isoformat() if local_now.strftime("%H:%M") >= space.daily_brief_at else None


async def queue_expiring(tx: Tx, decision_ids: list[int]) -> int:
    """Queue `decision.expiring` for these decisions, once per decision and endpoint."""
    if not decision_ids:
        return 0
    return await _expiring_decisions(tx, decision_ids)


async def queue_daily(tx: Tx, today: str, wanted: set[str]) -> int:
    """Queue the day's brief and anomalies for the endpoints that want them, once per day and endpoint."""
    queued = 0
    if "brief.daily" in wanted:
        queued += await _daily_brief(tx, today)
    if "anomaly.found" in wanted:
        queued += await _anomalies(tx, today)
    return queued


async def _expiring_decisions(tx: Tx, decision_ids: list[int]) -> int:
    queued = 0
    for decision_id in decision_ids:
        view = await decisions.get_decision(tx, ids.format_id("decision", decision_id))
        if view.status != "pending":
            continue
        left = parse_ts(view.expires_at) - tx.now
        queued += await outbox.emit(
            tx,
            "decision.expiring",
            {**decisions.payload(view), "hours_left": round(left.total_seconds() / 3600, 1)},
            dedupe_key=f"decision.expiring:{view.id}",
        )
    return queued


async def _daily_brief(tx: Tx, today: str) -> int:
    # Viewer "webhook" has its own cursor, so sending the brief never moves the operator's mark.
    view = await brief.build_brief(tx, viewers.WEBHOOK_VIEWER, mark_seen=False)
    lines = [
        f"{view.pending_decision_count} decisions wait for you"
        if view.pending_decision_count
        else "No decisions wait for you",
        f"Inbox: {view.inbox.open} open, {view.inbox.overdue} overdue, {view.inbox.done_today} done today",
    ]
    for goal in view.goals:
        for key_result in goal.key_results:
            lines.append(
                f"{goal.title} / {key_result.metric}: {key_result.current:g} of {key_result.target:g} "
                f"({key_result.pace})"
            )
    return await outbox.emit(
        tx,
        "brief.daily",
        {
            "date": today,
            "summary": lines[:12],
            "pending_decisions": view.pending_decision_count,
        },
        dedupe_key=f"brief.daily:{today}",
    )


async def _anomalies(tx: Tx, today: str) -> int:
    queued = 0
    for anomaly in await anomalies.anomalies(tx):
        queued += await outbox.emit(
            tx,
            "anomaly.found",
            {
                "kind": anomaly.kind,
                "subject": anomaly.subject,
                "summary": anomaly.message,
            },
            dedupe_key=f"anomaly.found:{anomaly.kind}:{anomaly.subject}:{today}",
        )
    return queued


async def set_daily_brief_at(tx: Tx, actor: Actor, at: str) -> str:
    """Set the local time of day the daily brief is sent, e.g. "07:30"."""
    if not actor.is_operator:
        raise OperatorActRefused(
            "Changing when the daily brief is sent is the operator's call: chief-of-staff notify daily-at HH:MM"
        )
    text = at.strip() if isinstance(at, str) else ""
    if not _CLOCK_TIME.match(text):
        raise InvalidInput(f"daily-at: send a 24-hour local time like 07:30, not {at!r}.")
    await tx.run("UPDATE workspace SET daily_brief_at = ? WHERE id = 1", (text,))
    tx.memo.pop("workspace", None)
    await audit.append(tx, actor, "workspace.daily_brief_at", "workspace", {"daily_brief_at": text})
    return text

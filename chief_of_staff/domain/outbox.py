"""The webhook outbox: what the operator's endpoints are to be told, queued in the change's own transaction.

`emit` is called inside the write transaction of the change it reports, so the delivery row
exists exactly when the change does (the transactional outbox); chief_of_staff.notify.delivery
sends it later, at least once, with the same `webhook-id` on every attempt. The endpoints
themselves are managed by chief_of_staff.notify.endpoints.
What `data` carries per event (ids are short strings, money is int cents, times are stored UTC text):

- ``decision.opened``: decision_id ("D7"), title, kind, amount_cents (int or None), agency, role
  (names or None), the request it is bound to (capability, target, task_id, grant_id; None when not
  an escalation), exceeds (every bound the request is past, in words), redeem_with (the authorize
  arguments that use an approval, or None), adjustment (a proposal's ready change, or None), expires_at.
- ``decision.expiring``: the same, plus hours_left (a number).
- ``grant.changed``: grant_id ("GR3"), change ("created", "updated" or "revoked"), version (int),
  agency, capability, mode.
- ``anomaly.found``: kind, subject, summary.
- ``brief.daily``: date (local YYYY-MM-DD), summary (a list of short lines), pending_decisions (int).

The `standard` body is ``{"type": event, "timestamp": <UTC>, "data": data}``; the `slack` body is
``{"text": ...}``, a readable message (decisions carry their amount and the commands that decide them).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal
from zoneinfo import ZoneInfo

from chief_of_staff.core.clock import parse_ts
from chief_of_staff.core.db import Tx
from chief_of_staff.core.fields import money
from chief_of_staff.domain import workspace

EVENTS = ("decision.opened", "decision.expiring", "brief.daily", "anomaly.found", "grant.changed")
TEST_EVENT = "webhook.test"
FORMATS = ("standard", "slack")
Format = Literal["standard", "slack"]


# --- the outbox ---------------------------------------------------------------------------------------


async def emit(tx: Tx, event: str, data: dict[str, Any], *, dedupe_key: str | None = None) -> int:
    """Queue `event` for every active endpoint that subscribed to it, in the caller's transaction.

    Returns how many deliveries were queued. With a `dedupe_key` (e.g. "brief.daily:2026-11-23") an
    endpoint gets the event at most once however often it is emitted. With no endpoints this is one
    read of an empty index.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; known: {', '.join(EVENTS)}")
    endpoints = await tx.all(
        "SELECT id, events, format FROM webhook_endpoints WHERE disabled_at IS NULL AND removed_at IS NULL"
    )
    bodies: dict[str, str] = {}
    queued = 0
    for endpoint in endpoints:
        if event in endpoint["events"].split(","):
            kind = endpoint["format"]
            bodies[kind] = bodies.get(kind) or await body(tx, kind, event, data)
            queued += (await enqueue(tx, endpoint["id"], event, bodies[kind], dedupe_key)) is not None
    return queued


async def enqueue(tx: Tx, endpoint_id: int, event: str, body: str, dedupe_key: str | None) -> str | None:
    """One outbox row, due now; None when this endpoint already has the dedupe key."""
    message_id = "msg_" + secrets.token_urlsafe(18)
    row = await tx.one(
        "INSERT INTO webhook_deliveries (endpoint_id, message_id, event, body, created_at, next_attempt_at, "
        "dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, dedupe_key) DO NOTHING RETURNING id",
        (endpoint_id, message_id, event, body, tx.now_text, tx.now_text, dedupe_key),
    )
    return None if row is None else message_id


async def body(tx: Tx, kind: str, event: str, data: dict[str, Any]) -> str:
    """The exact JSON text every attempt will send."""
    payload = (
        {"text": await _slack_text(tx, event, data)}
        if kind == "slack"
        else {"type": event, "timestamp": tx.now_text, "data": data}
    )
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


# --- readable messages (the slack format) -------------------------------------------------------------


def _esc(value: object) -> str:
    """Workspace text as Slack shows it literally: no links, mentions or markup smuggled in."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _money(cents: object, currency: str) -> str | None:
    if not isinstance(cents, int) or isinstance(cents, bool):
        return None
    return money(cents, currency)


def _local_time(stored: object, timezone: str) -> str:
    try:
        instant = parse_ts(str(stored))
    except ValueError:
        return _esc(stored)
    return instant.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %H:%M ") + timezone


async def _decision_text(tx: Tx, data: dict[str, Any], verb: str) -> str:
    space = await workspace.get(tx)
    decision = _esc(data.get("decision_id", "?"))
    who = " / ".join(_esc(part) for part in (data.get("agency"), data.get("role")) if part)
    amount = _money(data.get("amount_cents"), space.currency)
    facts = [fact for fact in (amount, _esc(data.get("kind", "")), who) if fact]
    # The title is the agency's: one line, no backticks, so it cannot draw a command of its own.
    title = " ".join(str(data.get("title", "")).replace("`", "'").split())
    lines = [f"Decision {decision} {verb}: *{_esc(title)}*"]
    if facts:
        lines.append(" · ".join(facts))
    bound = [
        f"{label} {_esc(data[key])}"
        for label, key in (
            ("capability", "capability"),
            ("target", "target"),
            ("task", "task_id"),
            ("grant", "grant_id"),
        )
        if data.get(key)
    ]
    if bound:
        lines.append("Request: " + ", ".join(bound))
    exceeds = data.get("exceeds")
    if isinstance(exceeds, list) and exceeds:
        lines.append("Past: " + " ".join(_esc(item) for item in exceeds))
    if data.get("adjustment"):
        lines.append("Ready change: " + _esc(json.dumps(data["adjustment"], sort_keys=True, ensure_ascii=False)))
    if data.get("expires_at"):
        lines.append(f"Expires {_local_time(data['expires_at'], space.timezone)}.")
    lines.append(f"Approve: `chief-of-staff approve {decision}`   Deny: `chief-of-staff deny {decision}`")
    return "\n".join(lines)


def _grant_text(data: dict[str, Any]) -> str:
    return (
        f"Grant {_esc(data.get('grant_id', '?'))} {_esc(data.get('change', 'changed'))} "
        f"(version {_esc(data.get('version', '?'))}): {_esc(data.get('agency', '?'))} may "
        f"{_esc(data.get('capability', '?'))}, mode {_esc(data.get('mode', '?'))}."
    )


def _brief_text(data: dict[str, Any]) -> str:
    lines = [
        f"Daily brief for {_esc(data.get('date', ''))}: "
        f"{_esc(data.get('pending_decisions', 0))} decision(s) waiting for you."
    ]
    summary = data.get("summary") or []
    lines += [f"• {_esc(line)}" for line in (summary if isinstance(summary, list) else [summary])]
    return "\n".join(lines)


async def _slack_text(tx: Tx, event: str, data: dict[str, Any]) -> str:
    if event == "decision.opened":
        return await _decision_text(tx, data, "waits for you")
    if event == "decision.expiring":
        return await _decision_text(tx, data, f"expires in about {_esc(data.get('hours_left', '?'))} h")
    if event == "grant.changed":
        return _grant_text(data)
    if event == "anomaly.found":
        return (
            f"Anomaly ({_esc(data.get('kind', '?'))}) in {_esc(data.get('subject', '?'))}: "
            f"{_esc(data.get('summary', ''))}"
        )
    if event == "brief.daily":
        return _brief_text(data)
    return _esc(data.get("message", event))

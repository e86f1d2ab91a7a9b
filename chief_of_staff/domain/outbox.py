"""Signed webhooks: where the operator wants to be told, and the outbox of what to tell them.

An endpoint is a URL, the events it wants and a payload format. Adding one sends workspace data
to another machine, so only the verified channel (the command line, an operator token) may do it:
a model that was talked into calling a tool with confirm=true must not be able to. Each endpoint
has its own signing secret, shown once at creation and in no view, log or error after that.

`emit` is called inside the write transaction of the change it reports, so the delivery row
exists exactly when the change does (the transactional outbox); chief_of_staff.notify.delivery
sends it later, at least once, with the same `webhook-id` on every attempt.

What `data` carries per event (ids are short strings, money is int cents, times are stored UTC text):

- ``decision.opened``: decision_id ("D7"), title, kind, amount_cents (int or None), agency, role
  (names or None), expires_at.
- ``decision.expiring``: the same, plus hours_left (int).
- ``grant.changed``: grant_id ("GR3"), change ("created", "updated" or "revoked"), version (int),
  agency, capability, mode.
- ``anomaly.found``: kind, subject, summary.
- ``brief.daily``: date (local YYYY-MM-DD), summary (a list of short lines), pending_decisions (int).

The `standard` body is ``{"type": event, "timestamp": <UTC>, "data": data}``; the `slack` body is
``{"text": ...}``, a readable message (decisions carry their amount and the commands that decide them).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import httpx  # imported where used: loading it costs every server start, and most never send

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.core.fields import Model, checked_text
from chief_of_staff.domain import trust, workspace
from chief_of_staff.notify.delivery import (
    address_problem,
    cancel_pending,
    is_loopback_host,
    literal_address,
)

EVENTS = ("decision.opened", "decision.expiring", "brief.daily", "anomaly.found", "grant.changed")
TEST_EVENT = "webhook.test"
FORMATS = ("standard", "slack")
SECRET_PREFIX = "whsec_"
Format = Literal["standard", "slack"]

_LONGEST_URL = 2000
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_HEALTH_WINDOW = timedelta(days=7)
_ADD_HINT = "chief-of-staff notify add URL --events " + ",".join(EVENTS)


class EndpointView(Model):
    """An endpoint and its delivery health; never its secret, and only a shortened URL."""

    endpoint_id: str
    url: str
    events: list[str]
    format: Format
    status: Literal["active", "disabled", "removed"]
    created_at: str
    disabled_reason: str | None
    removed_at: str | None
    pending: int
    delivered_7d: int
    failed_7d: int
    last_success_at: str | None
    last_failure_at: str | None
    last_error: str | None
    consecutive_failures: int
# --- URLs ---------------------------------------------------------------------------------------------


def check_url(text: str) -> str:
    """An endpoint URL fit to send to: https (http only to this machine), no credentials, no private literal."""
    import httpx
    text = checked_text(text, "url", _LONGEST_URL, required=True, what="the endpoint's URL")
    try:
        url = httpx.URL(text)
        port, host = url.port, url.host  # a malformed international name fails only when decoded
        url.raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError):
        raise InvalidInput("url: that is not a URL; send one like https://hooks.example.com/chief-of-staff.") from None
    if url.scheme not in ("https", "http") or not host:
        raise InvalidInput("url: send a full https URL, like https://hooks.example.com/chief-of-staff.")
    if url.userinfo:
        raise InvalidInput("url: must not carry a user name or password; receivers authenticate us by the "
                           "signature, so send the URL without user:password@.")
    if url.fragment:
        raise InvalidInput("url: leave out the #fragment; it is never sent to the receiver.")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidInput(f"url: port {port} does not exist; use a port from 1 to 65535.")
    _check_host(url)
    return str(url)


def _check_host(url: httpx.URL) -> None:
    host, loopback = url.host, is_loopback_host(url.host)
    if url.scheme == "http" and not loopback:
        raise InvalidInput("url: plain http is allowed only to this machine (localhost, 127.0.0.1 or [::1]), "
                           "for testing; send an https URL.")
    literal = literal_address(host)
    if literal is None:
        if not _HOSTNAME.match(url.raw_host.decode("ascii").lower()):
            raise InvalidInput("url: the host name has characters a host name cannot have; check the URL.")
        return
    problem = None if loopback else address_problem(literal)
    if problem is not None:
        raise InvalidInput(f"url: {literal} is {problem}; webhooks go only to public addresses. Send the "
                           "receiver's public https URL.")


def shown_url(url: str) -> str:
    """The URL as views and the audit log show it: the origin and the path's last four characters.

    Many receivers (Slack, Discord, Make, ntfy) put a secret in the path, so the full URL is
    shown nowhere after it was added.
    """
    import httpx
    parsed = httpx.URL(url)
    origin = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
    rest = parsed.raw_path.decode("ascii")
    return origin + ("/" if rest in ("", "/") else "/…" + rest[-4:])



# --- endpoints ----------------------------------------------------------------------------------------


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _check_events(events: list[str]) -> list[str]:
    if isinstance(events, str) or not isinstance(events, list) or not events:
        raise InvalidInput(f"events: send a list of one or more of {', '.join(EVENTS)}.")
    chosen = sorted({str(event).strip() for event in events})
    unknown = [event for event in chosen if event not in EVENTS]
    if unknown:
        raise InvalidInput(f"events: {', '.join(map(repr, unknown))} is not an event; choose from "
                           f"{', '.join(EVENTS)}.")
    return chosen


def _check_format(value: str) -> Format:
    if value == "standard":
        return "standard"
    if value == "slack":
        return "slack"
    raise InvalidInput(f"format: send 'standard' (signed JSON) or 'slack' (a readable message), not {value!r}.")


def _status(row: Row) -> Literal["active", "disabled", "removed"]:
    if row["removed_at"] is not None:
        return "removed"
    return "active" if row["disabled_at"] is None else "disabled"


async def _view(tx: Tx, row: Row) -> EndpointView:
    pending = await tx.scalar("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending'",
                              (row["id"],))
    recent: dict[str, int] = {status: count for status, count in await tx.all(
        "SELECT status, count(*) FROM webhook_deliveries WHERE endpoint_id = ? "
        "AND status IN ('delivered', 'failed') AND created_at >= ? GROUP BY status",
        (row["id"], format_ts(tx.now - _HEALTH_WINDOW)))}
    return EndpointView(
        endpoint_id=ids.format_id("webhook_endpoint", row["id"]), url=shown_url(row["url"]),
        events=row["events"].split(","), format=row["format"], status=_status(row), created_at=row["created_at"],
        disabled_reason=row["disabled_reason"], removed_at=row["removed_at"], pending=pending,
        delivered_7d=recent.get("delivered", 0), failed_7d=recent.get("failed", 0),
        last_success_at=row["last_success_at"], last_failure_at=row["last_failure_at"], last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"])


async def _row(tx: Tx, endpoint_id: str) -> Row:
    number = ids.parse_id("webhook_endpoint", endpoint_id, field="endpoint_id")
    row = await tx.one("SELECT * FROM webhook_endpoints WHERE id = ?", (number,))
    if row is None:
        raise NotFound(f"endpoint_id: there is no webhook endpoint NE{number}. "
                       "Run `chief-of-staff notify list` to see them.")
    return row


async def add_endpoint(tx: Tx, actor: Actor, *, url: str, events: list[str],
                       format: str = "standard") -> tuple[EndpointView, str]:
    """A new endpoint and its signing secret, which is returned this once and shown nowhere else."""
    if actor.channel != "verified":
        raise OperatorActRefused(
            "Adding a webhook endpoint sends workspace data to another machine, so only the operator can do "
            f"it, from a terminal on their own machine: {_ADD_HINT}")
    url = check_url(url)
    chosen, kind = _check_events(events), _check_format(format)
    taken = await tx.scalar("SELECT id FROM webhook_endpoints WHERE url = ? AND removed_at IS NULL", (url,))
    if taken is not None:
        raise Conflict(f"url: endpoint NE{taken} already sends to this URL. Remove it first "
                       f"(chief-of-staff notify remove NE{taken}) and add it again with every event it should get.")
    number = await tx.run(
        "INSERT INTO webhook_endpoints (url, events, format, secret, created_at) VALUES (?, ?, ?, ?, ?)",
        (url, ",".join(chosen), kind, secret := _new_secret(), tx.now_text))
    view = await _view(tx, await _row(tx, str(number)))
    await audit.append(tx, actor, "webhook.add", view.endpoint_id,
                       {"url": view.url, "events": chosen, "format": kind})
    return view, secret


async def remove_endpoint(tx: Tx, actor: Actor, endpoint_id: str) -> EndpointView:
    """Stop sending to an endpoint at once: it is marked removed and whatever it was still owed is cancelled."""
    trust.require_operator(actor, "Removing a webhook endpoint", f"chief-of-staff notify remove {endpoint_id}")
    row = await _row(tx, endpoint_id)
    if row["removed_at"] is not None:
        raise Conflict(f"NE{row['id']} was already removed at {row['removed_at']}; nothing was changed.")
    await tx.run("UPDATE webhook_endpoints SET removed_at = ? WHERE id = ?", (tx.now_text, row["id"]))
    cancelled = await cancel_pending(tx, row["id"])
    view = await _view(tx, await _row(tx, str(row["id"])))
    await audit.append(tx, actor, "webhook.remove", view.endpoint_id, {"url": view.url, "cancelled": cancelled})
    return view


async def rotate_secret(tx: Tx, actor: Actor, endpoint_id: str) -> tuple[EndpointView, str]:
    """A new signing secret for the endpoint, returned this once; the old one stops signing at once.

    Also how an endpoint added through an MCP client gets a secret the operator can see: tool results
    never carry one, so the operator runs this on their own machine.
    """
    if actor.channel != "verified":
        raise OperatorActRefused("A signing secret is shown only on the operator's own machine: "
                                 f"chief-of-staff notify rotate-secret {endpoint_id}")
    row = await _row(tx, endpoint_id)
    if row["removed_at"] is not None:
        raise Conflict(f"NE{row['id']} was removed at {row['removed_at']}; add the URL again instead.")
    secret = _new_secret()
    await tx.run("UPDATE webhook_endpoints SET secret = ? WHERE id = ?", (secret, row["id"]))
    view = await _view(tx, await _row(tx, str(row["id"])))
    await audit.append(tx, actor, "webhook.rotate_secret", view.endpoint_id, {})
    return view, secret


async def list_endpoints(tx: Tx, *, include_removed: bool = False) -> list[EndpointView]:
    """The endpoints with their delivery health (pending now; delivered and failed in the last 7 days)."""
    rows = await tx.all("SELECT * FROM webhook_endpoints" + ("" if include_removed else " WHERE removed_at IS NULL")
                        + " ORDER BY id")
    return [await _view(tx, row) for row in rows]


async def queue_test(tx: Tx, actor: Actor, endpoint_id: str) -> str:
    """Queue a `webhook.test` message to this endpoint alone; returns its message id (the `webhook-id`)."""
    trust.require_operator(actor, "Testing a webhook endpoint", f"chief-of-staff notify test {endpoint_id}")
    row = await _row(tx, endpoint_id)
    name = ids.format_id("webhook_endpoint", row["id"])
    if _status(row) != "active":
        raise Conflict(f"{name} is {_status(row)}" + (f" ({row['disabled_reason']})" if row["disabled_reason"] else "")
                       + f", so nothing can be sent to it. Add the URL again: {_ADD_HINT}")
    data = {"endpoint_id": name, "message": "A test from Chief of Staff: this endpoint receives notifications."}
    message_id = await _enqueue(tx, row["id"], TEST_EVENT, await _body(tx, row["format"], TEST_EVENT, data), None)
    assert message_id is not None  # no dedupe key, so nothing can be skipped
    await audit.append(tx, actor, "webhook.test", name, {"message_id": message_id})
    return message_id


# --- the outbox ---------------------------------------------------------------------------------------


async def emit(tx: Tx, event: str, data: dict[str, Any], *, dedupe_key: str | None = None) -> int:
    """Queue `event` for every active endpoint that subscribed to it, in the caller's transaction.

    Returns how many deliveries were queued. With a `dedupe_key` (e.g. "brief.daily:2026-11-23") an
    endpoint gets the event at most once however often it is emitted. With no endpoints this is one
    read of an empty index.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; known: {', '.join(EVENTS)}")
    endpoints = await tx.all("SELECT id, events, format FROM webhook_endpoints "
                             "WHERE disabled_at IS NULL AND removed_at IS NULL")
    bodies: dict[str, str] = {}
    queued = 0
    for endpoint in endpoints:
        if event in endpoint["events"].split(","):
            kind = endpoint["format"]
            bodies[kind] = bodies.get(kind) or await _body(tx, kind, event, data)
            queued += (await _enqueue(tx, endpoint["id"], event, bodies[kind], dedupe_key)) is not None
    return queued


async def _enqueue(tx: Tx, endpoint_id: int, event: str, body: str, dedupe_key: str | None) -> str | None:
    """One outbox row, due now; None when this endpoint already has the dedupe key."""
    message_id = "msg_" + secrets.token_urlsafe(18)
    row = await tx.one(
        "INSERT INTO webhook_deliveries (endpoint_id, message_id, event, body, created_at, next_attempt_at, "
        "dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, dedupe_key) DO NOTHING RETURNING id",
        (endpoint_id, message_id, event, body, tx.now_text, tx.now_text, dedupe_key))
    return None if row is None else message_id


async def _body(tx: Tx, kind: str, event: str, data: dict[str, Any]) -> str:
    """The exact JSON text every attempt will send."""
    payload = {"text": await _slack_text(tx, event, data)} if kind == "slack" else {
        "type": event, "timestamp": tx.now_text, "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


# --- readable messages (the slack format) -------------------------------------------------------------


def _esc(value: object) -> str:
    """Workspace text as Slack shows it literally: no links, mentions or markup smuggled in."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _money(cents: object, currency: str) -> str | None:
    if not isinstance(cents, int) or isinstance(cents, bool):
        return None
    return f"{cents // 100:,}.{cents % 100:02d} {currency}"


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
    lines = [f"Decision {decision} {verb}: *{_esc(data.get('title', ''))}*"]
    if facts:
        lines.append(" · ".join(facts))
    if data.get("expires_at"):
        lines.append(f"Expires {_local_time(data['expires_at'], space.timezone)}.")
    lines.append(f"Approve: `chief-of-staff approve {decision}`   Deny: `chief-of-staff deny {decision}`")
    return "\n".join(lines)


def _grant_text(data: dict[str, Any]) -> str:
    return (f"Grant {_esc(data.get('grant_id', '?'))} {_esc(data.get('change', 'changed'))} "
            f"(version {_esc(data.get('version', '?'))}): {_esc(data.get('agency', '?'))} may "
            f"{_esc(data.get('capability', '?'))}, mode {_esc(data.get('mode', '?'))}.")


def _brief_text(data: dict[str, Any]) -> str:
    lines = [f"Daily brief for {_esc(data.get('date', ''))}: "
             f"{_esc(data.get('pending_decisions', 0))} decision(s) waiting for you."]
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
        return (f"Anomaly ({_esc(data.get('kind', '?'))}) in {_esc(data.get('subject', '?'))}: "
                f"{_esc(data.get('summary', ''))}")
    if event == "brief.daily":
        return _brief_text(data)
    return _esc(data.get("message", event))

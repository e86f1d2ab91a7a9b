"""Webhook endpoints: where the operator wants to be told, each with its own signing secret.

An endpoint is a URL, the events it wants and a payload format. Adding one sends workspace data
to another machine, so only the verified channel (the command line, an operator token) may do it:
a model that was talked into calling a tool with confirm=true must not be able to. Each endpoint
has its own signing secret, shown once at creation and in no view, log or error after that. What
the endpoints are sent is queued by chief_of_staff.domain.outbox and sent by
chief_of_staff.notify.delivery.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import httpx  # imported where used: loading it costs every server start, and most never send

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.core.fields import Model, checked_text
from chief_of_staff.domain import outbox, trust
from chief_of_staff.domain.outbox import EVENTS, TEST_EVENT, Format
from chief_of_staff.notify.delivery import address_problem, cancel_pending, is_loopback_host, literal_address

SECRET_PREFIX = "whsec_"
_LONGEST_URL = 2000
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_HEALTH_WINDOW = timedelta(days=7)
_ADD_HINT = f"chief-of-staff notify add URL --events {','.join(EVENTS)}"


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
        raise InvalidInput(
            "url: must not carry a user name or password; receivers authenticate us by the "
            "signature, so send the URL without user:password@."
        )
    if url.fragment:
        raise InvalidInput("url: leave out the #fragment; it is never sent to the receiver.")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidInput(f"url: port {port} does not exist; use a port from 1 to 65535.")
    _check_host(url)
    return str(url)


def _check_host(url: httpx.URL) -> None:
    host, loopback = url.host, is_loopback_host(url.host)
    if url.scheme == "http" and not loopback:
        raise InvalidInput(
            "url: plain http is allowed only to this machine (localhost, 127.0.0.1 or [::1]), "
            "for testing; send an https URL."
        )
    literal = literal_address(host)
    if literal is None:
        if not _HOSTNAME.match(url.raw_host.decode("ascii").lower()):
            raise InvalidInput("url: the host name has characters a host name cannot have; check the URL.")
        return
    problem = None if loopback else address_problem(literal)
    if problem is not None:
        raise InvalidInput(
            f"url: {literal} is {problem}; webhooks go only to public addresses. Send the receiver's public https URL."
        )


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
        raise InvalidInput(f"events: {', '.join(map(repr, unknown))} is not an event; choose from {', '.join(EVENTS)}.")
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
    pending = await tx.scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending'", (row["id"],)
    )
    recent: dict[str, int] = {
        status: count
        for status, count in await tx.all(
            "SELECT status, count(*) FROM webhook_deliveries WHERE endpoint_id = ? "
            "AND status IN ('delivered', 'failed') AND created_at >= ? GROUP BY status",
            (row["id"], format_ts(tx.now - _HEALTH_WINDOW)),
        )
    }
    return EndpointView(
        endpoint_id=ids.format_id("webhook_endpoint", row["id"]),
        url=shown_url(row["url"]),
        events=row["events"].split(","),
        format=row["format"],
        status=_status(row),
        created_at=row["created_at"],
        disabled_reason=row["disabled_reason"],
        removed_at=row["removed_at"],
        pending=pending,
        delivered_7d=recent.get("delivered", 0),
        failed_7d=recent.get("failed", 0),
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
    )


async def _row(tx: Tx, endpoint_id: str) -> Row:
    number = ids.parse_id("webhook_endpoint", endpoint_id, field="endpoint_id")
    row = await tx.one("SELECT * FROM webhook_endpoints WHERE id = ?", (number,))
    if row is None:
        raise NotFound(
            f"endpoint_id: there is no webhook endpoint NE{number}. Run `chief-of-staff notify list` to see them."
        )
    return row


async def add_endpoint(
    tx: Tx, actor: Actor, *, url: str, events: list[str], format: str = "standard"
) -> tuple[EndpointView, str]:
    """A new endpoint and its signing secret, which is returned this once and shown nowhere else."""
    if actor.channel != "verified":
        raise OperatorActRefused(
            "Adding a webhook endpoint sends workspace data to another machine, so only the operator can do "
            f"it, from a terminal on their own machine: {_ADD_HINT}, or in the console's Settings page (open_console)"
        )
    url = check_url(url)
    chosen, kind = _check_events(events), _check_format(format)
    taken = await tx.scalar("SELECT id FROM webhook_endpoints WHERE url = ? AND removed_at IS NULL", (url,))
    if taken is not None:
        raise Conflict(
            f"url: endpoint NE{taken} already sends to this URL. Remove it first "
            f"(chief-of-staff notify remove NE{taken}) and add it again with every event it should get."
        )
    number = await tx.run(
        "INSERT INTO webhook_endpoints (url, events, format, secret, created_at) VALUES (?, ?, ?, ?, ?)",
        (url, ",".join(chosen), kind, secret := _new_secret(), tx.now_text),
    )
    view = await _view(tx, await _row(tx, str(number)))
    await audit.append(tx, actor, "webhook.add", view.endpoint_id, {"url": view.url, "events": chosen, "format": kind})
    return view, secret


async def remove_endpoint(tx: Tx, actor: Actor, endpoint_id: str) -> EndpointView:
    """Stop sending to an endpoint at once: it is marked removed and whatever it was still owed is cancelled."""
    hint = f"chief-of-staff notify remove {endpoint_id}"
    trust.require_operator(actor, "Removing a webhook endpoint", hint, console=True)
    # The operator's alarms (decision.opened, decision.expiring) must not be silenced by the model's word.
    trust.refuse_in_chat(
        actor, "Removing a webhook endpoint", "it would silence the operator's notifications", hint, console=True
    )
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
        raise OperatorActRefused(
            "A signing secret is shown only on the operator's own machine: "
            f"chief-of-staff notify rotate-secret {endpoint_id}, or in the console's Settings page (open_console). "
            "Nothing was changed."
        )
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
    rows = await tx.all(
        "SELECT * FROM webhook_endpoints" + ("" if include_removed else " WHERE removed_at IS NULL") + " ORDER BY id"
    )
    return [await _view(tx, row) for row in rows]


async def queue_test(tx: Tx, actor: Actor, endpoint_id: str) -> str:
    """Queue a `webhook.test` message to this endpoint alone; returns its message id (the `webhook-id`)."""
    trust.require_operator(
        actor, "Testing a webhook endpoint", f"chief-of-staff notify test {endpoint_id}", console=True
    )
    row = await _row(tx, endpoint_id)
    name = ids.format_id("webhook_endpoint", row["id"])
    if _status(row) != "active":
        raise Conflict(
            f"{name} is {_status(row)}"
            + (f" ({row['disabled_reason']})" if row["disabled_reason"] else "")
            + f", so nothing can be sent to it. Add the URL again: {_ADD_HINT}"
        )
    data = {"endpoint_id": name, "message": "A test from Chief of Staff: this endpoint receives notifications."}
    body = await outbox.body(tx, row["format"], TEST_EVENT, data)
    message_id = await outbox.enqueue(tx, row["id"], TEST_EVENT, body, None)
    assert message_id is not None  # no dedupe key, so nothing can be skipped
    await audit.append(tx, actor, "webhook.test", name, {"message_id": message_id})
    return message_id

"""`notify add | list | test | remove`: where the operator is told about decisions, briefs and anomalies.

Adding an endpoint sends workspace data off this machine, so it is done here, on the verified
channel. The signing secret goes to stdout alone (so a script can capture it), the explanation
to stderr; it is never shown again.
"""

from __future__ import annotations

import argparse
import sys

from chief_of_staff.cli.support import Add, add_nested, workspace_command
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import outbox, workspace
from chief_of_staff.notify import delivery, endpoints, events
from chief_of_staff.notify.delivery import DeliveryOutcome
from chief_of_staff.notify.endpoints import EndpointView


def _events(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    if not chosen:
        raise InvalidInput(f"--events: name one or more events, comma-separated: {','.join(outbox.EVENTS)}")
    return chosen


@workspace_command
async def cmd_notify_add(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view, secret = await endpoints.add_endpoint(
            tx, OPERATOR_CLI, url=args.url, events=_events(args.events), format=args.format
        )
    print(f"{view.endpoint_id}: sends {', '.join(view.events)} to {view.url} ({view.format} format).", file=sys.stderr)
    print(
        "The line below is its signing secret (Standard Webhooks). It is shown once; give it to the "
        "receiver to verify the webhook-signature header.",
        file=sys.stderr,
    )
    print(f"Try it: chief-of-staff notify test {view.endpoint_id}", file=sys.stderr)
    print(secret, flush=True)
    return 0


def _health(view: EndpointView) -> str:
    parts = [f"{view.pending} pending", f"{view.delivered_7d} delivered, {view.failed_7d} failed in 7 days"]
    if view.last_success_at:
        parts.append(f"last success {view.last_success_at[:16]}")
    if view.last_failure_at:
        parts.append(f"last failure {view.last_failure_at[:16]}: {view.last_error}")
    if view.disabled_reason:
        parts.append(f"disabled: {view.disabled_reason}")
    return "; ".join(parts)


@workspace_command
async def cmd_notify_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        views = await endpoints.list_endpoints(tx, include_removed=args.all)
    if not views:
        print("No webhook endpoints. Add one: chief-of-staff notify add URL --events decision.opened")
    for view in views:
        print(f"{view.endpoint_id:5} {view.status:8} {view.format:8} {view.url}  {','.join(view.events)}")
        print(f"      {_health(view)}")
    return 0


def _describe(outcome: DeliveryOutcome | None) -> tuple[str, int]:
    if outcome is None:
        return "The test message is already being sent by a running server; see `chief-of-staff notify list`.", 0
    answer = f" (HTTP {outcome.http_status})" if outcome.http_status else ""
    if outcome.status == "delivered":
        return f"Delivered {outcome.message_id} to {outcome.endpoint_id}{answer}.", 0
    if outcome.status == "pending":
        return (
            f"Not delivered yet{answer}: {outcome.error}. It will be retried from "
            f"{outcome.next_attempt_at} while a server runs.",
            1,
        )
    return f"Not delivered{answer}: {outcome.error}", 1


@workspace_command
async def cmd_notify_test(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        message_id = await endpoints.queue_test(tx, OPERATOR_CLI, args.endpoint)
    async with delivery.http_client() as http:
        outcome = await delivery.deliver_message(store, http, message_id)
    text, code = _describe(outcome)
    print(text)
    return code


@workspace_command
async def cmd_notify_remove(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await endpoints.remove_endpoint(tx, OPERATOR_CLI, args.endpoint)
    print(f"{view.endpoint_id} removed: nothing more is sent to {view.url}.")
    return 0


@workspace_command
async def cmd_notify_rotate_secret(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view, secret = await endpoints.rotate_secret(tx, OPERATOR_CLI, args.endpoint)
    print(f"{view.endpoint_id}: new signing secret below, shown once; the old one no longer signs.", file=sys.stderr)
    print(secret, flush=True)
    return 0


@workspace_command
async def cmd_notify_daily_at(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        at = await events.set_daily_brief_at(tx, OPERATOR_CLI, args.time)
        zone = (await workspace.get(tx)).timezone
    print(f"The daily brief is sent at {at} {zone} to endpoints that want brief.daily, while a server runs.")
    return 0


def register(add: Add) -> None:
    notify = add("notify", cmd_notify_list, "Signed webhooks that tell you about decisions, briefs and anomalies.")
    commands = notify.add_subparsers(
        dest="notify_command",
        required=True,
        metavar="ACTION",
        help="add, list, test, remove, rotate-secret or daily-at",
    )
    create = add_nested(commands, "add", cmd_notify_add, "Add a webhook endpoint (its signing secret is shown once).")
    create.add_argument("url", help="https URL to POST to (http only to localhost or 127.0.0.1, for testing)")
    create.add_argument(
        "--events",
        required=True,
        metavar="EVENT[,EVENT]",
        help="comma-separated events to send: " + ", ".join(outbox.EVENTS),
    )
    create.add_argument(
        "--format",
        choices=outbox.FORMATS,
        default="standard",
        help="standard: signed JSON (Standard Webhooks); slack: a readable message (default standard)",
    )
    listing = add_nested(commands, "list", cmd_notify_list, "List endpoints with their delivery health.")
    listing.add_argument("--all", action="store_true", help="include removed endpoints")
    test = add_nested(commands, "test", cmd_notify_test, "Send a test message to one endpoint now and say how it went.")
    test.add_argument("endpoint", help="endpoint id, e.g. NE1")
    remove = add_nested(
        commands, "remove", cmd_notify_remove, "Stop sending to an endpoint; what it was owed is dropped."
    )
    remove.add_argument("endpoint", help="endpoint id, e.g. NE1")
    rotate = add_nested(
        commands,
        "rotate-secret",
        cmd_notify_rotate_secret,
        "Give an endpoint a new signing secret, shown once (e.g. one added from an MCP client).",
    )
    rotate.add_argument("endpoint", help="endpoint id, e.g. NE1")
    daily = add_nested(
        commands,
        "daily-at",
        cmd_notify_daily_at,
        "Set the local time of day the daily brief is sent (while a server runs).",
    )
    daily.add_argument("time", help="24-hour local time in the workspace's time zone, e.g. 07:30")

"""Webhooks: where the operator is told about decisions, briefs and anomalies.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import Model, ShortText, View
from chief_of_staff.mcp.caller import Caller
from chief_of_staff.mcp.toolkit import CONFIRM, Ref, ToolSpec
from chief_of_staff.notify import endpoints
from chief_of_staff.notify.endpoints import EndpointView


class NotifyIn(Model):
    action: Literal["list", "add", "test", "remove"] = Field("list", description="What to do")
    url: ShortText | None = Field(None, description="add: https URL to POST signed events to")
    events: list[Literal["decision.opened", "decision.expiring", "brief.daily", "anomaly.found", "grant.changed"]] = (
        Field([], max_length=5, description="add: what to send")
    )
    format: Literal["standard", "slack"] = Field("standard", description="slack: a readable message")
    endpoint_id: Ref | None = Field(None, description='test/remove: "NE1"')
    confirm: bool = CONFIRM


class NotifyOut(View):
    endpoints: list[EndpointView]
    message: str


async def _notify(store: Store, caller: Caller, args: NotifyIn) -> NotifyOut:
    if args.action == "list":
        async with store.read() as tx:
            return NotifyOut(endpoints=await endpoints.list_endpoints(tx), message="")
    if args.action == "add":
        if args.url is None or not args.events:
            raise InvalidInput('add: send url and events, e.g. events ["decision.opened"].')
        async with store.write() as tx:
            view, _ = await endpoints.add_endpoint(
                tx, caller.actor, url=args.url, events=list(args.events), format=args.format
            )
        return NotifyOut(
            endpoints=[view],
            message=(  # the secret never goes through a tool result
                f"Added. Its signing secret is shown only on the operator's machine: chief-of-staff notify "
                f"rotate-secret {view.endpoint_id}"
            ),
        )
    if args.endpoint_id is None:
        raise InvalidInput(f'endpoint_id: {args.action} needs the endpoint, e.g. "NE1"; action list shows them.')
    async with store.write() as tx:
        if args.action == "test":
            sent = await endpoints.queue_test(tx, caller.actor, args.endpoint_id)
            return NotifyOut(endpoints=[], message=f"Test {sent} queued; the running server sends it within seconds.")
        view = await endpoints.remove_endpoint(tx, caller.actor, args.endpoint_id)
        return NotifyOut(endpoints=[view], message="Removed; what it was still owed is cancelled.")


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "notify",
        "Webhooks",
        "Signed webhooks to the operator's channels. list; add (operator act, verified channel only); test; remove.",
        NotifyIn,
        NotifyOut,
        _notify,
        destructive=True,
        operator_act=True,
        asks_operator=lambda args: args.action != "list",
    ),
]

"""`chief-of-staff demo`: one agency session, for real, over stdio.

It makes a throwaway workspace, starts `chief-of-staff serve` as a subprocess and
drives it with the official MCP client in the 2025-11-25 handshake mode that
Claude Desktop speaks: blueprint → claim → authorize → act → log outcome → one
denied action → the operator's brief. The model's own work (writing and sending
the emails) is what the operator's client does with its other tools; the demo
stands in for that part only, and says so.
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import TextResourceContents

LEADS = [
    ("jane@northwind-robotics.com", "Northwind Robotics opened a Berlin office last week"),
    ("sam@acme-logistics.io", "Acme Logistics is hiring three SDRs"),
]
DENIED_LEAD = "procurement@agency.gov"


def server_parameters(db: Path, env: dict[str, str] | None = None) -> StdioServerParameters:
    """`chief-of-staff serve` on `db`, the way a client config starts it."""
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "chief_of_staff", "serve", "--db", str(db)],
        env=env or {},
    )


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool and return its structured result; a tool error stops the demo with its message."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = result.content[0].text if result.content else "(no message)"  # type: ignore[union-attr]
        raise RuntimeError(f"{tool} failed: {text}")
    return dict(result.structured_content or {})


def _say(text: str) -> None:
    print(text, flush=True)


async def _stand_up_outbound(client: Client) -> dict[str, str]:
    plan = await call(client, "apply_blueprint", name="outbound", dry_run=True)
    _say(f"Operator: apply the Outbound blueprint? The dry run would create {len(plan['creates'])} things:")
    for line in plan["creates"][:6]:
        _say(f"    + {line}")
    _say("    …")
    applied = await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
    _say(f"Operator: yes. Created agency {applied['agency']} in one transaction.")
    goals = (await call(client, "list_goals", agency="Outbound"))["goals"]
    return {kr["metric"]: kr["id"] for kr in goals[0]["key_results"]}


async def _claim_task(client: Client, metrics: dict[str, str]) -> dict[str, Any]:
    # The Researcher handed over two leads; on a weekday the SDR's routine task may come first, which fits too.
    await call(
        client,
        "add_task",
        title="Send first-touch emails to two new leads",
        agency="Outbound",
        role="SDR",
        priority="P1",
        key_result_id=metrics["emails sent"],
    )
    claimed = await call(client, "claim_next_task", agency="Outbound", role="SDR")
    task: dict[str, Any] = claimed["task"]
    _say(f"SDR: claimed {task['id']} [{task['priority']}] {task['title']}")
    return task


async def _send_emails(client: Client, task_id: str) -> int:
    sent = 0
    for address, reason in LEADS:
        answer = await call(
            client,
            "authorize",
            agency="Outbound",
            role="SDR",
            capability="email.send",
            target=address,
            task_id=task_id,
            idempotency_key=str(uuid.uuid4()),
        )
        _say(f"SDR: authorize email.send to {address}: {answer['answer']} ({answer['reason']})")
        if answer["answer"] == "allowed":
            _say(f"     (the client's mail tool sends it here; first line: {reason})")
            await call(client, "settle", authorization_id=answer["authorization_id"], actual_cents=0)
            sent += 1
    denied = await call(
        client,
        "authorize",
        agency="Outbound",
        role="SDR",
        capability="email.send",
        target=DENIED_LEAD,
        task_id=task_id,
        idempotency_key=str(uuid.uuid4()),
    )
    _say(f"SDR: authorize email.send to {DENIED_LEAD}: {denied['answer']} ({denied['reason']})")
    return sent


async def _agency_session(client: Client, metrics: dict[str, str]) -> None:
    await call(client, "brief", viewer="agency:Outbound/SDR")
    task = await _claim_task(client, metrics)
    sent = await _send_emails(client, task["id"])
    tool = await call(
        client,
        "authorize",
        agency="Outbound",
        role="Researcher",
        capability="spend.tools",
        amount_cents=1900,
        target="enrichment-tool",
        idempotency_key=str(uuid.uuid4()),
    )
    _say(f"Researcher: authorize spend.tools 19.00: {tool['answer']} ({tool['reason']})")
    if tool["answer"] == "allowed":
        await call(client, "settle", authorization_id=tool["authorization_id"], actual_cents=1400)
        _say("Researcher: settled at 14.00 (the invoice came in lower); 5.00 returns to the budget.")
    bigger = await call(
        client,
        "authorize",
        agency="Outbound",
        role="Researcher",
        capability="spend.tools",
        amount_cents=7900,
        target="intent-data-trial",
        idempotency_key=str(uuid.uuid4()),
    )
    _say(f"Researcher: authorize spend.tools 79.00: {bigger['answer']} ({bigger['reason']})")
    done = await call(
        client,
        "complete_task",
        task_id=task["id"],
        result="success",
        summary=f"Sent {sent} personalised first-touch emails; skipped one lead outside our scope.",
        metrics=[{"key_result": metrics["emails sent"], "delta": sent}],
        cost_cents=1400,
        minutes_saved=25 * sent,
        evidence=["mailbox://sent/today"],
        lesson="Leads at .gov addresses are out of scope; drop them at research time.",
    )
    _say(f"SDR: completed {task['id']}, logged outcome {done['outcome']['id']}.")


async def _print_brief(client: Client) -> None:
    result = await client.read_resource("cos://brief")
    content = result.contents[0]
    text = content.text if isinstance(content, TextResourceContents) else ""
    _say("\n" + "=" * 72 + "\nThe operator's brief (resource cos://brief)\n" + "=" * 72)
    _say(text)


async def _weekly_review(client: Client) -> None:
    packet = await call(client, "review", days=7)
    cards = ", ".join(
        f"{card['agency']} {card['outcomes']} outcomes at {card['cost_cents'] / 100:.2f}"
        for card in packet["scorecards"]
    )
    _say(
        f"\nOperator: weekly review {packet['since']} to {packet['until']}: {cards}; "
        f"anomalies {len(packet['anomalies'])}, decisions waiting {packet['pending_decision_count']}, "
        f"proposals {len(packet['proposals'])}."
    )
    recorded = await call(
        client,
        "record_review",
        confirm=True,
        note="First week: keep going; .gov is out.",
        adjustments=[
            {
                "tool": "add_lesson",
                "arguments": {
                    "agency": "Outbound",
                    "kind": "breaks",
                    "text": "Government buyers follow procurement rules; never research .gov leads.",
                },
            }
        ],
    )
    _say(
        f"Operator: recorded the review as change set {recorded['id']} "
        f"({len(recorded['changes'])} adjustment; record_review with revert={recorded['id']!r} undoes it)."
    )


async def run_demo(keep: bool = False) -> int:
    """Run the demo against a fresh workspace; returns the process exit code."""
    folder = Path(tempfile.mkdtemp(prefix="chief-of-staff-demo-"))
    db = folder / "demo.db"
    with (folder / "server.log").open("w") as errlog:
        transport = stdio_client(server_parameters(db), errlog=errlog)
        async with Client(transport, mode="legacy") as client:
            tools = await client.list_tools()
            _say(f"Connected over stdio (protocol {client.protocol_version}): {len(tools.tools)} tools.")
            metrics = await _stand_up_outbound(client)
            await _agency_session(client, metrics)
            await _print_brief(client)
            await _weekly_review(client)
    _say(json.dumps({"workspace": str(db) if keep else "(deleted)"}))
    if not keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return 0

"""The peer for tools/bench.py: the same agency work kept in `@modelcontextprotocol/server-memory`.

An operator without Chief of Staff might keep the agency's inbox and record in the reference
memory server: tasks, outcomes and ledger entries as entities with observations in one JSONL
knowledge graph. This module exports a populated workspace into that graph, record for record,
starts the peer over stdio and times, for each core tool, the shortest sequence of peer calls an
agent would make for the same step. The sequences favour the peer: it checks no budget, claims
nothing atomically and keeps no rollups, so its figures are a lower bound on the same work.

    brief            search_nodes("needs operator")                  what waits for the operator
    claim_next_task  search_nodes("status: open") + add_observations  find an open task, mark it claimed
    log_outcome      create_entities([outcome])                       append the outcome
    authorize        search_nodes(today's ledger) + create_entities   read today's use, record the action
    review           search_nodes("week: <this week>")                this week's outcomes
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

PEER_PACKAGE = "@modelcontextprotocol/server-memory@2026.8.31"
EXPORT_LAYOUT = 1  # bump when the exported graph changes, so stale caches are rebuilt

Call = Callable[[], Awaitable[None]]


def install_peer(cache: Path, errlog: TextIO) -> Path | None:
    """The peer's entry script, installed with npm under `cache` once; None when npm or node is missing."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        return None
    prefix = cache / f"peer-{PEER_PACKAGE.rsplit('@', 1)[1]}"
    entry = prefix / "node_modules" / "@modelcontextprotocol" / "server-memory" / "dist" / "index.js"
    if not entry.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), PEER_PACKAGE],
            check=True,
            stdout=errlog,
            stderr=errlog,
        )
    return entry


def peer_parameters(entry: Path, graph: Path) -> StdioServerParameters:
    return StdioServerParameters(command="node", args=[str(entry)], env={"MEMORY_FILE_PATH": str(graph)})


# --- the export: one entity per record ---------------------------------------------------------------


def _week(stamp: str) -> str:
    year, week, _ = datetime.fromisoformat(stamp.replace("Z", "+00:00")).isocalendar()
    return f"{year}-W{week:02d}"


def _entities(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    roles = dict(conn.execute("SELECT id, name FROM roles"))
    for goal_id, title in conn.execute("SELECT id, title FROM goals"):
        krs = [
            f"key result: {metric} {current:g} of {target:g}"
            for metric, current, target in conn.execute(
                "SELECT metric, current, target FROM key_results WHERE goal_id = ?", (goal_id,)
            )
        ]
        yield {"name": f"goal:G{goal_id}", "entityType": "goal", "observations": [f"title: {title}", *krs]}
    for task_id, title, role_id, priority, status, created in conn.execute(
        "SELECT id, title, role_id, priority, status, created_at FROM tasks ORDER BY id"
    ):
        yield {
            "name": f"task:T{task_id}",
            "entityType": "task",
            "observations": [
                f"title: {title}",
                f"status: {status}",
                f"role: {roles.get(role_id, 'anyone')}",
                f"priority: P{priority}",
                f"created: {created}",
            ],
        }
    metrics = conn.execute("SELECT outcome_id, key_result_id, delta FROM outcome_metrics ORDER BY outcome_id")
    pending = next(metrics, None)
    for outcome_id, task_id, summary, result, cost, minutes, created in conn.execute(
        "SELECT id, task_id, summary, result, cost_cents, minutes_saved, created_at FROM outcomes ORDER BY id"
    ):
        observations = [
            summary,
            f"result: {result}",
            f"cost_cents: {cost}",
            f"minutes_saved: {minutes}",
            f"at: {created}",
            f"week: {_week(created)}",
        ]
        if task_id is not None:
            observations.append(f"task: T{task_id}")
        while pending is not None and pending[0] == outcome_id:
            observations.append(f"KR{pending[1]} {pending[2]:+g}")
            pending = next(metrics, None)
        yield {"name": f"outcome:O{outcome_id}", "entityType": "outcome", "observations": observations}
    for auth_id, capability, amount, target, answer, created in conn.execute(
        "SELECT id, capability, amount_cents, target, answer, created_at FROM authorizations ORDER BY id"
    ):
        yield {
            "name": f"authorization:AU{auth_id}",
            "entityType": "authorization",
            "observations": [
                f"ledger: {capability} {created[:10]}",
                f"amount_cents: {amount}",
                f"target: {target}",
                f"answer: {answer}",
                f"at: {created}",
            ],
        }


def export_graph(db: Path, cache: Path) -> tuple[Path, int]:
    """The peer's JSONL graph for a populated workspace, cached beside it; (path, entities)."""
    graph = cache / f"{db.stem}.peer-v{EXPORT_LAYOUT}.jsonl"
    count_file = graph.with_suffix(".count")
    if graph.exists() and count_file.exists():
        return graph, int(count_file.read_text())
    scratch = graph.with_name(graph.name + ".building")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    count = 0
    try:
        with scratch.open("w", encoding="utf-8") as out:
            for entity in _entities(conn):
                # The peer's own line format: {"type": "entity", name, entityType, observations}.
                out.write(json.dumps({"type": "entity", **entity}, ensure_ascii=False) + "\n")
                count += 1
    finally:
        conn.close()
    scratch.replace(graph)
    count_file.write_text(str(count))
    return graph, count


# --- the timed steps ---------------------------------------------------------------------------------


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    if result.is_error:
        raise RuntimeError(f"peer {tool} failed: {text[:300]}")
    return text


def peer_calls(client: Client) -> dict[str, Call]:
    """One call sequence per core tool, named as bench.TOOLS names them."""
    today = datetime.now(UTC).date().isoformat()
    week = _week(datetime.now(UTC).isoformat())
    claimed: set[str] = set()
    serial = iter(range(10**9))

    async def brief() -> None:
        await _call(client, "search_nodes", {"query": "needs operator"})

    async def claim() -> None:
        found = json.loads(await _call(client, "search_nodes", {"query": "status: open"}))
        free = [e["name"] for e in found["entities"] if e["entityType"] == "task" and e["name"] not in claimed]
        if not free:
            raise RuntimeError("the peer's graph has no open task left to claim")
        claimed.add(free[0])
        await _call(
            client,
            "add_observations",
            {"observations": [{"entityName": free[0], "contents": [f"status: claimed by SDR at {time.time():.6f}"]}]},
        )

    async def log_outcome() -> None:
        n = next(serial)
        await _call(
            client,
            "create_entities",
            {
                "entities": [
                    {
                        "name": f"outcome:bench-{os.getpid()}-{n}",
                        "entityType": "outcome",
                        "observations": [
                            "Sent 3 personalised first-touch emails.",
                            "result: success",
                            "minutes_saved: 15",
                            f"week: {week}",
                            "KR1 +3",
                        ],
                    }
                ]
            },
        )

    async def authorize() -> None:
        await _call(client, "search_nodes", {"query": f"ledger: crm.update {today}"})
        n = next(serial)
        await _call(
            client,
            "create_entities",
            {
                "entities": [
                    {
                        "name": f"authorization:bench-{os.getpid()}-{n}",
                        "entityType": "authorization",
                        "observations": [
                            f"ledger: crm.update {today}",
                            "amount_cents: 150",
                            "target: jane@northwind-robotics.com",
                            "answer: allowed",
                        ],
                    }
                ]
            },
        )

    async def review() -> None:
        await _call(client, "search_nodes", {"query": f"week: {week}"})

    return {
        "brief": brief,
        "claim_next_task": claim,
        "log_outcome": log_outcome,
        "authorize": authorize,
        "review": review,
    }


async def measure_peer(
    entry: Path,
    graph: Path,
    work: Path,
    calls: int,
    errlog: TextIO,
    timed: Callable[[Call, int, list[float]], Awaitable[None]],
) -> dict[str, list[float]]:
    """Samples (ms) per core tool against a private copy of the graph; one warm-up call each, not kept."""
    copy = work / graph.name
    shutil.copyfile(graph, copy)
    try:
        async with Client(stdio_client(peer_parameters(entry, copy), errlog=errlog), mode="legacy") as client:
            steps = peer_calls(client)
            samples: dict[str, list[float]] = {}
            for name, step in steps.items():
                await step()
                samples[name] = []
                await timed(step, calls, samples[name])
            return samples
    finally:
        copy.unlink(missing_ok=True)


if __name__ == "__main__":
    print("run tools/bench.py; this module is its peer", file=sys.stderr)
    sys.exit(2)

"""The speed budgets as figures, each a ratio measured side by side in one run.

Design brief, Scale and speed budgets: per-call latency stays flat from an empty workspace
to 100k tasks, 1M outcomes and 1M ledger rows, within 1.25x of a do-nothing tool on the same
SDK; start-up costs little more than the bare SDK's own. One run prints:

- per-call latency of the core tools over stdio as a ratio to `noop` (tools/bench_baseline.py,
  a bare MCPServer), at each size: for each round, N calls of `noop` then N of each tool, so
  drift on a noisy machine hits all of them alike;
- the same agency work kept in a peer, `@modelcontextprotocol/server-memory`, as a ratio at
  each size (tools/bench_peer.py says what each step costs the peer);
- peak memory (RSS) of the server as a ratio to the bare SDK server, at each size;
- cold start, spawn to `tools/list` answered, as a ratio to the bare SDK server, on an empty
  and on the largest workspace, the three started in turn in every trial;
- the `tools/list` payload in bytes and approximate tokens;
- authorize from several concurrent stdio clients on one file.

Servers speak the legacy handshake, as Claude Desktop connects. Populated workspaces are built
by tools/populate.py and cached; each run works on a copy, so the cache stays as built.

    python tools/bench.py --quick             # CI: empty and 10k outcomes, a few minutes
    python tools/bench.py                     # empty, 10k, 100k and 1M outcomes (tasks and ledger rows alike)
    python tools/bench.py --sizes 0,100k,1M --rounds 40 --cache ~/.cache/cos-bench --no-peer
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from chief_of_staff.core import anchor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peer  # sibling scripts, not a package
import bench_process
import bench_report
import populate

TOOLS = bench_report.TOOLS
BASELINE = Path(__file__).resolve().parent / "bench_baseline.py"

Call = Callable[[], Awaitable[None]]


def parse_count(text: str) -> int:
    text = text.strip().lower()
    if text == "empty":
        return 0
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = result.content[0].text if result.content else "(no message)"  # type: ignore[union-attr]
        raise RuntimeError(f"{tool} failed: {text}")
    return dict(result.structured_content or {})


def _tool_calls(client: Client, kr_emails: str) -> dict[str, Call]:
    """One realistic call per tool, each checked for the answer the steady state gives."""

    async def brief() -> None:
        await _call(client, "brief", {"viewer": "operator", "mark_seen": True})

    async def claim() -> None:
        claimed = await _call(client, "claim_next_task", {"agency": "Outbound", "role": "SDR"})
        if claimed.get("task") is None:
            raise RuntimeError("claim_next_task found nothing ready: the workspace needs more open tasks")

    async def log_outcome() -> None:
        await _call(
            client,
            "log_outcome",
            {
                "agency": "Outbound",
                "role": "SDR",
                "summary": "Sent 3 personalised first-touch emails.",
                "result": "success",
                "metrics": [{"key_result": kr_emails, "delta": 3}],
                "minutes_saved": 15,
            },
        )

    async def authorize() -> None:
        answer = await _call(
            client,
            "authorize",
            {
                "agency": "Outbound",
                "role": "SDR",
                "capability": populate.BENCH_CAPABILITY,
                "amount_cents": 150,
                "target": "jane@northwind-robotics.com",
                "idempotency_key": str(uuid.uuid4()),
            },
        )
        if answer["answer"] != "allowed":
            raise RuntimeError(f"authorize was not allowed: {answer['reason']}")

    async def review() -> None:
        await _call(client, "review", {"days": 7, "mark_seen": True})

    return {
        "brief": brief,
        "claim_next_task": claim,
        "log_outcome": log_outcome,
        "authorize": authorize,
        "review": review,
    }


async def _timed(call: Call, count: int, into: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        await call()
        into.append((time.perf_counter() - started) * 1000)


async def _measure(
    noop: Client, db: Path, rounds: int, calls: int, errlog: TextIO
) -> tuple[dict[str, list[float]], int, tuple[float | None, float | None]]:
    """Samples (ms) per tool and noop for one workspace, the tools/list size in bytes, and both servers' peak RSS."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "chief_of_staff", "serve", "--db", str(db)])
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as cos:
        listed = await cos.list_tools()
        payload = json.dumps(
            listed.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":"), ensure_ascii=False
        ).encode()
        goals = (await _call(cos, "list_goals", {"agency": "Outbound"}))["goals"]
        kr_emails = next(kr["id"] for kr in goals[0]["key_results"] if kr["metric"] == "emails sent")
        tools = _tool_calls(cos, kr_emails)

        async def noop_call() -> None:
            await _call(noop, "noop", {})

        samples: dict[str, list[float]] = {name: [] for name in ("noop", *TOOLS)}
        for round_number in range(rounds + 1):  # round 0 warms up and is thrown away
            into = samples if round_number else {name: [] for name in samples}
            await _timed(noop_call, calls, into["noop"])
            for name in TOOLS:
                await _timed(tools[name], calls, into[name])
        rss = (
            bench_process.peak_rss_mb(bench_process.child_pid(str(db))),
            bench_process.peak_rss_mb(bench_process.child_pid(str(BASELINE))),
        )
        return samples, len(payload), rss


def _commit_floor(work: Path, count: int) -> tuple[list[float], list[float]]:
    """Milliseconds per one-row commit with the server's own durability pragmas, alone and then moving the
    audit anchor as the store does after every audited commit; the two alternate, so drift hits both.

    Every tool call that changes something ends in one commit, and with synchronous=FULL a commit
    waits for the disk (fsync). No code can be faster than this on the same disk. The second figure
    is that floor plus what core.anchor adds: reading the head, then one record rewritten in place
    and fdatasynced.
    """
    config = anchor.AnchorConfig(work / "commit-floor.db.anchor.json")
    conn = sqlite3.connect(work / "commit-floor.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS floor (n INTEGER)")
        plain: list[float] = []
        anchored: list[float] = []
        for n in range(count + 5):  # the first five warm up the file
            for into, anchoring in ((plain, False), (anchored, True)):
                started = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO floor VALUES (?)", (n,))
                if anchoring:
                    head = conn.execute("SELECT rowid, n FROM floor ORDER BY rowid DESC LIMIT 1").fetchone()
                conn.execute("COMMIT")
                if anchoring:
                    anchor.write_head(config, head[0], f"{head[1]:064x}", "2026-01-01T00:00:00.000000Z")
                if n >= 5:
                    into.append((time.perf_counter() - started) * 1000)
        return plain, anchored
    finally:
        conn.close()


async def _measure_peer(
    args: argparse.Namespace, cached: dict[str, Path], work: Path, errlog: TextIO
) -> dict[str, dict[str, list[float]] | str]:
    """The peer's samples (ms) per core tool at each size, or why it could not do the work there."""
    entry = bench_peer.install_peer(args.cache, errlog)
    if entry is None:
        return {label: "skipped: npm and node are needed to run the peer" for label in cached}
    measured: dict[str, dict[str, list[float]] | str] = {}
    for label, db in cached.items():
        started = time.perf_counter()
        graph, entities = bench_peer.export_graph(db, args.cache)
        calls = args.calls if parse_count(label) <= 10_000 else 3  # each peer call reads the whole graph
        try:
            measured[label] = await bench_peer.measure_peer(entry, graph, work, calls, errlog, _timed)
        except Exception as exc:  # the peer failing at a size is a finding to print, not a crash
            measured[label] = f"failed: {_innermost(exc)}"
        print(
            f"{label}: peer on {entities:,} entities ({graph.stat().st_size / 1e6:,.0f} MB graph) "
            f"in {time.perf_counter() - started:.1f}s"
        )
    return measured


def _innermost(exc: BaseException) -> str:
    """The first real error inside task-group wrappers, on one short line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


async def _measure_starts(
    copies: dict[str, Path], trials: int, errlog: TextIO
) -> dict[str, list[tuple[float, float | None]]]:
    """Cold starts (wall s, CPU s) of the bare SDK server and of `serve` on the empty and the largest workspace."""
    labels = list(dict.fromkeys([next(iter(copies)), list(copies)[-1]]))
    servers = {"bare SDK": (StdioServerParameters(command=sys.executable, args=[str(BASELINE)]), str(BASELINE))}
    for label in labels:
        servers[label] = (
            StdioServerParameters(
                command=sys.executable, args=["-m", "chief_of_staff", "serve", "--db", str(copies[label])]
            ),
            str(copies[label]),
        )
    starts: dict[str, list[tuple[float, float | None]]] = {name: [] for name in servers}
    for trial in range(trials + 1):  # trial 0 warms the OS file cache for all and is thrown away
        for name, (params, marker) in servers.items():
            measured = await bench_process.cold_start(params, errlog, marker)
            if trial:
                starts[name].append(measured)
    return starts


async def _concurrent_samples(
    params: list[StdioServerParameters], calls: int, errlog: TextIO, make_call: Callable[[Client, int], Call]
) -> tuple[list[float], float]:
    """Per-call latencies (ms) with one client per server all calling at once, and the wall time (s)."""
    samples: list[float] = []
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(Client(stdio_client(p, errlog=errlog), mode="legacy")) for p in params
        ]
        for index, client in enumerate(clients):  # warm-up, not measured
            await make_call(client, index)()
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for index, client in enumerate(clients):
                group.start_soon(_timed, make_call(client, index), calls, samples)
        return samples, time.perf_counter() - started


async def _measure_concurrent(db: Path, clients: int, calls: int, errlog: TextIO) -> dict[str, Any]:
    """authorize from `clients` stdio servers on one workspace at once, against as many noop servers."""
    serve = StdioServerParameters(command=sys.executable, args=["-m", "chief_of_staff", "serve", "--db", str(db)])
    noop = StdioServerParameters(command=sys.executable, args=[str(BASELINE)])

    def authorize(client: Client, index: int) -> Call:
        async def call() -> None:
            answer = await _call(
                client,
                "authorize",
                {
                    "agency": "Outbound",
                    "role": "SDR",
                    "capability": populate.BENCH_CAPABILITY,
                    "amount_cents": 150,
                    "target": f"lead{index}@northwind-robotics.com",
                    "idempotency_key": str(uuid.uuid4()),
                },
            )
            if answer["answer"] != "allowed":
                raise RuntimeError(f"authorize was not allowed: {answer['reason']}")

        return call

    def noop_call(client: Client, index: int) -> Call:
        async def call() -> None:
            await _call(client, "noop", {})

        return call

    noop_samples, _ = await _concurrent_samples([noop] * clients, calls, errlog, noop_call)
    tool_samples, wall = await _concurrent_samples([serve] * clients, calls, errlog, authorize)
    return {"noop": noop_samples, "authorize": tool_samples, "throughput": len(tool_samples) / wall}


def _prepare(args: argparse.Namespace, work: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Each size's populated workspace in the cache (built when missing) and a working copy of it."""
    min_open = math.ceil(((args.rounds + 1) * args.calls + 20) / 0.8)  # 80% of open tasks are claimable by SDR
    sizes = [populate.size_for(parse_count(s), min_open) for s in args.sizes.split(",")]
    cached, copies = {}, {}
    for size in sizes:
        cached[size.label], seconds = populate.cached_workspace(args.cache, size)
        print(
            f"{size.label}: "
            + (f"populated in {seconds:.1f}s" if seconds is not None else "cached")
            + f" ({cached[size.label].stat().st_size / 1e6:,.0f} MB, {cached[size.label]})"
        )
        started = time.perf_counter()
        copies[size.label] = work / f"{size.label}.db"
        shutil.copyfile(cached[size.label], copies[size.label])
        print(f"{size.label}: working copy in {time.perf_counter() - started:.1f}s")
    return cached, copies


async def _run(args: argparse.Namespace, work: Path, cached: dict[str, Path], copies: dict[str, Path]) -> bool:
    figures = bench_report.Figures()
    with (work / "servers.log").open("w") as errlog:
        baseline = StdioServerParameters(command=sys.executable, args=[str(BASELINE)])
        async with Client(stdio_client(baseline, errlog=errlog), mode="legacy") as noop:
            for label, db in copies.items():
                started = time.perf_counter()
                figures.latency[label], figures.list_bytes, figures.rss[label] = await _measure(
                    noop, db, args.rounds, args.calls, errlog
                )
                print(
                    f"{label}: {args.rounds} rounds x {args.calls} calls x {len(TOOLS) + 1} tools "
                    f"in {time.perf_counter() - started:.1f}s"
                )
        figures.commit_floor, figures.anchored_floor = _commit_floor(work, args.rounds * args.calls)
        if args.peer:
            figures.peer = await _measure_peer(args, cached, work, errlog)
        started = time.perf_counter()
        figures.starts = await _measure_starts(copies, args.starts, errlog)
        print(f"cold starts: {args.starts} trials in {time.perf_counter() - started:.1f}s")
        if args.clients:
            figures.concurrent = await _measure_concurrent(
                next(iter(copies.values())), args.clients, args.calls * 3, errlog
            )
            figures.clients = args.clients
    return bench_report.report(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small workspace and few rounds (CI, < 60 s)")
    parser.add_argument(
        "--sizes",
        help="comma-separated outcome counts, e.g. 0,10k,1M (ledger rows = outcomes, tasks = outcomes/10, 5%% open)",
    )
    parser.add_argument("--rounds", type=int, help="measured rounds (default 30; quick 5)")
    parser.add_argument("--calls", type=int, help="calls per tool per round (default 10)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "chief-of-staff-bench",
        help="where populated workspaces are kept between runs",
    )
    parser.add_argument("--work", type=Path, help="where working copies go (default: a fresh temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the working copies and the servers' log")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--clients",
        type=int,
        default=8,
        help="concurrent stdio clients for the authorize-under-load measurement (0 to skip)",
    )
    parser.add_argument("--starts", type=int, help="cold-start trials (default 20; quick 3)")
    parser.add_argument(
        "--no-peer",
        dest="peer",
        action="store_false",
        help="skip the peer (@modelcontextprotocol/server-memory, needs npm and node)",
    )
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ("0,10k" if args.quick else "0,10k,100k,1M")
    args.rounds = args.rounds or (5 if args.quick else 30)
    args.starts = args.starts or (3 if args.quick else 20)
    args.calls = args.calls or 10
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="cos-bench-", dir=args.work))
    try:
        ok = anyio.run(_run, args, work, *_prepare(args, work))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.1f}s")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())

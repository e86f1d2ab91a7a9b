"""Load: many HTTP clients on one `serve --http` for a fixed time, then proof that nothing broke.

What it measures (issue 7, item 4): 16 concurrent MCP clients over Streamable HTTP on loopback,
each an agency token of Outbound/SDR, loop for a fixed time through the agency's work:

    authorize -> settle (or release) -> claim_next_task -> complete_task -> log_outcome

A quarter of the clients connect in legacy mode (the 2025-11-25 handshake Claude Desktop speaks),
the rest in the default mode. The workspace is fresh: the Outbound blueprint (its email.send grant
allows 50 a day, so that count runs out within seconds), plus a spend.ads grant whose daily amount
and weekly count are sized to run out partway through the run, so the budget check is contended
for most of it. Every call is timed by tool, and every write the server acknowledged is recorded.

Afterwards the server is stopped and tools/load_check.py reads the file from a separate read-only
connection: no acknowledged write is lost, no task was claimed twice, no budget period was ever
overspent (the budget ledger replayed in audit order) and the audit chain verifies. Errors are
counted here: an error result or an exception from any call. `denied` and `needs_approval` are
correct answers when the budget is spent or the cap is passed, and are counted separately.

Then, unless --no-inspector, the MCP Inspector's own load generator (an outside client, legacy
era) calls one tool, `check`, against the same server, and its summary is printed as it reports it.

    uv run python tools/load.py --quick              # CI: 10 s, then 5 s of the inspector
    uv run python tools/load.py                      # 16 clients for 60 s, then 30 s of the inspector
    uv run python tools/load.py --clients 32 --duration 120 --no-inspector

Exits 1 when errors, overspend, lost writes or double claims are not zero, or the audit chain
does not verify. Progress goes to stderr; the report to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from chief_of_staff.core import ids
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import SystemClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain import inbox, tokens, workspace
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.blueprints import loader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_check import Ledger, Verdict, verify  # a sibling script, not a package

from chief_of_staff.domain.authority import grants

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
AGENCY, ROLE = "Outbound", "SDR"
# Reserved amounts for spend.ads; the cap makes a tenth of the asks (above it) need the operator.
PRICES = (100, 200, 300, 400, 500)
CAP_CENTS = 500
ABOVE_CAP = 900
# Sized so the spend.ads budgets run out partway through a run on a 2-core machine: about 35 settled
# cents and 0.15 allowed asks per second of the run (measured: about 1 spend.ads ask a second per client).
SPEND_CENTS_PER_SECOND = 35 * 16
ALLOWS_PER_SECOND = 0.15 * 16
TASKS_PER_CLIENT_SECOND = 2  # about twice what the clients can claim, so claim_next_task never runs dry
SERVER_START_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 60.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    clients: int = 16
    duration: float = 60.0
    legacy_share: float = 0.25
    inspector: bool = True
    inspector_duration: float = 30.0


# --- the workspace ------------------------------------------------------------------------------


async def build_workspace(db: Path, plan: Plan) -> tuple[list[str], str]:
    """A fresh Outbound workspace with a contended spend.ads grant and plenty of tasks.

    Returns one agency token per client and the key result that outcomes move.
    """
    store = await Store.open(db, SystemClock())
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Load", timezone="UTC")
            await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
            await grants.create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(
                    agency=AGENCY,
                    role=ROLE,
                    capability="spend.ads",
                    mode="auto",
                    per_action_cap_cents=CAP_CENTS,
                    budgets=[
                        BudgetSpec(period="day", max_cents=math.ceil(SPEND_CENTS_PER_SECOND * plan.duration)),
                        BudgetSpec(period="week", max_count=math.ceil(ALLOWS_PER_SECOND * plan.duration)),
                    ],
                    rationale="Load test: runs out partway through the run.",
                ),
            )
            for number in range(math.ceil(TASKS_PER_CLIENT_SECOND * plan.clients * plan.duration)):
                await inbox.add_task(tx, OPERATOR_CLI, title=f"Prospect {number}", agency=AGENCY, role=ROLE)
            secrets = [
                (
                    await tokens.create_token(
                        tx, OPERATOR_CLI, kind="agency", agency=AGENCY, role=ROLE, label=f"load client {n}"
                    )
                )[1]
                for n in range(plan.clients)
            ]
            row = await tx.one("SELECT id FROM key_results WHERE metric = 'emails sent'")
            assert row is not None, "the Outbound blueprint has an 'emails sent' key result"
            return secrets, ids.format_id("key_result", row["id"])
    finally:
        await store.close()


# --- the server ---------------------------------------------------------------------------------


@asynccontextmanager
async def serving(db: Path, log: Path) -> AsyncIterator[tuple[str, Process]]:
    """`serve --http --port 0` as its own process; yields the endpoint it announces on stderr."""
    command = [sys.executable, "-m", "chief_of_staff", "serve", "--http", "--port", "0", "--db", str(db)]
    with log.open("wb") as stderr:
        process = await anyio.open_process(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        with anyio.fail_after(SERVER_START_TIMEOUT_S):
            while not (found := re.search(r" at (http://\S+/mcp)", log.read_text(errors="replace"))):
                if process.returncode is not None:
                    raise SystemExit(f"serve --http exited with {process.returncode}:\n{_tail(log)}")
                await anyio.sleep(0.05)  # readiness, not timing: the announcement is the only signal
        yield found.group(1), process
    finally:
        await stop(process)


async def stop(process: Process) -> None:
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(15):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- the clients --------------------------------------------------------------------------------


@dataclass
class Agent:
    """One client's session and what it reports into the shared ledger."""

    client: Client
    ledger: Ledger
    rng: random.Random
    key_result: str

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any] | None:
        """Call a tool, timing it; an error result or exception is recorded and answered with None."""
        started = time.monotonic()
        try:
            with anyio.fail_after(CALL_TIMEOUT_S):
                result = await self.client.call_tool(tool, arguments)
        except Exception as exc:  # any failure of the call is an error under load, whatever its kind
            self.ledger.errors.append(f"{tool}: {type(exc).__name__}: {exc}")
            return None
        self.ledger.samples.append((tool, started - self.ledger.started, time.monotonic() - started))
        if result.is_error:
            text = getattr(result.content[0], "text", "") if result.content else ""
            self.ledger.errors.append(f"{tool}: error result: {text}")
            return None
        return dict(result.structured_content or {})

    async def spend(self) -> None:
        """authorize, then settle at or under the reservation (or release, a fifth of the time)."""
        amount = ABOVE_CAP if self.rng.random() < 0.1 else self.rng.choice(PRICES)
        asked = await self.call(
            "authorize",
            agency=AGENCY,
            role=ROLE,
            capability="spend.ads",
            amount_cents=amount,
            target="ads.example.com",
            idempotency_key=str(uuid.uuid4()),
        )
        if asked is not None:
            await self._answered("spend.ads", amount, asked)

    async def send(self) -> None:
        """authorize one email.send (the blueprint's count budget: 50 a day), then settle it."""
        target = f"lead{self.rng.randrange(10**6)}@prospect{self.rng.randrange(100)}.com"
        asked = await self.call(
            "authorize",
            agency=AGENCY,
            role=ROLE,
            capability="email.send",
            amount_cents=0,
            target=target,
            idempotency_key=str(uuid.uuid4()),
        )
        if asked is not None:
            await self._answered("email.send", 0, asked)

    async def _answered(self, capability: str, amount: int, asked: dict[str, Any]) -> None:
        number, answer = ids.parse_id("authorization", asked["authorization_id"]), asked["answer"]
        self.ledger.authorized[number] = (answer, amount)
        self.ledger.answers[f"{capability} {answer}"] += 1
        if capability == "spend.ads" and answer == "denied" and self.ledger.spend_ran_out_at is None:
            self.ledger.spend_ran_out_at = time.monotonic() - self.ledger.started
        if answer != "allowed":
            return
        if self.rng.random() < 0.2:
            if await self.call("release", authorization_id=asked["authorization_id"]) is not None:
                self.ledger.released.add(number)
            return
        actual = amount - self.rng.randrange(amount // 3 + 1)  # often under the reservation: the rest returns
        if await self.call("settle", authorization_id=asked["authorization_id"], actual_cents=actual) is not None:
            self.ledger.settled[number] = actual

    async def work(self) -> None:
        """claim_next_task, then complete_task with its outcome."""
        claimed = await self.call("claim_next_task", agency=AGENCY, role=ROLE)
        if claimed is None:
            return
        if claimed["task"] is None:
            self.ledger.empty_claims += 1
            return
        task = ids.parse_id("task", claimed["task"]["id"])
        self.ledger.claimed.append(task)
        done = await self.call(
            "complete_task", task_id=claimed["task"]["id"], summary="Researched and wrote", result="success"
        )
        if done is not None:
            self.ledger.completed[task] = ids.parse_id("outcome", done["outcome"]["id"])
            self.ledger.outcomes.add(self.ledger.completed[task])

    async def log(self) -> None:
        logged = await self.call(
            "log_outcome",
            agency=AGENCY,
            role=ROLE,
            summary="Sent a first touch",
            result=self.rng.choice(("success", "partial", "failure")),
            metrics=[{"key_result": self.key_result, "delta": 1}],
        )
        if logged is not None:
            self.ledger.outcomes.add(ids.parse_id("outcome", logged["id"]))

    async def loop(self, deadline: float) -> None:
        """Rounds until the deadline; a round already started finishes, so its settle is not cut off."""
        rounds = 0
        while time.monotonic() < deadline:
            await (self.send() if rounds % 4 == 3 else self.spend())
            await self.work()
            await self.log()
            rounds += 1


@asynccontextmanager
async def connect(url: str, secret: str, mode: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=CALL_TIMEOUT_S) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


@dataclass
class Start:
    """Every client connects first, then all start together, so the timed part is all work."""

    expected: int
    arrived: int = 0
    everyone: anyio.Event = field(default_factory=anyio.Event)
    go: anyio.Event = field(default_factory=anyio.Event)
    deadline: float = math.inf

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.expected:
            self.everyone.set()


async def run_client(
    url: str, secret: str, mode: str, seed: int, key_result: str, ledger: Ledger, start: Start
) -> None:
    try:
        async with connect(url, secret, mode) as client:
            # A client lists the tools once before its first call (the SDK would do it inside that
            # call, to check output schemas); done here, the timed calls are the steady state.
            await client.list_tools()
            start.arrive()
            await start.go.wait()
            await Agent(client, ledger, random.Random(seed), key_result).loop(start.deadline)
    except Exception as exc:  # a connection that could not open, or broke outside a call
        ledger.errors.append(f"client {seed} ({mode}): {type(exc).__name__}: {exc}")
        start.arrive()


async def drive(url: str, secrets: Sequence[str], key_result: str, plan: Plan) -> Ledger:
    """Run every client for the plan's duration and return what they were told."""
    ledger, start = Ledger(), Start(len(secrets))
    legacy = round(plan.clients * plan.legacy_share)
    async with anyio.create_task_group() as group:
        for n, secret in enumerate(secrets):
            group.start_soon(run_client, url, secret, "legacy" if n < legacy else "auto", n, key_result, ledger, start)
        with anyio.fail_after(SERVER_START_TIMEOUT_S):
            await start.everyone.wait()
        ledger.started = time.monotonic()
        start.deadline = ledger.started + plan.duration
        start.go.set()
    ledger.elapsed = time.monotonic() - ledger.started
    return ledger


# --- the outside load generator -----------------------------------------------------------------


def run_inspector(url: str, secret: str, plan: Plan) -> dict[str, Any] | str:
    """The MCP Inspector's `--load` summary for `check`, or why there is none."""
    npx = shutil.which("npx")
    if npx is None:
        return "npx is not on PATH (install Node.js to get it): no outside-load figures"
    check = {
        "agency": AGENCY,
        "role": ROLE,
        "capability": "spend.ads",
        "amount_cents": 300,
        "target": "ads.example.com",
    }
    command = [
        npx,
        "-y",
        INSPECTOR,
        "--cli",
        url,
        "--transport",
        "http",
        "--header",
        f"Authorization: Bearer {secret}",
        "--method",
        "tools/call",
        "--tool-name",
        "check",
        "--tool-args-json",
        json.dumps(check),
        "--load",
        "--load-duration",
        f"{plan.inspector_duration:g}",
        "--load-concurrency",
        str(plan.clients),
        "--format",
        "json",
    ]
    say(f"load: {INSPECTOR} --load on check, {plan.clients} in flight, {plan.inspector_duration:g} s")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=plan.inspector_duration + 300
        )  # the first run downloads the package
    except subprocess.TimeoutExpired:
        return "the inspector did not finish in time: no outside-load figures"
    try:
        summary: dict[str, Any] = json.loads(done.stdout)["result"]
    except (json.JSONDecodeError, KeyError, TypeError):
        why = (done.stderr or done.stdout).strip().splitlines()[-5:]
        return f"the inspector ran but gave no summary (exit {done.returncode}): " + " / ".join(why)
    return summary


# --- the report ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def report(plan: Plan, result: Run) -> None:
    ledger, verdict = result.ledger, result.verdict
    calls = sum(len(times) for times in ledger.latencies.values()) + len(ledger.errors)
    legacy = round(plan.clients * plan.legacy_share)
    print(
        f"clients: {plan.clients} ({legacy} legacy, {plan.clients - legacy} default mode), "
        f"duration {ledger.elapsed:.1f} s (asked {plan.duration:g} s)"
    )
    print(f"calls: {calls}, throughput {calls / ledger.elapsed:.1f} calls/s")
    print(f"  {'tool':16} {'calls':>7} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for tool, times in sorted(ledger.latencies.items()):
        print(
            f"  {tool:16} {len(times):7} {len(times) / ledger.elapsed:8.1f} {1000 * percentile(times, 0.5):8.1f} "
            f"{1000 * percentile(times, 0.99):8.1f} {1000 * max(times):8.1f}"
        )
    print("answers: " + ", ".join(f"{kind} {n}" for kind, n in sorted(ledger.answers.items())))
    ran_out = ledger.spend_ran_out_at
    print(
        "spend.ads budget: "
        + (
            f"ran out {ran_out:.1f} s into the run ({100 * ran_out / ledger.elapsed:.0f}%)"
            if ran_out is not None
            else "never ran out: the check was not contended"
        )
    )
    print(
        f"tasks: {len(ledger.claimed)} claimed, {len(ledger.completed)} completed, "
        f"{ledger.empty_claims} claims found nothing"
    )
    print(f"errors: {len(ledger.errors)}")
    for message, seen in Counter(ledger.errors).most_common(5):
        print(f"  {seen}x {message[:300]}")
    _listed("overspend", verdict.overspent)
    _listed("budget usage drift", verdict.usage_drift)
    writes = (
        len(ledger.authorized)
        + len(ledger.settled)
        + len(ledger.released)
        + len(ledger.claimed)
        + len(ledger.completed)
        + len(ledger.outcomes)
    )
    _listed("writes lost", verdict.lost, f" of {writes} acknowledged")
    print(
        f"claimed twice: {len(verdict.claimed_twice)}"
        + (f" {verdict.claimed_twice[:10]}" if verdict.claimed_twice else "")
    )
    print(f"audit chain: {'verifies' if verdict.audit_ok else 'FAILS'} ({verdict.audit_note})")
    print(f"server: exit {result.server_exit}", end="; ")
    _listed("logged errors", result.server_errors)


def _listed(name: str, problems: Sequence[str], note: str = "") -> None:
    print(f"{name}: {len(problems)}{note}")
    for line in problems[:5]:
        print(f"  {line}")


def report_inspector(summary: dict[str, Any] | str) -> bool:
    """Print the inspector's figures as it reported them; False when it saw errors."""
    if isinstance(summary, str):
        print(f"inspector: {summary}")
        return True
    latency = summary.get("latencyMs", {})
    errors = int(summary.get("errors", 0)) + int(summary.get("toolErrors", 0))
    print(
        f"inspector ({INSPECTOR}, tool {summary.get('tool')}, {summary.get('concurrency')} in flight, "
        f"{summary.get('elapsedMs', 0) / 1000:.1f} s): {summary.get('requests')} calls, "
        f"{summary.get('throughput')} calls/s, p50 {latency.get('p50')} ms, p99 {latency.get('p99')} ms, "
        f"errors {errors} (error rate {summary.get('errorRate')})"
    )
    for message in summary.get("errorMessages", [])[:5]:
        print(f"  {message}")
    return errors == 0


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Run:
    ledger: Ledger
    verdict: Verdict
    server_exit: int | None
    server_errors: list[str] = field(default_factory=list)
    inspector: dict[str, Any] | str | None = None

    @property
    def ok(self) -> bool:
        # uvicorn re-raises our SIGTERM after its graceful shutdown, so -15 is a clean stop too.
        clean_stop = self.server_exit in (0, -15)
        return not self.ledger.errors and not self.server_errors and self.verdict.ok and clean_stop


def logged_errors(log: Path) -> list[str]:
    """What the server logged at ERROR or above (it logs at WARNING and up, to stderr)."""
    return [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "Traceback" in line or "ERROR" in line or "CRITICAL" in line
    ]


async def run(plan: Plan, scratch: Path) -> Run:
    """Build a workspace in `scratch`, load its server, stop it, and check the file."""
    db, log = scratch / "load.db", scratch / "serve-http.stderr"
    say(f"load: building the workspace in {db}")
    secrets, key_result = await build_workspace(db, plan)
    inspector: dict[str, Any] | str | None = None
    async with serving(db, log) as (url, process):
        say(f"load: {plan.clients} clients on {url} for {plan.duration:g} s")
        ledger = await drive(url, secrets, key_result, plan)
        alive = process.returncode is None
        if plan.inspector and alive:
            inspector = await anyio.to_thread.run_sync(run_inspector, url, secrets[0], plan)
    server_exit = process.returncode
    if not alive:
        say(f"load: the server died during the run:\n{_tail(log)}")
    say("load: server stopped; checking the file")
    return Run(ledger, verify(db, ledger), server_exit, logged_errors(log), inspector)


def write_samples(path: Path, ledger: Ledger) -> None:
    """Every timed call as CSV (tool, seconds into the run it started, latency in seconds), for a closer look."""
    lines = ["tool,started_s,latency_s", *(f"{tool},{at:.4f},{seconds:.4f}" for tool, at, seconds in ledger.samples)]
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--duration", type=float, help="seconds of load (default 60, or 10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="the CI form: 10 s, then 5 s of the inspector")
    parser.add_argument(
        "--legacy-share",
        type=float,
        default=0.25,
        help="share of clients on the legacy 2025-11-25 handshake (default 0.25)",
    )
    parser.add_argument("--no-inspector", action="store_true", help="skip the MCP Inspector's outside load")
    parser.add_argument("--inspector-duration", type=float, help="seconds of inspector load (default: half the run)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build the workspace here and keep it")
    parser.add_argument("--samples", type=Path, metavar="CSV", help="write every call's tool, start and latency here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    duration = args.duration or (10.0 if args.quick else 60.0)
    plan = Plan(
        clients=args.clients,
        duration=duration,
        legacy_share=args.legacy_share,
        inspector=not args.no_inspector,
        inspector_duration=args.inspector_duration or duration / 2,
    )
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = anyio.run(run, plan, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="cos-load-") as scratch:
            result = anyio.run(run, plan, Path(scratch))
    if args.samples:
        write_samples(args.samples, result.ledger)
    report(plan, result)
    inspector_ok = report_inspector(result.inspector) if result.inspector is not None else True
    ok = result.ok and inspector_ok
    # Worded so CI does not take it for the test runner's closing "N passed, N failed" line.
    print("load: every invariant holds" if ok else "load: FAILED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

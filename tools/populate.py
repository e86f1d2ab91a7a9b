"""Fill a workspace with a year of real history, fast: for benchmarks, not for tests.

The workspace is set up through the domain API first (the Outbound blueprint and a
bench grant with a large budget, applied as the operator), then a year of history is
bulk-inserted in one sqlite3 transaction: done and open tasks, outcomes with metric
deltas and lessons, the authorization ledger, and one audit row per change, hash-chained
exactly as `audit.append` would, so `chief-of-staff audit verify` passes. Rollups
(key_results.current, agency_days, key_result_days, budget_usage) are computed from the inserted rows.

    python tools/populate.py --outcomes 1000000 --out /tmp/cos-1M.db
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio

from chief_of_staff.core.audit import GENESIS, OPERATOR_CLI, canonical, row_hash
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import money
from chief_of_staff.domain import decisions, workspace
from chief_of_staff.domain.authority.grants import GrantSpec, create_grant
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.blueprints import loader

TIMEZONE = "Europe/Berlin"
BENCH_CAPABILITY = "crm.update"
HISTORY_DAYS = 365
FLUSH_EVERY = 20_000  # history steps per executemany batch: bounded memory, few round trips
LAYOUT = 2  # bump when the generated data changes, so stale caches are rebuilt
SDR_ACTOR = "agency:Outbound/SDR"
DENIED_PATTERN = "gmail.com"


@dataclass(frozen=True)
class Size:
    """How much history a workspace holds."""

    outcomes: int
    ledger: int
    done_tasks: int
    open_tasks: int

    @property
    def label(self) -> str:
        n = self.outcomes
        if n == 0:
            return "empty"
        return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)

    @property
    def file_name(self) -> str:
        return f"cos-bench-v{LAYOUT}-o{self.outcomes}-l{self.ledger}-d{self.done_tasks}-p{self.open_tasks}.db"


def size_for(outcomes: int, min_open: int) -> Size:
    """n outcomes, n ledger rows, n/10 tasks of which 5% open (at least min_open), the rest done/failed."""
    tasks = outcomes // 10
    open_tasks = max(tasks // 20, min_open)
    return Size(outcomes, outcomes, max(tasks - open_tasks, 0), open_tasks)


def ts(epoch: float) -> str:
    """The stored timestamp form (clock.format_ts) of an epoch instant."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- phase 1: the domain API -------------------------------------------------------------------


async def _seed(path: Path, start: datetime) -> None:
    store = await Store.open(path, FixedClock(start))
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Bench Co", timezone=TIMEZONE)
            await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
            await create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(
                    agency="Outbound",
                    role="SDR",
                    capability=BENCH_CAPABILITY,
                    mode="auto",
                    per_action_cap_cents=100_000,
                    budgets=[
                        BudgetSpec(period="day", max_count=1_000_000),
                        BudgetSpec(period="month", max_cents=1_000_000_000),
                    ],
                    goal="G1",
                    rationale="Benchmark grant: CRM updates with a budget far above any day's use.",
                ),
            )
    finally:
        await store.close()


# --- phase 2: bulk history -----------------------------------------------------------------------


class _Loader:
    """Generates rows in time order, chains their audit rows, and flushes them in batches."""

    def __init__(self, conn: sqlite3.Connection, rng: random.Random) -> None:
        self.conn, self.rng = conn, rng
        one = self._one
        self.agency = one("SELECT id FROM agencies WHERE name = 'Outbound'")[0]
        self.roles = {name: rid for rid, name in conn.execute("SELECT id, name FROM roles")}
        self.goal = one("SELECT id FROM goals WHERE agency_id = ?", self.agency)[0]
        self.krs = {m.lower(): k for k, m in conn.execute("SELECT id, metric FROM key_results")}
        self.bench_grant = one("SELECT id FROM grants WHERE capability = ?", BENCH_CAPABILITY)[0]
        self.email_grant = one("SELECT id FROM grants WHERE capability = 'email.send'")[0]
        self.budgets = dict(
            conn.execute("SELECT period, id FROM grant_budgets WHERE grant_id = ?", (self.bench_grant,)).fetchall()
        )
        head = one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1") or (0, GENESIS)
        self.audit_id: int = head[0]
        self.head: str = head[1]
        self.next: dict[str, int] = {
            t: one(f"SELECT coalesce(max(id), 0) FROM {t}")[0]
            for t in ("tasks", "outcomes", "lessons", "authorizations")
        }
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.kr_sums: dict[int, float] = defaultdict(float)
        # (key result, local day) -> [delta sum, outcomes]: the rollup forecasts read (migration 0004).
        self.kr_days: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0.0, 0])
        self.days: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
        self.usage: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
        self.zone = ZoneInfo(TIMEZONE)
        self._hours: dict[int, tuple[str, str]] = {}

    def _one(self, sql: str, *params: Any) -> Any:
        return self.conn.execute(sql, params).fetchone()

    def new_id(self, table: str) -> int:
        self.next[table] += 1
        return self.next[table]

    def local(self, epoch: float) -> tuple[str, str]:
        """(local day, local month) of an instant; zones move by whole hours, so cache by UTC hour."""
        hour = int(epoch // 3600)
        found = self._hours.get(hour)
        if found is None:
            day = datetime.fromtimestamp(hour * 3600, UTC).astimezone(self.zone).date()
            found = self._hours[hour] = (day.isoformat(), f"{day.year}-{day.month:02d}")
        return found

    def audit(self, at: str, actor: str, channel: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        self.audit_id += 1
        text = canonical(detail)
        digest = row_hash(self.head, self.audit_id, at, actor, channel, action, subject, text)
        self.rows["audit_log"].append((self.audit_id, at, actor, channel, action, subject, text, self.head, digest))
        self.head = digest

    # --- tasks ---

    def task_opened(self, at: float, role: str | None, priority: int, due_on: str | None) -> tuple[int, dict[str, Any]]:
        task_id = self.new_id("tasks")
        title = f"Lead batch {task_id}: research, write and send"
        detail: dict[str, Any] = {
            "title": title,
            "priority": f"P{priority}",
            "source": "agency",
            "agency": "Outbound",
            "goal": f"G{self.goal}",
        }
        if role:
            detail["role"] = role
        if due_on:
            detail["due_on"] = due_on
        self.audit(ts(at), SDR_ACTOR, "agency", "task.add", f"T{task_id}", detail)
        return task_id, {"title": title, "priority": priority, "due_on": due_on, "role": role, "created": ts(at)}

    def task_row(
        self,
        task_id: int,
        info: dict[str, Any],
        status: str,
        *,
        outcome: int | None = None,
        closed: str | None = None,
        leases: int = 0,
    ) -> None:
        role_id = self.roles.get(info["role"]) if info["role"] else None
        self.rows["tasks"].append(
            (
                task_id,
                info["title"],
                "",
                self.agency,
                role_id,
                self.goal,
                None,
                info["priority"],
                info["due_on"],
                status,
                "agency",
                leases,
                outcome,
                info["created"],
                closed or info["created"],
                closed,
            )
        )

    # --- the ledger ---

    def authorization(self, at: float, task_id: int | None) -> None:
        rng, auth_id = self.rng, self.new_id("authorizations")
        allowed = rng.random() < 0.85
        amount = rng.randrange(0, 500) if allowed else 0
        target = f"lead{auth_id}@company{auth_id % 5000}.com" if allowed else f"person{auth_id}@gmail.com"
        capability = BENCH_CAPABILITY if allowed else "email.send"
        role_id = self.roles["SDR"]
        digest = decisions.request_hash(
            {
                "agency_id": self.agency,
                "role_id": role_id,
                "capability": capability,
                "amount_cents": amount,
                "target": target,
                "task_id": task_id,
            }
        )
        created = ts(at)
        if allowed:
            grant, keys = self.bench_grant, self.local(at)
            period_keys = {str(self.budgets["day"]): keys[0], str(self.budgets["month"]): keys[1]}
            reason = f"Allowed by GR{grant}; {money(amount)} reserved. Settle with the actual amount or release."
            settle = rng.random() < 0.92
            settled = rng.randrange(0, amount + 1) if settle else None
            closed = ts(at + 1.0)
            row: tuple[Any, ...] = (
                "allowed",
                reason,
                grant,
                "settled" if settle else "released",
                json.dumps(period_keys),
                settled,
                ts(at + 86400),
                closed,
            )
        else:
            grant = self.email_grant
            reason = f"GR{grant} never allows targets matching {DENIED_PATTERN!r}; this target is out of bounds."
            row = ("denied", reason, grant, "none", "{}", None, None, None)
        self.rows["authorizations"].append(
            (
                auth_id,
                self.agency,
                role_id,
                capability,
                amount,
                target,
                task_id,
                f"hist-{auth_id}",
                digest,
                row[0],
                row[1],
                row[2],
                1,
                None,
                row[3],
                row[4],
                row[5],
                row[6],
                created,
                row[7],
            )
        )
        self.audit(
            created,
            SDR_ACTOR,
            "agency",
            "authority.authorize",
            f"AU{auth_id}",
            {
                "answer": row[0],
                "capability": capability,
                "amount_cents": amount,
                "target": target,
                "grant": f"GR{grant}",
                "decision": None,
                "notify": False,
            },
        )
        if allowed and row[3] == "settled":
            for budget in self.budgets.values():
                used = self.usage[(budget, period_keys[str(budget)])]
                used[0] += 1
                used[1] += settled or 0
            self.audit(
                row[7],
                "agency",
                "agency",
                "authority.settle",
                f"AU{auth_id}",
                {"actual_cents": settled, "reserved_cents": amount},
            )
        elif allowed:
            self.audit(row[7], "agency", "agency", "authority.release", f"AU{auth_id}", {"reserved_cents": amount})

    # --- outcomes ---

    def outcome(self, at: float, task_id: int | None, role: str) -> tuple[int, str]:
        rng, outcome_id = self.rng, self.new_id("outcomes")
        roll = rng.random()
        result = "success" if roll < 0.75 else "partial" if roll < 0.9 else "failure"
        cost, minutes = rng.randrange(0, 300), rng.randrange(0, 60)
        created = ts(at)
        evidence = json.dumps([f"mailbox://sent/{outcome_id}"]) if rng.random() < 0.3 else "[]"
        lesson = (
            f"Lesson from O{outcome_id}: short first lines about the prospect get replies."
            if rng.random() < 0.01
            else None
        )
        self.rows["outcomes"].append(
            (
                outcome_id,
                task_id,
                self.agency,
                self.roles[role],
                f"Worked lead batch {outcome_id}: sent first touches and follow-ups.",
                result,
                cost,
                minutes,
                evidence,
                lesson,
                created,
            )
        )
        detail: dict[str, Any] = {"agency": f"A{self.agency}", "result": result, "cost_cents": cost}
        if task_id is not None:
            detail["task"] = f"T{task_id}"
        metrics = self._metrics(outcome_id, self.local(at)[0])
        if metrics:
            detail["metrics"] = metrics
        if lesson is not None:
            lesson_id = self.new_id("lessons")
            kind = "works" if result == "success" else "breaks"
            self.rows["lessons"].append((lesson_id, self.agency, kind, lesson, "outcome", outcome_id, created))
            detail["lesson"] = f"L{lesson_id}"
        day = self.days[self.local(at)[0]]
        for index, value in enumerate(
            (1, result == "success", result == "partial", result == "failure", cost, minutes)
        ):
            day[index] += int(value)
        self.audit(created, f"agency:Outbound/{role}", "agency", "outcome.log", f"O{outcome_id}", detail)
        return outcome_id, result

    def _metrics(self, outcome_id: int, day: str) -> dict[str, float]:
        roll = self.rng.random()
        if roll < 0.5:
            kr, delta = self.krs["emails sent"], float(self.rng.randrange(1, 6))
        elif roll < 0.58:
            kr, delta = self.krs["positive replies"], 1.0
        elif roll < 0.6:
            kr, delta = self.krs["meetings booked"], 1.0
        else:
            return {}
        self.rows["outcome_metrics"].append((outcome_id, kr, delta))
        self.kr_sums[kr] += delta
        self.kr_days[(kr, day)][0] += delta
        self.kr_days[(kr, day)][1] += 1
        return {f"KR{kr}": delta}

    # --- flushing and rollups ---

    def flush(self) -> None:
        inserts = {
            "tasks": "INSERT INTO tasks (id, title, details, agency_id, role_id, goal_id, key_result_id, priority, "
            "due_on, status, source, lease_count, outcome_id, created_at, updated_at, closed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "outcomes": "INSERT INTO outcomes (id, task_id, agency_id, role_id, summary, result, cost_cents, "
            "minutes_saved, evidence, lesson, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "outcome_metrics": "INSERT INTO outcome_metrics (outcome_id, key_result_id, delta) VALUES (?, ?, ?)",
            "lessons": "INSERT INTO lessons (id, agency_id, kind, text, source, outcome_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            "authorizations": "INSERT INTO authorizations (id, agency_id, role_id, capability, amount_cents, target, "
            "task_id, idempotency_key, request_hash, answer, reason, grant_id, grant_version, "
            "decision_id, status, period_keys, settled_cents, expires_at, created_at, closed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "audit_log": "INSERT INTO audit_log (id, at, actor, channel, action, subject, detail, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        }
        for table, sql in inserts.items():
            if self.rows[table]:
                self.conn.executemany(sql, self.rows[table])
                self.rows[table].clear()

    def rollups(self, now_text: str) -> None:
        for kr, total in self.kr_sums.items():
            self.conn.execute(
                "UPDATE key_results SET current = baseline + ?, updated_at = ? WHERE id = ?", (total, now_text, kr)
            )
        self.conn.executemany(
            "INSERT INTO agency_days (agency_id, day, outcomes, successes, partials, failures, cost_cents, "
            "minutes_saved) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agency_id, day) DO UPDATE SET "
            "outcomes = outcomes + excluded.outcomes, successes = successes + excluded.successes, "
            "partials = partials + excluded.partials, failures = failures + excluded.failures, "
            "cost_cents = cost_cents + excluded.cost_cents, minutes_saved = minutes_saved + excluded.minutes_saved",
            [(self.agency, day, *values) for day, values in sorted(self.days.items())],
        )
        self.conn.executemany(
            "INSERT INTO key_result_days (key_result_id, day, delta_sum, outcomes) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key_result_id, day) DO UPDATE SET delta_sum = delta_sum + excluded.delta_sum, "
            "outcomes = outcomes + excluded.outcomes",
            [(kr, day, total, int(count)) for (kr, day), (total, count) in sorted(self.kr_days.items())],
        )
        self.conn.executemany(
            "INSERT INTO budget_usage (budget_id, period_key, used_count, used_cents) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (budget_id, period_key) DO UPDATE SET used_count = used_count + excluded.used_count, "
            "used_cents = used_cents + excluded.used_cents",
            [(budget, key, count, cents) for (budget, key), (count, cents) in sorted(self.usage.items())],
        )


def _history(loader: _Loader, size: Size, start: float, end: float, progress: Callable[[str], None]) -> None:
    """One step per outcome, in time order: maybe a task opened and claimed, its ledger rows, the outcome."""
    n, rng = size.outcomes, loader.rng
    if n == 0:
        return
    if size.done_tasks > n:
        raise ValueError("every done task has its own outcome: done_tasks must be <= outcomes")
    step = (end - start) / n
    for i in range(n):
        at = start + step * (i + 0.5)
        role = "SDR" if rng.random() < 0.7 else "Researcher"
        task = None
        if (i + 1) * size.done_tasks // n > i * size.done_tasks // n:
            task = loader.task_opened(at - 0.8 * step, role, rng.choice((1, 2, 2, 3)), None)
            loader.audit(
                ts(at - 0.6 * step),
                f"agency:Outbound/{role}",
                "agency",
                "task.claim",
                f"T{task[0]}",
                {"lease_until": ts(at - 0.6 * step + 3600)},
            )
        first, last = i * size.ledger // n, (i + 1) * size.ledger // n
        for j in range(last - first):
            loader.authorization(at - 0.5 * step + j * 0.3 * step / (last - first), task and task[0])
        outcome_id, result = loader.outcome(at, task and task[0], role)
        if task is not None:
            status = "failed" if result == "failure" else "done"
            loader.task_row(task[0], task[1], status, outcome=outcome_id, closed=ts(at), leases=1)
            loader.audit(
                ts(at),
                "agency",
                "agency",
                "task.complete",
                f"T{task[0]}",
                {"status": status, "result": result, "outcome": f"O{outcome_id}"},
            )
        if (i + 1) % FLUSH_EVERY == 0:
            loader.flush()
            progress(f"  {i + 1:,}/{n:,} history steps")
    loader.flush()


def _open_tasks(loader: _Loader, size: Size, start: float, end: float, today: datetime) -> None:
    """The live backlog: open tasks for the SDR (60%), anyone (20%) or the Researcher (20%)."""
    rng = loader.rng
    for k in range(size.open_tasks):
        at = start + (end - start) * (k + 0.5) / size.open_tasks
        roll = rng.random()
        role = "SDR" if roll < 0.6 else None if roll < 0.8 else "Researcher"
        due = None if rng.random() < 0.5 else (today + timedelta(days=rng.randrange(-3, 30))).date().isoformat()
        task_id, info = loader.task_opened(at, role, rng.choice((1, 2, 2, 2, 3)), due)
        loader.task_row(task_id, info, "open")
    loader.flush()


def _bulk(path: Path, size: Size, now: float, progress: Callable[[str], None]) -> None:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        # A scratch file until it is renamed into place: no journal, no fsync, a big page cache.
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "foreign_keys = OFF",
            "cache_size = -400000",
            "temp_store = MEMORY",
        ):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN")
        loader = _Loader(conn, random.Random(20261123))
        _history(loader, size, now - HISTORY_DAYS * 86400, now - 2 * 86400, progress)
        today = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(TIMEZONE))
        _open_tasks(loader, size, now - 2 * 86400, now - 3600, today)
        conn.execute(
            "INSERT INTO viewers (name, last_audit_id, last_seen_at) VALUES ('operator', ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET last_audit_id = excluded.last_audit_id",
            (loader.audit_id, ts(now - 3600)),
        )
        loader.rollups(ts(now - 3600))
        conn.execute("COMMIT")
        started = time.perf_counter()
        broken = conn.execute("PRAGMA foreign_key_check").fetchmany(5)
        if broken:
            raise RuntimeError(f"foreign key violations in the generated data: {broken}")
        progress(f"  foreign_key_check clean in {time.perf_counter() - started:.1f}s")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def build(path: Path, size: Size, *, progress: Callable[[str], None] = print) -> float:
    """Create the workspace file at `path` (replacing it); returns the seconds it took."""
    started = time.perf_counter()
    scratch = path.with_name(path.name + ".building")
    for leftover in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
        leftover.unlink(missing_ok=True)
    now = time.time()
    anyio.run(_seed, scratch, datetime.fromtimestamp(now, UTC) - timedelta(days=HISTORY_DAYS + 1))
    _bulk(scratch, size, now, progress)
    scratch.replace(path)
    return time.perf_counter() - started


def cached_workspace(cache: Path, size: Size, *, progress: Callable[[str], None] = print) -> tuple[Path, float | None]:
    """The populated file for `size` under `cache`, built if missing; (path, build seconds or None if cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / size.file_name
    if path.exists():
        return path, None
    progress(
        f"populating {size.label}: {size.outcomes:,} outcomes, {size.ledger:,} ledger rows, "
        f"{size.done_tasks + size.open_tasks:,} tasks ({size.open_tasks:,} open) -> {path}"
    )
    return path, build(path, size, progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outcomes", type=int, default=1_000_000, help="outcomes and ledger rows (tasks: n/10)")
    parser.add_argument("--min-open", type=int, default=1000, help="at least this many open tasks")
    parser.add_argument("--out", type=Path, required=True, help="workspace file to write (replaced)")
    args = parser.parse_args(argv)
    size = size_for(args.outcomes, args.min_open)
    seconds = build(args.out, size)
    print(f"populated {args.out} ({size.label}) in {seconds:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Crash test: no acknowledged write is lost when the writer process is killed with SIGKILL.

The harness seeds one workspace through the domain API (the Outbound blueprint, a spend.ads
grant whose day and month budgets run out partway through, and open tasks enough for every
run). Then, again and again, it starts tools/crash_writer.py on the file: the writer commits
authorizations (settled or released), outcomes, and task claims with their completions, each
reported on stdout only after its COMMIT has returned. At a random moment (during interpreter
start-up, while the Store opens and SQLite recovers the WAL the last kill left, or mid-stream,
mostly inside a transaction or its COMMIT) the harness kills it with SIGKILL, reads every line
it reported (a line cut short by the kill is not an acknowledgment), and checks a copy of the
file as a fresh process would find it (see tools/crash_check.py): every reported write is there
with its values, integrity_check is ok, the audit chain verifies, budgets are never overspent
and match the ledger, rollups match their rows, and task claims never overlap. The next writer
then reopens the killed file itself, so recovery in place is part of every round. A tenth of
the kills land on a blank file during its migrations instead: each migration and its record
must be all or nothing, and a later start must finish the schema exactly as on a clean run.

The audit anchor, which the store moves after every COMMIT, is checked too: the copy opens for
writing (an anchor one unit behind is accepted, never flagged), and the anchor holds every
acknowledged write. Every third writer waits 20 ms after each COMMIT before the anchor moves, so
many kills land in between. After every kill a second copy has its committed tail cut (from the
anchored row or a little before it, to the end, the append-only trigger put back after): opening
it must refuse writes and name the missing anchored row.

What this proves: durability across process crashes. A SIGKILL leaves the kernel's page cache
intact, so it does not exercise power loss or an OS crash: whether fsync reaches the platter
on real hardware is not tested here.

    uv run python tools/crash_test.py --quick       # CI: 20 kills
    uv run python tools/crash_test.py               # 200 kills
    uv run python tools/crash_test.py --kills 50 --seed 7 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from chief_of_staff.core import anchor
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock, format_ts
from chief_of_staff.core.db import Store, append_only_triggers, migration_files
from chief_of_staff.domain import inbox, workspace
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.blueprints import loader

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crash_check  # sibling scripts, not a package
import crash_writer

from chief_of_staff.domain.authority import grants

WRITER = Path(crash_writer.__file__).resolve()
TIMEZONE = "Europe/Berlin"
# Runs are four hours apart on the writers' clocks: a killed writer's leases (60 minutes) have run out
# for the next one, its held reservations (24 hours) for the sixth after it, and the day budget renews
# every six runs. Six runs ask for more than 12 a day even on a slow, busy machine, so denials come
# every day; the month budget (in cents) is drawn and checked too. A full run crosses the change to
# summer time and the end of March.
FIRST_RUN = datetime(2026, 3, 22, 5, 0, tzinfo=UTC)
RUN_SPAN = timedelta(hours=4)
DAY_COUNT, MONTH_CENTS = 12, 40_000
TASKS_PER_RUN = 15
START_TIMEOUT = 60.0
ANCHOR_DELAY = 0.02  # every third writer waits this long after each COMMIT before the anchor moves


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def read_acks(data: bytes) -> tuple[list[dict[str, Any]], bool]:
    """The writer's acknowledgments, and whether a last line was cut short by the kill (it does not count)."""
    *lines, tail = data.split(b"\n")
    return [json.loads(line) for line in lines if line], tail != b""


# --- one round: spawn, kill, read ----------------------------------------------------------------


@dataclass
class Round:
    moment: str
    acks: list[dict[str, Any]]
    cut_line: bool
    exit_code: int
    stderr: str


def _kill_plan(rng: random.Random, migrating: bool) -> tuple[str, float, bool]:
    """(when, seconds to wait, whether to wait for the start marker first)."""
    if migrating:
        return "during migrations of a blank file", rng.uniform(0, 0.06), True
    draw = rng.random()
    if draw < 0.05:
        return "during interpreter start-up", rng.uniform(0, 0.3), False
    if draw < 0.3:
        return "while opening the store (WAL recovery, migrations check)", rng.uniform(0, 0.015), True
    return "mid-stream", rng.uniform(0.015, 0.4), True


def _wait_for_start(out: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        if b"\n" in out.read_bytes():
            return
        time.sleep(0.001)


def spawn_and_kill(args: list[str], folder: Path, name: str, rng: random.Random, *, migrating: bool = False) -> Round:
    """Start the writer, kill it with SIGKILL at a random moment, and read what it reported."""
    moment, delay, after_start = _kill_plan(rng, migrating)
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    # Its stdout is a file: what a write(2) put there before the kill stays there after it.
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), *args], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
    try:
        if after_start:
            _wait_for_start(out, proc)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    acks, cut = read_acks(out.read_bytes())
    return Round(moment, acks, cut, code, err.read_text(errors="replace")[-2000:])


# --- the workspace and its checks ---------------------------------------------------------------


async def seed(db: Path, tasks: int) -> None:
    """The workspace every writer works in, set up through the domain API as the operator."""
    store = await Store.open(db, FixedClock(FIRST_RUN - timedelta(hours=1)))
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Crash Test Co", timezone=TIMEZONE)
            await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
            await grants.create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(
                    agency=crash_writer.AGENCY,
                    role=crash_writer.ROLE,
                    capability=crash_writer.CAPABILITY,
                    per_action_cap_cents=crash_writer.PER_ACTION_CAP,
                    budgets=[
                        BudgetSpec(period="day", max_count=DAY_COUNT),
                        BudgetSpec(period="month", max_cents=MONTH_CENTS),
                    ],
                    rationale="Crash test: budgets small enough to run out, so denials happen too.",
                ),
            )
        for first in range(0, tasks, 500):
            async with store.write() as tx:
                for n in range(first, min(first + 500, tasks)):
                    await inbox.add_task(
                        tx,
                        OPERATOR_CLI,
                        title=f"Crash-test task {n + 1}",
                        agency=crash_writer.AGENCY,
                        role=crash_writer.ROLE if n % 2 else None,
                        priority=f"P{n % 4}",
                        source="operator",
                    )
    finally:
        await store.close()


async def check_file(db: Path, acks: list[dict[str, Any]]) -> crash_check.Check:
    """Open the file as the next process would (the project's Store), then check one read snapshot.

    The anchor is read first, as the kill left it: opening moves it onto rows a kill left after it.
    """
    held = anchor.read_anchor(anchor.locate(db))
    store = await Store.open(db, FixedClock(FIRST_RUN))
    try:
        async with store.read() as tx:
            check = await crash_check.check_workspace(tx, acks)
            check.anchor_behind, problems = await crash_check.anchor_problems(tx, held, acks)
        check.problems += problems
        if store.refusal is not None:
            check.problems.append(f"the store refused writes on opening: {store.refusal}")
        return check
    finally:
        await store.close()


def crashed_copy(db: Path, folder: Path) -> Path:
    """The file, its WAL and its anchor as the kill left them (no -shm: the copy's opener rebuilds it)."""
    folder.mkdir(exist_ok=True)
    copy = folder / db.name
    for suffix in ("", "-wal", "-shm", ".anchor.json"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
        if suffix != "-shm" and Path(f"{db}{suffix}").exists():
            shutil.copyfile(f"{db}{suffix}", f"{copy}{suffix}")
    return copy


def cut_tail(db: Path, rng: random.Random) -> int:
    """Delete the committed tail from the anchored row (or up to five rows before it) to the end, as someone
    with the file would, putting the append-only trigger back after; returns the anchored row."""
    held = anchor.read_anchor(anchor.locate(db))
    assert held is not None, "every round's copy has an anchor"
    conn = sqlite3.connect(db)
    try:
        conn.execute("DROP TRIGGER audit_log_no_delete")
        conn.execute("DELETE FROM audit_log WHERE id >= ?", (max(1, held.row_id - rng.randint(0, 5)),))
        conn.execute(append_only_triggers()["audit_log_no_delete"])
        conn.commit()
    finally:
        conn.close()
    return held.row_id


async def cut_is_refused(db: Path, anchored: int) -> bool:
    """Does opening a file whose tail was cut refuse writes, naming the anchored row that went missing?"""
    store = await Store.open(db, FixedClock(FIRST_RUN))
    try:
        return f"anchored row {anchored} is missing" in (store.refusal or "")
    finally:
        await store.close()


def _schema(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()


def _recorded_migrations(db: Path) -> tuple[list[int], str]:
    """The versions recorded in a killed blank file, and its integrity_check."""
    if not db.exists():
        return [], "ok"
    conn = sqlite3.connect(db)
    try:
        integrity = "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone() is None:
            return [], integrity
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")], integrity
    finally:
        conn.close()


async def _open_and_close(db: Path) -> None:
    await (await Store.open(db, FixedClock(FIRST_RUN))).close()


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Figures:
    kills: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    cut_lines: int = 0
    no_task: int = 0
    finished_first: int = 0  # blank-file starts that had migrated and exited before the kill came
    checks: int = 0
    present_checked: int = 0  # acknowledgments found, summed over every check (each re-checks all so far)
    integrity_ok: int = 0
    chain_ok: int = 0
    clean: int = 0
    migration_versions: Counter[str] = field(default_factory=Counter)
    migration_ok: int = 0
    anchor_behind: int = 0  # checks that found the anchor one unit behind the log (accepted)
    delayed_runs: int = 0  # writers that waited after each COMMIT before moving the anchor
    tail_cuts: int = 0
    tail_cuts_refused: int = 0
    last: crash_check.Check | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and self.last is not None and self.last.lost == 0

    def add_round(self, done: Round, expect_exit: bool) -> None:
        self.cut_lines += done.cut_line
        for ack in done.acks:
            if ack["kind"] in crash_check.CHECKERS:
                self.acked[ack["kind"]] += 1
                self.answers[ack.get("answer", "")] += ack["kind"] == "authorize"
            self.no_task += ack["kind"] == "no_task"
        if done.exit_code == -signal.SIGKILL:
            self.kills[done.moment] += 1
        elif expect_exit and done.exit_code == 0:
            self.finished_first += 1
        else:
            self.problems.append(f"a writer exited on its own with code {done.exit_code}: {done.stderr}")

    def add_check(self, check: crash_check.Check, label: str) -> None:
        self.checks += 1
        self.present_checked += check.present
        self.integrity_ok += check.integrity == "ok"
        self.chain_ok += check.chain_ok
        self.clean += not check.problems
        self.anchor_behind += check.anchor_behind
        self.last = check
        self.problems += [f"{label}: {problem}" for problem in check.problems[:20]]


def _migration_round(
    work: Path, index: int, reference: list[tuple[Any, ...]], rng: random.Random, figures: Figures
) -> None:
    db = work / f"blank-{index}.db"
    done = spawn_and_kill(["--db", str(db), "--migrate-only"], work, f"blank-{index}", rng, migrating=True)
    figures.add_round(done, expect_exit=True)
    versions, integrity = _recorded_migrations(db)
    shipped = [m.version for m in migration_files()]
    figures.migration_versions[f"{len(versions)} of {len(shipped)}"] += 1
    anyio.run(_open_and_close, db)  # a later start finishes what the kill interrupted
    problems = [] if integrity == "ok" else [f"integrity_check: {integrity}"]
    if versions != shipped[: len(versions)]:
        problems.append(f"recorded migrations {versions} are not a prefix of {shipped}")
    if _schema(db) != reference:
        problems.append("the schema after resuming differs from a clean migration's")
    figures.migration_ok += not problems
    figures.problems += [f"blank file {index}: {problem}" for problem in problems]


def _writer_round(
    db: Path,
    work: Path,
    run_number: int,
    seed_value: int,
    rng: random.Random,
    acks: list[dict[str, Any]],
    figures: Figures,
) -> None:
    start = format_ts(FIRST_RUN + run_number * RUN_SPAN)
    delayed = run_number % 3 == 2
    figures.delayed_runs += delayed
    done = spawn_and_kill(
        ["--db", str(db), "--run", str(run_number), "--seed", str(seed_value), "--start", start]
        + (["--anchor-delay", str(ANCHOR_DELAY)] if delayed else []),
        work / "runs",
        f"run-{run_number:04d}",
        rng,
    )
    figures.add_round(done, expect_exit=False)
    acks += [ack for ack in done.acks if ack["kind"] in crash_check.CHECKERS]
    check = anyio.run(check_file, crashed_copy(db, work / "copy"), acks)
    figures.add_check(check, f"after kill {run_number + 1}")
    cut = crashed_copy(db, work / "cut")
    anchored = cut_tail(cut, rng)
    figures.tail_cuts += 1
    if anyio.run(cut_is_refused, cut, anchored):
        figures.tail_cuts_refused += 1
    else:
        figures.problems.append(f"after kill {run_number + 1}: a tail cut through anchored row {anchored} opened")


def run(work: Path, kills: int, seed_value: int) -> Figures:
    """Seed, then kill writers `kills` times (a tenth of them during migrations of a blank file)."""
    rng, figures = random.Random(seed_value), Figures()
    migration_kills = max(1, kills // 10) if kills > 1 else 0
    writer_kills = kills - migration_kills
    (work / "runs").mkdir(parents=True, exist_ok=True)
    anyio.run(_open_and_close, work / "reference.db")
    reference = _schema(work / "reference.db")
    for index in range(migration_kills):
        _migration_round(work, index, reference, rng, figures)
    db = work / "workspace.db"
    anyio.run(seed, db, writer_kills * TASKS_PER_RUN + 100)
    acks: list[dict[str, Any]] = []
    for run_number in range(writer_kills):
        _writer_round(db, work, run_number, seed_value, rng, acks, figures)
        if (run_number + 1) % 10 == 0:
            log(
                f"crash test: {run_number + 1}/{writer_kills} writer kills, {len(acks)} writes acknowledged, "
                f"{len(figures.problems)} problems"
            )
    # Last, the killed file itself, recovered in place rather than as a copy.
    figures.add_check(anyio.run(check_file, db, acks), "the original file after the last kill")
    return figures


# --- the report ---------------------------------------------------------------------------------


def report(figures: Figures, seconds: float, seed_value: int) -> str:
    last = figures.last or crash_check.Check()
    kills = sum(figures.kills.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(figures.acked.items()))
    answers = ", ".join(f"{answer} {count}" for answer, count in sorted(figures.answers.items()) if count)
    lines = [
        f"crash test: {kills} SIGKILLs in {seconds:.1f} s (seed {seed_value})",
        "  kills: " + "; ".join(f"{count} {moment}" for moment, count in figures.kills.most_common()),
        f"  writes acknowledged: {last.acked} ({kinds}); authorize answers: {answers}",
        f"  checked present after the last kill: {last.present} of {last.acked}; lost: {last.lost} "
        f"({figures.present_checked} found in all, every check looking again for every earlier one)",
        f"  committed but never reported (the kill fell after COMMIT): {last.unreported}; "
        f"cut-off last lines ignored: {figures.cut_lines}; claims that found no task: {figures.no_task}",
        f"  checks after each kill and of the original at the end: {figures.checks}; integrity_check ok "
        f"{figures.integrity_ok}/{figures.checks}; audit chain verified {figures.chain_ok}/{figures.checks} "
        f"(last: {last.chain_rows} rows); budgets within limits and equal to the ledger, rollups equal to "
        f"their rows, claims never inside a live lease: {figures.clean}/{figures.checks} clean",
        "  blank-file migrations killed with versions recorded: "
        + ", ".join(f"{k} ({n})" for k, n in sorted(figures.migration_versions.items()))
        + f" ({figures.finished_first} had finished and exited first); all or nothing and resumed to the "
        f"clean schema: {figures.migration_ok}/{sum(figures.migration_versions.values())}",
        f"  audit anchor (any copy refused on opening, or an anchor short of an acknowledged write, is a "
        f"PROBLEM below): one unit behind the log (a kill between COMMIT and the anchor's move, accepted) after "
        f"{figures.anchor_behind} of {figures.checks} checks ({figures.delayed_runs} writers waited "
        f"{ANCHOR_DELAY * 1000:.0f} ms after each COMMIT); committed tails cut through the anchored row and "
        f"refused on opening: {figures.tail_cuts_refused}/{figures.tail_cuts}",
        "  This proves durability across process crashes (SIGKILL): the kernel outlives the process, so "
        "power loss and OS crashes are not exercised, nor is fsync on real hardware.",
    ]
    lines += [f"  PROBLEM {problem}" for problem in figures.problems[:50]]
    lines.append("  PASS" if figures.passed else f"  FAIL ({len(figures.problems)} problems)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 kills (CI)")
    parser.add_argument("--kills", type=int, default=200, help="how many SIGKILLs (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments and the writers' choices")
    parser.add_argument("--dir", type=Path, help="work in this folder (kept) instead of a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and say where it is")
    args = parser.parse_args(argv)
    kills = 20 if args.quick else args.kills
    work = args.dir or Path(tempfile.mkdtemp(prefix="cos-crash-"))
    started = time.perf_counter()
    try:
        figures = run(work, kills, args.seed)
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"crash test: workspace kept in {work}")
    print(report(figures, time.perf_counter() - started, args.seed))
    return 0 if figures.passed else 1


if __name__ == "__main__":
    sys.exit(main())

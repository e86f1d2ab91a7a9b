"""Load, afterwards: the file read from outside, read-only, against what the clients were told.

tools/load.py drives the clients and records in a `Ledger` every write the server acknowledged.
Once the server has stopped, `verify` reads the file from a separate read-only connection and
returns a `Verdict`:

- writes lost: every acknowledged authorization, settlement, release, claim, completion and
  outcome is in the file as it was answered;
- claimed twice: no task was handed out twice;
- overspend: the budget ledger is replayed in audit order, and no period of any budget ever held
  more than its limit (and the replay ends where the budget_usage rows say);
- the audit chain verifies (`chief-of-staff audit verify`).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Ledger:
    """What the clients were told: latencies by tool, answers, and every acknowledged write."""

    samples: list[tuple[str, float, float]] = field(default_factory=list)  # (tool, started at, seconds)
    errors: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    authorized: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (answer, amount)
    settled: dict[int, int] = field(default_factory=dict)  # id -> settled cents
    released: set[int] = field(default_factory=set)
    claimed: list[int] = field(default_factory=list)
    completed: dict[int, int] = field(default_factory=dict)  # task id -> its outcome id
    outcomes: set[int] = field(default_factory=set)
    empty_claims: int = 0
    spend_ran_out_at: float | None = None  # seconds into the run of the first spend.ads budget denial
    started: float = 0.0
    elapsed: float = 0.0

    @property
    def latencies(self) -> dict[str, list[float]]:
        by_tool: dict[str, list[float]] = defaultdict(list)
        for tool, _, seconds in self.samples:
            by_tool[tool].append(seconds)
        return by_tool


# --- afterwards: what the file holds ------------------------------------------------------------


@dataclass
class Verdict:
    """The invariants, read from the file after the server stopped."""

    lost: list[str] = field(default_factory=list)
    claimed_twice: list[int] = field(default_factory=list)
    overspent: list[str] = field(default_factory=list)
    usage_drift: list[str] = field(default_factory=list)
    audit_ok: bool = False
    audit_note: str = ""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.claimed_twice or self.overspent or self.usage_drift) and self.audit_ok


def rows(db: Path, sql: str) -> list[sqlite3.Row]:
    """Read the file from outside the server, read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def lost_authority(db: Path, ledger: Ledger) -> list[str]:
    """Acknowledged authorizations, settlements and releases missing from the ledger table, or different."""
    held = {
        row["id"]: row for row in rows(db, "SELECT id, answer, amount_cents, status, settled_cents FROM authorizations")
    }
    lost = []
    for number, (answer, amount) in ledger.authorized.items():
        row = held.get(number)
        if row is None or (row["answer"], row["amount_cents"]) != (answer, amount):
            lost.append(f"AU{number}: answered {answer} {amount}, file has {None if row is None else dict(row)}")
    for number, cents in ledger.settled.items():
        row = held.get(number)
        if row is None or (row["status"], row["settled_cents"]) != ("settled", cents):
            lost.append(f"AU{number}: settled at {cents}, file has {None if row is None else dict(row)}")
    for number in ledger.released:
        row = held.get(number)
        if row is None or row["status"] != "released":
            lost.append(f"AU{number}: released, file has {None if row is None else dict(row)}")
    return lost


def lost_work(db: Path, ledger: Ledger) -> list[str]:
    """Acknowledged claims, completions and outcomes missing from the file, or different."""
    tasks = {row["id"]: row for row in rows(db, "SELECT id, status, outcome_id FROM tasks")}
    outcomes = {row[0] for row in rows(db, "SELECT id FROM outcomes")}
    lost = []
    for task in ledger.claimed:
        row = tasks.get(task)
        if row is None or row["status"] not in ("claimed", "done"):
            lost.append(f"T{task}: claimed, file has {None if row is None else dict(row)}")
    for task, outcome in ledger.completed.items():
        row = tasks.get(task)
        if row is None or (row["status"], row["outcome_id"]) != ("done", outcome):
            lost.append(f"T{task}: completed with O{outcome}, file has {None if row is None else dict(row)}")
    lost += [f"O{number}: logged, not in the file" for number in sorted(ledger.outcomes - outcomes)]
    return lost


def claimed_twice(db: Path, ledger: Ledger) -> list[int]:
    """Tasks handed out more than once: twice in what clients were told, or leased twice in the file."""
    told = [task for task, times in Counter(ledger.claimed).items() if times > 1]
    # Leases last 60 minutes, longer than any run, so a second lease is a second claim.
    leased = [row[0] for row in rows(db, "SELECT id FROM tasks WHERE lease_count > 1")]
    return sorted({*told, *leased})


def replay_budgets(db: Path) -> tuple[list[str], list[str]]:
    """Replay every draw and give-back in commit (audit) order; any period over its limit is overspend.

    Returns (overspent, drift): the periods that ever held more than their limit, and those whose
    replayed usage differs from the budget_usage row the server kept.
    """
    limits = {
        str(row["id"]): (row["max_count"], row["max_cents"])
        for row in rows(db, "SELECT id, max_count, max_cents FROM grant_budgets")
    }
    drawn = {
        f"AU{row['id']}": (json.loads(row["period_keys"]), row["amount_cents"])
        for row in rows(db, "SELECT id, period_keys, amount_cents FROM authorizations WHERE answer = 'allowed'")
    }
    usage: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    overspent: dict[tuple[str, str], str] = {}  # each period once, as last seen over its limit
    for event in rows(
        db,
        "SELECT action, subject, detail FROM audit_log WHERE action IN ('authority.authorize', "
        "'authority.settle', 'authority.release', 'authority.expire') ORDER BY id",
    ):
        detail = json.loads(event["detail"])
        if event["subject"] not in drawn or (
            event["action"] == "authority.authorize" and detail["answer"] != "allowed"
        ):
            continue
        keys, amount = drawn[event["subject"]]
        count, cents = {
            "authority.authorize": (1, amount),
            "authority.release": (-1, -amount),
            "authority.expire": (-1, -amount),
        }.get(event["action"], (0, 0))
        if event["action"] == "authority.settle":
            cents = detail["actual_cents"] - detail["reserved_cents"]
        for budget, key in keys.items():
            used = usage[budget, key]
            used[0] += count
            used[1] += cents
            max_count, max_cents = limits[budget]
            if (max_count is not None and used[0] > max_count) or (max_cents is not None and used[1] > max_cents):
                overspent[budget, key] = (
                    f"budget {budget} {key}: {used[0]} used of {max_count}, {used[1]} cents of {max_cents}"
                )
    kept = {
        (str(row["budget_id"]), row["period_key"]): [row["used_count"], row["used_cents"]]
        for row in rows(db, "SELECT budget_id, period_key, used_count, used_cents FROM budget_usage")
    }
    drift = [
        f"budget {b} {k}: replayed {usage.get((b, k))}, budget_usage has {kept.get((b, k))}"
        for b, k in sorted(usage.keys() | kept.keys())
        if usage.get((b, k), [0, 0]) != kept.get((b, k), [0, 0])
    ]
    return sorted(overspent.values()), drift


def audit_verifies(db: Path) -> tuple[bool, str]:
    """The project's own check of the hash chain, as the operator would run it."""
    done = subprocess.run(
        [sys.executable, "-m", "chief_of_staff", "audit", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip().splitlines()[0] if (
        done.stdout + done.stderr
    ).strip() else f"exit {done.returncode}"


def verify(db: Path, ledger: Ledger) -> Verdict:
    """Check every invariant against the file; the server must have stopped."""
    overspent, drift = replay_budgets(db)
    audit_ok, audit_note = audit_verifies(db)
    return Verdict(
        lost=lost_authority(db, ledger) + lost_work(db, ledger),
        claimed_twice=claimed_twice(db, ledger),
        overspent=overspent,
        usage_drift=drift,
        audit_ok=audit_ok,
        audit_note=audit_note,
    )

"""What tools/crash_test.py checks in the file after each kill, read through a connection of its own.

- every write a writer acknowledged is there, with the values it reported (a settle or a
  completion that was acknowledged is final; an authorization may have moved on since);
- `PRAGMA integrity_check` says ok and `PRAGMA foreign_key_check` finds nothing;
- the audit chain verifies (the project's own `audit.verify_chain`);
- no budget is used beyond its limits, and each budget's usage equals what the ledger
  says it should be (held and settled reservations, period by period);
- every rollup equals the rows it sums (key results, their days, the agency's days), so no
  transaction was applied in part;
- the task claims in the audit log never overlap a lease still running, none follows a
  completion, each task's lease count equals its claims, and closed tasks were completed;
- the audit anchor holds a row that is still there with its hash, at or after the head of every
  acknowledged write, and at most one unit behind the log (the rows after it share one instant:
  the kill fell between that unit's COMMIT and the anchor's move, which is allowed).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chief_of_staff.core import audit, ids
from chief_of_staff.core.anchor import Anchor
from chief_of_staff.core.db import Row, Tx

Ack = dict[str, Any]
AUTHORIZATION_STATES = {"allowed": {"held", "settled", "released", "expired"}}
CLOSED_TASKS = ("done", "failed")


@dataclass
class Check:
    """The verdict on one file: acknowledgments found, and every problem seen."""

    acked: int = 0
    present: int = 0
    integrity: str = ""
    chain_rows: int = 0
    chain_ok: bool = False
    budget_rows: int = 0
    unreported: int = 0  # committed by a writer, never acknowledged: the kill fell after COMMIT
    anchor_behind: bool = False  # one unit of rows after the anchor: the kill fell before it moved
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.acked - self.present


@dataclass
class State:
    authorizations: dict[int, Row]
    decisions: set[int]
    outcomes: dict[int, Row]
    metrics: dict[tuple[int, int], float]
    tasks: dict[int, Row]
    claims: set[tuple[str, str, str]]  # (task, actor, lease_until) of every task.claim audit row
    history: list[Row]  # task.claim and task.complete audit rows, in chain order


async def load_state(tx: Tx) -> State:
    history = await tx.all(
        "SELECT id, at, action, subject, actor, detail FROM audit_log "
        "WHERE action IN ('task.claim', 'task.complete') ORDER BY id"
    )
    claims = {
        (row["subject"], row["actor"], json.loads(row["detail"]).get("lease_until"))
        for row in history
        if row["action"] == "task.claim"
    }
    return State(
        authorizations={row["id"]: row for row in await tx.all("SELECT * FROM authorizations")},
        decisions={row[0] for row in await tx.all("SELECT id FROM decisions")},
        outcomes={row["id"]: row for row in await tx.all("SELECT id, summary, task_id FROM outcomes")},
        metrics={
            (row[0], row[1]): row[2]
            for row in await tx.all("SELECT outcome_id, key_result_id, delta FROM outcome_metrics")
        },
        tasks={row["id"]: row for row in await tx.all("SELECT id, status, outcome_id, lease_count FROM tasks")},
        claims=claims,
        history=history,
    )


# --- each acknowledgment ---------------------------------------------------------------------------


def _authorize(ack: Ack, s: State) -> str | None:
    row = s.authorizations.get(ids.parse_id("authorization", ack["id"]))
    if row is None:
        return f"{ack['id']} (authorize, key {ack['key']}) is missing"
    found = (row["idempotency_key"], row["answer"], row["amount_cents"], row["decision_id"])
    decision = None if ack["decision"] is None else ids.parse_id("decision", ack["decision"])
    if found != (ack["key"], ack["answer"], ack["amount"], decision):
        return f"{ack['id']} reads {found}, acknowledged as {ack}"
    if decision is not None and decision not in s.decisions:
        return f"{ack['decision']}, opened by {ack['id']}, is missing"
    if row["status"] not in AUTHORIZATION_STATES.get(ack["answer"], {"none"}):
        return f"{ack['id']} ({ack['answer']}) has status {row['status']}"
    return None


def _closed_as(status: str) -> Callable[[Ack, State], str | None]:
    def check(ack: Ack, s: State) -> str | None:
        row = s.authorizations.get(ids.parse_id("authorization", ack["id"]))
        if row is None or row["status"] != status:
            return f"{ack['id']} was acknowledged {status} but reads {None if row is None else row['status']}"
        if status == "settled" and row["settled_cents"] != ack["actual"]:
            return f"{ack['id']} settled at {row['settled_cents']}, acknowledged at {ack['actual']}"
        return None

    return check


def _metric_problem(ack: Ack, s: State, outcome_id: int) -> str | None:
    delta = s.metrics.get((outcome_id, ids.parse_id("key_result", ack["key_result"])))
    if delta != ack["delta"]:
        return (
            f"{ack['outcome'] if 'outcome' in ack else ack['id']} moves {ack['key_result']} by {delta}, "
            f"acknowledged {ack['delta']}"
        )
    return None


def _outcome(ack: Ack, s: State) -> str | None:
    number = ids.parse_id("outcome", ack["id"])
    row = s.outcomes.get(number)
    if row is None or row["summary"] != ack["summary"]:
        return f"{ack['id']} ({ack['summary']!r}) is missing or changed"
    return _metric_problem(ack, s, number)


def _claim(ack: Ack, s: State) -> str | None:
    task = s.tasks.get(ids.parse_id("task", ack["task"]))
    if (ack["task"], ack["owner"], ack["lease_until"]) not in s.claims:
        return f"the claim of {ack['task']} by {ack['owner']} until {ack['lease_until']} is not in the audit log"
    if task is None or task["status"] not in ("claimed", *CLOSED_TASKS):
        return f"{ack['task']} was claimed but reads {None if task is None else task['status']}"
    return None


def _complete(ack: Ack, s: State) -> str | None:
    number, outcome = ids.parse_id("task", ack["task"]), ids.parse_id("outcome", ack["outcome"])
    task, row = s.tasks.get(number), s.outcomes.get(outcome)
    if task is None or (task["status"], task["outcome_id"]) != (ack["status"], outcome):
        return (
            f"{ack['task']} was completed ({ack['status']}, {ack['outcome']}) but reads "
            f"{None if task is None else (task['status'], task['outcome_id'])}"
        )
    if row is None or row["task_id"] != number:
        return f"{ack['outcome']}, the outcome of {ack['task']}, is missing or names another task"
    return _metric_problem(ack, s, outcome)


CHECKERS: dict[str, Callable[[Ack, State], str | None]] = {
    "authorize": _authorize,
    "settle": _closed_as("settled"),
    "release": _closed_as("released"),
    "outcome": _outcome,
    "claim": _claim,
    "complete": _complete,
}


# --- invariants of the whole file ----------------------------------------------------------------


async def _budget_problems(tx: Tx, s: State) -> tuple[int, list[str]]:
    usage = await tx.all(
        "SELECT u.budget_id, u.period_key, u.used_count, u.used_cents, b.max_count, b.max_cents "
        "FROM budget_usage AS u JOIN grant_budgets AS b ON b.id = u.budget_id"
    )
    problems = [
        f"budget {row['budget_id']} in {row['period_key']} used {row['used_count']} times and "
        f"{row['used_cents']} cents, beyond its limits ({row['max_count']}, {row['max_cents']})"
        for row in usage
        if (row["max_count"] is not None and row["used_count"] > row["max_count"])
        or (row["max_cents"] is not None and row["used_cents"] > row["max_cents"])
    ]
    # What the ledger says each budget holds: held reservations whole, settled ones at the actual amount,
    # and holds that ran out unsettled at the full amount they were settled at (never refunded).
    expected: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in s.authorizations.values():
        if row["status"] in ("held", "settled", "expired"):
            for budget_id, key in json.loads(row["period_keys"]).items():
                held = expected[(int(budget_id), key)]
                held[0] += 1
                held[1] += row["amount_cents"] if row["status"] == "held" else row["settled_cents"]
    found = {(row["budget_id"], row["period_key"]): [row["used_count"], row["used_cents"]] for row in usage}
    for key in set(expected) | set(found):
        if expected.get(key, [0, 0]) != found.get(key, [0, 0]):
            problems.append(f"budget {key[0]} in {key[1]} holds {found.get(key)}, the ledger says {expected.get(key)}")
    return len(usage), problems


async def _rollup_problems(tx: Tx) -> list[str]:
    rows = await tx.all(
        "SELECT k.id, k.baseline, k.current, "
        "(SELECT coalesce(sum(delta), 0) FROM outcome_metrics WHERE key_result_id = k.id) AS moved, "
        "(SELECT coalesce(sum(delta_sum), 0) FROM key_result_days WHERE key_result_id = k.id) AS by_day "
        "FROM key_results AS k"
    )
    problems = [
        f"KR{row['id']}: current {row['current']}, by day {row['by_day']}, rows say {row['moved']}"
        for row in rows
        if abs(row["current"] - row["baseline"] - row["moved"]) > 1e-9 or abs(row["by_day"] - row["moved"]) > 1e-9
    ]
    days = await tx.all("SELECT agency_id, sum(outcomes), sum(cost_cents) FROM agency_days GROUP BY agency_id")
    logged = await tx.all("SELECT agency_id, count(*), sum(cost_cents) FROM outcomes GROUP BY agency_id")
    if sorted(map(tuple, days)) != sorted(map(tuple, logged)):
        problems.append(f"agency_days {[tuple(r) for r in days]} differ from the outcomes {[tuple(r) for r in logged]}")
    return problems


def _task_problems(s: State) -> list[str]:
    problems: list[str] = []
    events: dict[str, list[Row]] = defaultdict(list)
    for row in s.history:
        events[row["subject"]].append(row)
    claims: Counter[str] = Counter()
    for label, rows in events.items():
        lease_until, completed = "", False
        for row in rows:
            if completed:
                problems.append(f"{label}: {row['action']} at {row['at']} after it was completed")
            elif row["action"] == "task.claim":
                if row["at"] < lease_until:
                    problems.append(
                        f"{label}: claimed by {row['actor']} at {row['at']}, inside a lease running until {lease_until}"
                    )
                lease_until = json.loads(row["detail"])["lease_until"]
                claims[label] += 1
            else:
                completed = True
    for number, task in s.tasks.items():
        label = ids.format_id("task", number)
        if claims[label] != task["lease_count"]:
            problems.append(f"{label}: lease count {task['lease_count']}, {claims[label]} claims in the audit log")
        if (task["status"] in CLOSED_TASKS) != any(r["action"] == "task.complete" for r in events.get(label, [])):
            problems.append(f"{label} is {task['status']}, which its completion record does not match")
    return problems


def _unreported(s: State, acks: list[Ack]) -> int:
    """Writer rows no acknowledgment names: allowed to exist (the kill fell after COMMIT, before the report)."""
    keys = {ack["key"] for ack in acks if ack["kind"] == "authorize"}
    reported = {
        ack["id"] if ack["kind"] == "outcome" else ack["outcome"]
        for ack in acks
        if ack["kind"] in ("outcome", "complete")
    }
    authorizations = sum(1 for row in s.authorizations.values() if row["idempotency_key"] not in keys)
    outcomes = sum(
        1
        for number, row in s.outcomes.items()
        if row["summary"].startswith("crash-test run") and ids.format_id("outcome", number) not in reported
    )
    return authorizations + outcomes


async def anchor_problems(tx: Tx, held: Anchor | None, acks: list[Ack]) -> tuple[bool, list[str]]:
    """Whether the anchor the kill left (read before any store opened the file) is one unit behind the log,
    and what is wrong with it, if anything."""
    if held is None:
        return False, ["anchor: there is none, though the seed and every writer committed audit rows"]
    found = await tx.scalar("SELECT hash FROM audit_log WHERE id = ?", (held.row_id,))
    problems = [] if found == held.hash else [f"anchor: row {held.row_id} reads {found}, anchored {held.hash}"]
    acked = max((ack["head"] for ack in acks if "head" in ack), default=0)
    if held.row_id < acked:
        problems.append(f"anchor: it holds row {held.row_id}, but a write that ended at row {acked} was acknowledged")
    after = await tx.all("SELECT DISTINCT at FROM audit_log WHERE id > ?", (held.row_id,))
    if len(after) > 1:
        problems.append(f"anchor: it holds row {held.row_id}, {len(after)} units behind the log (at most one)")
    return bool(after), problems


async def check_workspace(tx: Tx, acks: list[Ack]) -> Check:
    """Everything this module checks but the anchor, on one read snapshot."""
    check = Check(acked=len(acks))
    check.integrity = "; ".join(str(row[0]) for row in await tx.all("PRAGMA integrity_check"))
    if check.integrity != "ok":
        check.problems.append(f"integrity_check: {check.integrity}")
    if foreign := await tx.all("PRAGMA foreign_key_check"):
        check.problems.append(f"foreign_key_check: {[tuple(row) for row in foreign[:5]]}")
    chain = await audit.verify_chain(tx)
    check.chain_rows, check.chain_ok = chain.rows, chain.ok
    if not chain.ok:
        check.problems.append(f"audit chain broken at row {chain.first_bad_id}: {chain.problem}")
    state = await load_state(tx)
    for ack in acks:
        problem = CHECKERS[ack["kind"]](ack, state)
        if problem is None:
            check.present += 1
        else:
            check.problems.append(f"lost: {problem}")
    check.budget_rows, problems = await _budget_problems(tx, state)
    check.problems += problems + await _rollup_problems(tx) + _task_problems(state)
    check.unreported = _unreported(state, acks)
    return check

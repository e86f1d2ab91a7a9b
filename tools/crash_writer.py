"""The writer that tools/crash_test.py kills: real domain calls, one acknowledgment per commit.

It opens the workspace with the project's own Store (so start-up runs the migrations check and,
after a kill, SQLite's WAL recovery) and loops until it is killed:

- authorize spend.ads against the crash-test grant, then settle or release it when allowed;
- log_outcome with a metric delta;
- claim_next_task, then complete_task (which logs the task's outcome).

Each write unit is one `store.write()` block. Only after the block has returned (COMMIT is
done) does it report what was written, as one JSON line written to stdout by a single
write(2), so a line is either whole or, if the kill lands inside the write, cut short; a cut
line is not an acknowledgment. The first line is a start marker, written before the Store is
opened, so the harness can time kills from the moment start-up begins.

Time is a FixedClock that starts where the harness says (each run four hours after the last)
and moves one second per unit, so leases and reservations left by a killed writer run out
for a later one, and the calendar days of the budget's periods go by.

Each acknowledgment carries `head`, the audit row the unit left at the head of the log: the
anchor must hold at least that row after any kill. With --anchor-delay the writer waits that
long after every COMMIT before the store moves the anchor, so kills land in that window often.

    python tools/crash_writer.py --db W.db --run 3 --seed 7 --start 2026-03-22T05:00:00Z
    python tools/crash_writer.py --db W.db --run 4 --anchor-delay 0.02   # kills between COMMIT and anchor
    python tools/crash_writer.py --db W.db --migrate-only    # start-up only, then exit
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from chief_of_staff.core import anchor
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.domain import goals, inbox, outcomes
from chief_of_staff.domain.authority import ledger
from chief_of_staff.domain.outcomes import MetricDelta

AGENCY, ROLE, CAPABILITY = "Outbound", "SDR", "spend.ads"
PER_ACTION_CAP = 500
STEP = timedelta(seconds=1)
RESULTS = ("success", "success", "partial", "failure")


def emit(record: dict[str, Any], tx: Tx | None = None) -> None:
    """One line, one write(2): the kill can cut it short but never interleave it with another.

    With the unit's `tx`, the line carries the audit head the unit committed.
    """
    if tx is not None and tx.audit_head is not None:
        record["head"] = tx.audit_head[0]
    os.write(1, (json.dumps(record, separators=(",", ":")) + "\n").encode())


def delay_anchoring(seconds: float) -> None:
    """Wait `seconds` after each COMMIT before the anchor moves: the window a kill can leave it behind in."""
    move = anchor.Keeper.committed

    def committed(keeper: anchor.Keeper, head: tuple[int, str], at: str, *, whole: bool = False) -> None:
        time.sleep(seconds)
        move(keeper, head, at, whole=whole)

    anchor.Keeper.committed = committed  # type: ignore[method-assign]


@dataclass
class Writer:
    store: Store
    clock: FixedClock
    actor: Actor
    rng: random.Random
    run: int
    key_results: list[str]
    op: int = 0

    def tick(self) -> int:
        """The next unit happens one second later; returns its number."""
        self.clock.advance(STEP)
        self.op += 1
        return self.op

    def metric(self) -> tuple[str, int]:
        # Whole-number deltas, so the harness can compare rollups with sums exactly.
        return self.rng.choice(self.key_results), self.rng.randint(1, 3)


async def authorize_then_close(w: Writer) -> None:
    """Ask for spend.ads (above the cap now and then, so a decision opens); settle or release if allowed."""
    n = w.tick()
    key = f"r{w.run}-{n}"
    amount = 0 if w.rng.random() < 0.1 else w.rng.randint(1, PER_ACTION_CAP + 100)
    async with w.store.write() as tx:
        view = await ledger.authorize(
            tx,
            w.actor,
            agency=AGENCY,
            role=ROLE,
            capability=CAPABILITY,
            amount_cents=amount,
            target=f"lead{n}.r{w.run}@example.com",
            task_id=None,
            idempotency_key=key,
        )
    emit(
        {
            "kind": "authorize",
            "id": view.authorization_id,
            "key": key,
            "answer": view.answer,
            "amount": amount,
            "decision": view.decision_id,
        },
        tx,
    )
    if view.answer != "allowed":
        return
    w.tick()
    if w.rng.random() < 0.7:
        actual = w.rng.randint(0, amount)
        async with w.store.write() as tx:
            await ledger.settle(tx, w.actor, view.authorization_id, actual_cents=actual)
        emit({"kind": "settle", "id": view.authorization_id, "actual": actual}, tx)
    else:
        async with w.store.write() as tx:
            await ledger.release(tx, w.actor, view.authorization_id)
        emit({"kind": "release", "id": view.authorization_id}, tx)


async def log_one_outcome(w: Writer) -> None:
    n = w.tick()
    key_result, delta = w.metric()
    summary = f"crash-test run {w.run} unit {n}"
    async with w.store.write() as tx:
        view = await outcomes.log_outcome(
            tx,
            w.actor,
            agency=AGENCY,
            role=ROLE,
            summary=summary,
            result=w.rng.choice(RESULTS),
            metrics=[MetricDelta(key_result=key_result, delta=delta)],
            cost_cents=w.rng.randint(0, 100),
        )
    emit({"kind": "outcome", "id": view.id, "summary": summary, "key_result": key_result, "delta": delta}, tx)


async def claim_then_complete(w: Writer) -> None:
    w.tick()
    async with w.store.write() as tx:
        task = await inbox.claim_next_task(tx, w.actor, agency=AGENCY, role=ROLE, lease_minutes=60)
    if task is None:
        emit({"kind": "no_task"})
        return
    emit({"kind": "claim", "task": task.id, "owner": w.actor.name, "lease_until": task.lease_expires_at}, tx)
    n = w.tick()
    key_result, delta = w.metric()
    result = w.rng.choice(RESULTS)
    async with w.store.write() as tx:
        done, outcome = await inbox.complete_task(
            tx,
            w.actor,
            task.id,
            result=result,
            summary=f"crash-test run {w.run} unit {n}: {task.id}",
            metrics=[MetricDelta(key_result=key_result, delta=delta)],
        )
    emit(
        {
            "kind": "complete",
            "task": done.id,
            "status": done.status,
            "outcome": outcome.id,
            "key_result": key_result,
            "delta": delta,
        },
        tx,
    )


async def write_until_killed(path: Path, run: int, seed: int, start: datetime) -> None:
    emit({"kind": "start", "run": run})
    clock = FixedClock(start)
    store = await Store.open(path, clock)
    async with store.read() as tx:
        found = await goals.list_goals(tx, agency=AGENCY)
    writer = Writer(
        store,
        clock,
        Actor(f"crash-writer-{run}", "agency"),
        random.Random(f"{seed}:{run}"),
        run,
        [kr.id for goal in found for kr in goal.key_results],
    )
    steps = (authorize_then_close, log_one_outcome, claim_then_complete)
    while True:
        await writer.rng.choices(steps, weights=(4, 3, 3))[0](writer)


async def migrate_only(path: Path) -> None:
    emit({"kind": "start", "run": -1})
    store = await Store.open(path, FixedClock(datetime(2026, 1, 1, tzinfo=UTC)))
    await store.close()
    emit({"kind": "migrated"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2026-03-22T05:00:00Z", help="UTC instant the run's clock starts at")
    parser.add_argument("--migrate-only", action="store_true", help="open (and migrate) the file, then exit")
    parser.add_argument(
        "--anchor-delay", type=float, default=0.0, help="seconds to wait after each COMMIT before the anchor moves"
    )
    args = parser.parse_args(argv)
    if args.anchor_delay:
        delay_anchoring(args.anchor_delay)
    if args.migrate_only:
        anyio.run(migrate_only, args.db)
        return 0
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    anyio.run(write_until_killed, args.db, args.run, args.seed, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Storage rules: migrations from blank, pragmas, one writer, append-only audit chain."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chief_of_staff.core import audit
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store, migration_files

pytestmark = pytest.mark.anyio


async def test_migrations_build_the_schema_from_a_blank_file(tmp_path: Path, clock: FixedClock) -> None:
    store = await Store.open(tmp_path / "blank.db", clock)
    try:
        async with store.read() as tx:
            tables = {r[0] for r in await tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
            applied = [r[0] for r in await tx.all("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await store.close()
    assert applied == [m.version for m in migration_files()]
    assert {
        "workspace",
        "agencies",
        "roles",
        "lessons",
        "goals",
        "key_results",
        "grants",
        "grant_versions",
        "grant_budgets",
        "budget_usage",
        "authorizations",
        "decisions",
        "routines",
        "tasks",
        "task_dependencies",
        "outcomes",
        "outcome_metrics",
        "agency_days",
        "key_result_days",
        "viewers",
        "audit_log",
        "schema_migrations",
        "server_processes",
    } <= tables


async def test_reopening_applies_no_migration_twice(tmp_path: Path, clock: FixedClock) -> None:
    for _ in range(2):
        store = await Store.open(tmp_path / "again.db", clock)
        async with store.read() as tx:
            count = await tx.scalar("SELECT count(*) FROM schema_migrations")
        await store.close()
    assert count == len(migration_files())


async def test_every_connection_has_wal_full_sync_and_foreign_keys(store: Store) -> None:
    for context in (store.read(), store.write()):
        async with context as tx:
            assert (await tx.scalar("PRAGMA journal_mode")) == "wal"
            assert (await tx.scalar("PRAGMA synchronous")) == 2  # FULL
            assert (await tx.scalar("PRAGMA foreign_keys")) == 1


async def test_a_failed_unit_of_work_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.change", "X1")
            raise RuntimeError("boom")
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM audit_log WHERE action = 'test.change'") == 0


async def test_audit_rows_refuse_update_and_delete(store: Store) -> None:
    for statement in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            async with store.write() as tx:
                await tx.run(statement)


async def test_audit_chain_verifies_and_names_an_altered_row(store: Store, tmp_path: Path) -> None:
    async with store.write() as tx:
        for n in range(5):
            await audit.append(tx, OPERATOR_CLI, "test.change", f"X{n}", {"n": n})
    async with store.read() as tx:
        assert (await audit.verify_chain(tx)).ok
    # Tamper from outside the server, the way an attacker with the file would.
    raw = sqlite3.connect(tmp_path / "workspace.db")
    raw.execute("DROP TRIGGER audit_log_no_update")
    raw.execute("UPDATE audit_log SET detail = '{\"n\":99}' WHERE id = 4")
    raw.commit()
    raw.close()
    async with store.read() as tx:
        report = await audit.verify_chain(tx)
    assert report.first_bad_id == 4
    assert "altered" in (report.problem or "")

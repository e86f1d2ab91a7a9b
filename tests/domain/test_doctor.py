"""doctor: versions and workspace health; a warning when old SQLite meets several writing processes."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from chief_of_staff.cli.main import main
from chief_of_staff.core import audit, processes
from chief_of_staff.core import db as db_module
from chief_of_staff.core.audit import OPERATOR_CLI, Actor, Channel
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import NOW_ENV, Settings
from chief_of_staff.core.db import Store, migration_files
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.domain import agencies, tokens, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.doctor import examine, repair
from chief_of_staff.mcp.server import build_server
from tests.conftest import START


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    path = str(tmp_path / "cli.db")
    assert main(["init", "--db", path, "--timezone", "Europe/Berlin"]) == 0
    return path


def register(db: str, *pids: int) -> None:
    async def work() -> None:
        store = await Store.open(Path(db), FixedClock(START))
        try:
            async with store.write() as tx:
                for pid in pids:
                    await processes.register(tx, pid=pid)
        finally:
            await store.close()

    anyio.run(work)


def registered(db: str) -> list[int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT pid FROM server_processes ORDER BY pid")]
    finally:
        conn.close()


def doctor(db: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["doctor", "--db", db]) == 0  # warnings never fail it
    return capsys.readouterr().out


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_doctor_prints_versions_and_workspace_health(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    register(db, os.getpid())
    out = doctor(db, capsys)
    assert f"SQLite library    {sqlite3.sqlite_version}\n" in out
    assert f"python            {sys.version.split()[0]}\n" in out
    assert f"mcp SDK           {metadata.version('mcp')}\n" in out
    assert f"workspace         {Path(db).resolve()}\n" in out
    latest = max(m.version for m in migration_files())
    assert "journal mode      wal\n" in out and f"schema version    {latest}\n" in out
    assert "audit rows        1\n" in out  # workspace.create
    assert "server processes  1\n" in out and "WARNING" not in out


def test_doctor_warns_when_old_sqlite_meets_two_live_server_processes(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.40.0")
    register(db, os.getpid(), os.getppid())
    out = doctor(db, capsys)
    assert "SQLite library    3.40.0\n" in out and "server processes  2\n" in out
    assert (
        "WARNING: SQLite 3.40.0 is older than 3.51.3, which fixed the WAL-reset bug, and 2 server "
        "processes have this workspace open." in out
    )


def test_doctor_does_not_warn_about_old_sqlite_with_one_process(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.40.0")
    register(db, os.getpid())
    assert "WARNING" not in doctor(db, capsys)


def test_doctor_does_not_warn_about_two_processes_on_fixed_sqlite(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.51.3")
    register(db, os.getpid(), os.getppid())
    assert "WARNING" not in doctor(db, capsys)


def test_doctor_prunes_processes_that_died_without_unregistering(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.40.0")
    gone = dead_pid()
    register(db, os.getpid(), gone)
    out = doctor(db, capsys)
    assert "server processes  1\n" in out and "WARNING" not in out
    assert registered(db) == [os.getpid()]


def test_doctor_on_a_missing_workspace_reports_without_creating_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nowhere.db"
    assert main(["doctor", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"SQLite library    {sqlite3.sqlite_version}\n" in out and "not created yet" in out
    assert not path.exists()


def test_is_alive_knows_this_process_from_a_dead_one() -> None:
    assert processes.is_alive(os.getpid())
    assert not processes.is_alive(dead_pid())
    assert not processes.is_alive(0)


@pytest.mark.anyio
async def test_the_server_registers_its_process_while_open_and_removes_it_after(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with Client(build_server(Settings(db_path=path, clock=FixedClock(START))), mode="legacy") as client:
        await client.list_tools()
        assert registered(str(path)) == [os.getpid()]
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        host = conn.execute("SELECT host FROM server_processes").fetchone()[0]
        conn.close()
        assert host == socket.gethostname()
    assert registered(str(path)) == []


# --- risks, the audit tail, and repair ---------------------------------------------------------------


async def examined(store: Store) -> list[str]:
    return (await examine(store)).warnings


def raw(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def grant_with(store: Store, budgets: list[BudgetSpec], **terms: Any) -> str:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        view = await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="spend.ads", budgets=budgets, **terms)
        )
    return view.id


@pytest.mark.anyio
async def test_a_clean_workspace_has_no_warnings_and_an_anchored_chain(store: Store) -> None:
    report = await examine(store)
    assert report.warnings == []
    assert report.audit == "chain verifies, anchored at row 1"


@pytest.mark.anyio
async def test_doctor_names_a_grant_with_no_period_budget(store: Store) -> None:
    label = await grant_with(store, [], per_action_cap_cents=500)
    [warning] = await examined(store)
    assert warning.startswith(f"grant {label} (spend.ads for Outbound) has no period budget")


@pytest.mark.anyio
async def test_a_budgeted_or_approve_every_time_grant_is_no_risk(store: Store) -> None:
    await grant_with(store, [BudgetSpec(period="day", max_count=5)])
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="discount.offer", mode="approve")
        )
    assert await examined(store) == []


@pytest.mark.anyio
async def test_doctor_names_operator_tokens_that_never_expire_but_not_ones_that_do(store: Store) -> None:
    async with store.write() as tx:
        forever, _ = await tokens.create_token(tx, OPERATOR_CLI, kind="operator", label="laptop")
        await tokens.create_token(tx, OPERATOR_CLI, kind="operator", expires_in_days=30)
    [warning] = await examined(store)
    assert warning.startswith(f"operator token {forever.token_id} ('laptop') never expires")


@pytest.mark.anyio
async def test_doctor_names_a_failing_webhook_endpoint(store: Store) -> None:
    async with store.write() as tx:
        for failures, removed in ((3, None), (0, None), (9, tx.now_text)):
            await tx.run(
                "INSERT INTO webhook_endpoints (url, events, format, secret, created_at, consecutive_failures, "
                "removed_at) VALUES ('https://example.com/h', 'decision.opened', 'standard', 's', ?, ?, ?)",
                (tx.now_text, failures, removed),
            )
    [warning] = await examined(store)
    assert warning.startswith("webhook NE1 is failing (3 deliveries in a row)")


@pytest.mark.anyio
async def test_doctor_names_a_truncated_tail_missing_triggers_and_the_refusal(
    tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "w.db"
    store = await Store.open(path, clock)
    for n in range(3):
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone="Europe/Berlin")
            await audit.append(tx, OPERATOR_CLI, "test.change", f"X{n}")
    await store.close()
    raw(path, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id = 4")
    store = await Store.open(path, clock)
    try:
        report = await examine(store)  # a sealed store: doctor reads, and writes nothing
        assert report.audit == "chain verifies, the anchor FAILS"
        assert [w.split(":")[0] for w in report.warnings] == [
            "the audit anchor does not hold",
            "append-only triggers are missing or changed",
            "this workspace refuses every change until you run `chief-of-staff audit repair`.",
        ]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_doctor_names_a_broken_chain_and_a_missing_anchor(store: Store) -> None:
    async with store.write() as tx:
        await audit.append(tx, OPERATOR_CLI, "test.change", "X")
    raw(store.path, "DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET actor = 'mallory' WHERE id = 1")
    raw(store.path, db_module.append_only_triggers()["audit_log_no_update"])
    store.anchor.path.unlink()
    warnings = await examined(store)
    assert warnings[0].startswith("the audit chain is broken at row 1: row 1 was altered after it was written")
    assert warnings[1].startswith("the audit log has no anchor")


@pytest.mark.anyio
async def test_repair_restores_reanchors_and_records_what_it_found(tmp_path: Path, clock: FixedClock) -> None:
    path = tmp_path / "w.db"
    store = await Store.open(path, clock)
    for n in range(3):
        async with store.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.change", f"X{n}")
    await store.close()
    raw(path, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id = 3")
    store = await Store.open(path, clock)
    try:
        done = await repair(store, OPERATOR_CLI)
        assert done.restored == ["audit_log_no_delete"] and done.anchored_row == 3
        assert done.found == [
            "anchored row 3 is missing (the log was truncated; it now ends at row 2)",
            "triggers missing or changed: audit_log_no_delete",
        ]
        async with store.read() as tx:
            row = await tx.one("SELECT actor, channel, action, detail FROM audit_log WHERE id = 3")
        assert row is not None and (row["channel"], row["action"]) == ("verified", "audit.repair")
        detail = json.loads(row["detail"])
        assert detail["found"] == done.found and detail["anchor_was"][0] == 3 and detail["head_was"][0] == 2
        assert (await examine(store)).warnings == []
    finally:
        await store.close()


@pytest.mark.anyio
@pytest.mark.parametrize("channel", ["chat", "agency"])
async def test_repair_is_for_the_verified_channel_only(store: Store, channel: Channel) -> None:
    with pytest.raises(OperatorActRefused, match="chief-of-staff audit repair"):
        await repair(store, Actor("someone", channel))

"""doctor: versions and workspace health; a warning when old SQLite meets several writing processes."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import anyio
import pytest
from mcp import Client

from chief_of_staff.cli.main import main
from chief_of_staff.core import processes
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import NOW_ENV, Settings
from chief_of_staff.core.db import Store, migration_files
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

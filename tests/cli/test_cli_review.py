"""The review from a terminal: print the packet, accept proposals by number or from a file, revert."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import pytest

from chief_of_staff.cli.main import main
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import NOW_ENV
from chief_of_staff.core.db import Store
from chief_of_staff.domain import inbox
from tests.cli.test_cli import init_outbound
from tests.conftest import START

SDR = Actor("agency:Outbound/SDR", "agency")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A workspace file path, with the command line's clock frozen at the suite's START."""
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    return str(tmp_path / "cli.db")


def pile_up_backlog(db: str, count: int = 20) -> None:
    """Open tasks the agency added and nobody works: the backlog a role_add proposal answers."""

    async def add() -> None:
        store = await Store.open(Path(db), FixedClock(START))
        try:
            async with store.write() as tx:
                for n in range(count):
                    await inbox.add_task(tx, SDR, title=f"Research account {n}", agency="Outbound")
        finally:
            await store.close()

    anyio.run(add)


def roles(db: str) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT name, status FROM roles").fetchall())
    finally:
        conn.close()


def test_review_prints_the_packet_with_numbered_adjustments(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    pile_up_backlog(db)
    capsys.readouterr()
    assert main(["review", "--db", db, "--peek"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Review for operator") and "## Anomalies" in out and "[role_add]" in out
    (line,) = [line for line in out.splitlines() if line.startswith("  role_add:A1  ")]
    assert json.loads(line.removeprefix("  role_add:A1  "))["tool"] == "set_role"


def test_accepting_a_proposal_by_its_key_records_and_reverts(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    pile_up_backlog(db)
    assert main(["review-record", "--db", db, "--accept", "role_add:A1", "--note", "Backlog needs a seat"]) == 0
    out = capsys.readouterr().out
    assert "CS1: review recorded with 1 adjustment." in out and "review-revert CS1" in out
    assert roles(db)["Backlog"] == "active"
    assert main(["review-revert", "--db", db, "CS1"]) == 0
    assert "CS2: reverted CS1 (1 change undone)." in capsys.readouterr().out
    assert roles(db)["Backlog"] == "retired"


def test_adjustments_from_a_file(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    path = tmp_path / "review.json"
    path.write_text(
        json.dumps(
            {
                "note": "Week 48",
                "adjustments": [
                    {"tool": "update_grant", "arguments": {"grant_id": "GR1", "mode": "approve"}},
                    {
                        "tool": "add_lesson",
                        "arguments": {"agency": "Outbound", "kind": "breaks", "text": "Friday sends bounce"},
                    },
                ],
            }
        )
    )
    assert main(["review-record", "--db", db, "--file", str(path)]) == 0
    assert "CS1: review recorded with 2 adjustments." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--accept", "grant_widen:GR1"], "--accept: grant_widen:GR1 is not proposed now (proposed: none)"),
        (["--accept", ","], "--accept: no proposal named (proposed: none)"),
        (
            ["--accept", "grant_widen:GR1, role_add:A9"],
            "--accept: grant_widen:GR1, role_add:A9 are not proposed now (proposed: none); nothing was changed.",
        ),
        (["--file", "/nonexistent/review.json"], "--file: could not read JSON"),
    ],
)
def test_bad_review_input_is_refused_and_changes_nothing(
    db: str, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    init_outbound(db)
    capsys.readouterr()
    assert main(["review-record", "--db", db, *arguments]) == 2
    assert message in capsys.readouterr().err
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT count(*) FROM change_sets").fetchone()[0] == 0
    finally:
        conn.close()

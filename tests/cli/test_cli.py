"""The command line, the operator's verified channel: init, brief, decisions, approve/deny, audit verify."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import anyio
import pytest

from chief_of_staff import __version__
from chief_of_staff.cli.main import build_parser, main
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import NOW_ENV
from chief_of_staff.core.db import Store
from chief_of_staff.domain.authority import ledger
from tests.conftest import START

SDR = Actor("agency:Outbound/SDR", "agency")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A workspace file path, with the command line's clock frozen at the suite's START."""
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    return str(tmp_path / "cli.db")


def init_outbound(db: str) -> None:
    assert main(["init", "--db", db, "--timezone", "Europe/Berlin", "--blueprint", "outbound"]) == 0


def escalate(db: str, amount_cents: int) -> str:
    """What the agency does through MCP: ask for a capability no grant covers, opening a decision."""

    async def ask() -> str:
        store = await Store.open(Path(db), FixedClock(START))
        try:
            async with store.write() as tx:
                view = await ledger.authorize(
                    tx,
                    SDR,
                    agency="Outbound",
                    role="SDR",
                    capability="spend.ads",
                    amount_cents=amount_cents,
                    target="linkedin.com",
                    task_id=None,
                    idempotency_key=None,
                )
        finally:
            await store.close()
        assert view.answer == "needs_approval" and view.decision_id
        return view.decision_id

    return anyio.run(ask)


def decision_status(db: str, decision_id: str) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT status FROM decisions WHERE id = ?", (int(decision_id[1:]),)).fetchone()[0])
    finally:
        conn.close()


def subcommands() -> dict[str, tuple[str, argparse.ArgumentParser]]:
    parser = build_parser()
    (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help or "" for choice in group._choices_actions}
    return {name: (helps.get(name, ""), sub) for name, sub in group.choices.items()}


def test_every_subcommand_has_help() -> None:
    commands = subcommands()
    assert {"serve", "init", "brief", "decisions", "approve", "deny", "audit", "blueprints", "demo"} <= set(commands)
    for name, (help_text, sub) in commands.items():
        assert help_text.strip(), name
        assert sub.description and sub.description.strip(), name
        assert name in sub.format_help()


def test_every_option_of_every_subcommand_has_help() -> None:
    for name, (_, sub) in subcommands().items():
        for action in sub._actions:
            assert action.help and action.help.strip(), f"{name} {action.dest}"


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"chief-of-staff {__version__}"


def test_init_with_a_blueprint_prints_what_it_created(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    out = capsys.readouterr().out
    assert "Workspace 'My workspace'" in out and "Europe/Berlin" in out
    assert "Applied blueprint 'outbound': agency Outbound." in out
    assert "  + role SDR" in out
    assert "  + goal Book qualified meetings" in out


def test_brief_prints_the_markdown_brief(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    capsys.readouterr()
    assert main(["brief", "--db", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Brief for operator — My workspace, 2026-11-23 (Europe/Berlin)")
    assert "## Decisions waiting for you (0)" in out
    assert "Book qualified meetings" in out
    assert "## Authority used" in out


def test_decisions_lists_an_escalation_and_approve_decides_it(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    decision_id = escalate(db, 5000)
    capsys.readouterr()

    assert main(["decisions", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert decision_id in listed and "escalation" in listed and "50.00" in listed
    assert "Request: capability spend.ads" in listed and "Redeem with: authorize(" in listed

    assert main(["approve", decision_id, "--db", db, "--note", "fine once"]) == 0
    approved = capsys.readouterr().out
    assert approved.startswith(f"{decision_id} (escalation, approved)") and "Operator's note: fine once" in approved
    assert decision_status(db, decision_id) == "approved"

    assert main(["decisions", "--db", db]) == 0
    assert capsys.readouterr().out.strip() == "No pending decisions."


def test_the_command_line_may_approve_above_the_chat_ceiling(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    decision_id = escalate(db, 250_000)
    assert main(["approve", decision_id, "--db", db]) == 0
    assert decision_status(db, decision_id) == "approved"


def test_deny_closes_the_decision(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    decision_id = escalate(db, 700)
    capsys.readouterr()
    assert main(["deny", decision_id, "--db", db]) == 0
    denied = capsys.readouterr().out
    assert denied.startswith(f"{decision_id} (escalation, denied)") and "do not ask again" in denied
    assert decision_status(db, decision_id) == "denied"


def test_deciding_twice_exits_2_and_changes_nothing(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    decision_id = escalate(db, 700)
    assert main(["deny", decision_id, "--db", db]) == 0
    capsys.readouterr()
    assert main(["approve", decision_id, "--db", db]) == 2
    assert "already denied" in capsys.readouterr().err
    assert decision_status(db, decision_id) == "denied"


def test_approving_an_unknown_decision_exits_2_with_a_clear_message(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    init_outbound(db)
    capsys.readouterr()
    assert main(["approve", "D99", "--db", db]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert "D99" in captured.err
    assert "Traceback" not in captured.err


def test_audit_verify_passes_on_an_intact_chain(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    decision_id = escalate(db, 700)
    assert main(["approve", decision_id, "--db", db]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--db", db]) == 0
    assert capsys.readouterr().out.startswith("Audit chain verifies: ")


def test_audit_verify_names_a_tampered_row(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    conn = sqlite3.connect(db)
    try:
        conn.execute("DROP TRIGGER audit_log_no_update")  # someone with the file can; the chain still tells
        conn.execute("UPDATE audit_log SET subject = 'forged' WHERE id = 3")
        conn.commit()
    finally:
        conn.close()
    capsys.readouterr()
    assert main(["audit", "verify", "--db", db]) == 1
    assert "BROKEN at row 3" in capsys.readouterr().err


def test_blueprints_lists_the_shipped_blueprints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blueprints"]) == 0
    out = capsys.readouterr().out
    assert "outbound" in out and "inbox_triage" in out

"""doctor's warnings and the audit repair, as the operator meets them in a terminal."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from chief_of_staff.core.config import NOW_ENV
from tests.cli.test_cli import init_outbound
from tests.cli.test_cli_workspace import run
from tests.conftest import START


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    path = str(tmp_path / "cli.db")
    init_outbound(path)
    return path


def test_doctor_names_an_unbounded_grant_a_never_expiring_operator_token_and_a_readable_file(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "grant", "--db", db, "--agency", "Outbound", "--capability", "spend.ads", "--cap-cents", "5000")
    run(capsys, "token", "create", "--operator", "--label", "laptop", "--db", db)
    os.chmod(db, 0o644)
    out, _ = run(capsys, "doctor", "--db", db)
    warnings = [line for line in out.splitlines() if line.startswith("WARNING: ")]
    assert any(w.startswith("WARNING: grant GR4 (spend.ads for Outbound) has no period budget") for w in warnings)
    assert any(w.startswith("WARNING: operator token TK1 ('laptop') never expires") for w in warnings)
    if os.name != "nt":
        assert any("can read the workspace's files: cli.db (0644)" in w for w in warnings)
    assert len(warnings) == 3 if os.name != "nt" else 2


def test_a_truncated_log_refuses_changes_until_audit_repair(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute("DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)")
    conn.commit()
    conn.close()
    _, err = run(capsys, "brief", "--db", db, code=2)  # the brief marks what the operator has seen: a write
    assert "This workspace refuses changes: the audit log no longer holds what its anchor vouches for" in err
    assert "run `chief-of-staff audit repair`" in err
    _, err = run(capsys, "audit", "verify", "--db", db, code=1)  # reads still work
    assert "Audit anchor FAILS: anchored row " in err
    out, _ = run(capsys, "audit", "repair", "--db", db)
    assert out.startswith("Found: anchored row ")
    assert "Recreated the append-only triggers audit_log_no_delete." in out
    run(capsys, "brief", "--db", db)
    out, _ = run(capsys, "audit", "verify", "--db", db)
    assert "matches" in out

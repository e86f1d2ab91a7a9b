"""The workspace's settings as the operator changes them in a terminal: show, set, and init on an existing one."""

from __future__ import annotations

from pathlib import Path

import pytest

from chief_of_staff.cli.main import main
from chief_of_staff.core.config import NOW_ENV
from tests.cli.test_cli import init_outbound
from tests.conftest import START


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    path = str(tmp_path / "cli.db")
    init_outbound(path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[str, str]:
    capsys.readouterr()
    assert main(list(argv)) == code
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_workspace_show_prints_the_settings(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "workspace", "show", "--db", db)
    assert "time zone       Europe/Berlin\n" in out
    assert "chat allowance  100.00 USD per 7 days" in out


def test_workspace_set_changes_settings_and_says_periods_follow_a_new_zone(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = run(capsys, "workspace", "set", "--db", db, "--chat-window-days", "14", "--timezone", "Asia/Tokyo")
    assert "timezone: Europe/Berlin -> Asia/Tokyo\n" in out and "chat window days: 7 -> 14\n" in out
    assert "Budget periods (day, week, month) follow Asia/Tokyo from now on" in out
    out, _ = run(capsys, "workspace", "show", "--db", db)
    assert "chat allowance  100.00 USD per 14 days" in out


def test_workspace_set_refuses_a_bad_zone(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, err = run(capsys, "workspace", "set", "--db", db, "--timezone", "Mars/Olympus", code=2)
    assert "not an IANA time zone" in err


def test_init_on_an_existing_workspace_names_the_flags_it_ignored(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(capsys, "init", "--db", db, "--name", "Other", "--currency", "EUR")
    assert (
        "It already existed, so init ignored --name 'Other' (it stays 'My workspace'), --currency 'EUR' "
        "(it stays 'USD'). Change settings with `chief-of-staff workspace set`." in out
    )
    out, _ = run(capsys, "init", "--db", db)
    assert "ignored" not in out

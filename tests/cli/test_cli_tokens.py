"""`token create | list | revoke` and `serve --http`'s refusals, on the command line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chief_of_staff.cli.main import main
from chief_of_staff.core.config import NOW_ENV
from chief_of_staff.domain import tokens
from tests.conftest import START, db_rows


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    path = str(tmp_path / "cli.db")
    assert main(["init", "--db", path, "--timezone", "Europe/Berlin", "--blueprint", "outbound"]) == 0
    return path


def test_a_created_token_is_printed_once_and_stored_only_as_its_digest(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["token", "create", "--operator", "--db", db, "--label", "laptop"]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith(tokens.TOKEN_PREFIX) and len(secret) > 40
    assert "TK1" in err and "shown once" in err
    stored = db_rows(db, "SELECT kind, digest, label FROM access_tokens")
    assert stored == [("operator", tokens.digest(secret), "laptop")]
    assert secret not in Path(db).read_bytes().decode("latin-1")
    assert db_rows(db, "SELECT action, subject, channel FROM audit_log WHERE action LIKE 'token.%'") == [
        ("token.create", "TK1", "verified")
    ]


def test_an_agency_token_names_its_agency_and_role_and_a_wrong_role_writes_nothing(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "--agency", "outbound", "--role", "sdr", "--expires-in-days", "7", "--db", db]) == 0
    assert main(["token", "create", "--agency", "Outbound", "--role", "Closer", "--db", db]) == 2
    assert "Closer" in capsys.readouterr().err
    assert main(["token", "create", "--agency", "Outbound", "--expires-in-days", "0", "--db", db]) == 2
    assert db_rows(db, "SELECT count(*) FROM access_tokens") == [(1,)]
    capsys.readouterr()
    assert main(["token", "list", "--db", db]) == 0
    listed = capsys.readouterr().out
    assert "TK1" in listed and "agency Outbound/SDR" in listed and "expires 2026-11-30" in listed


def test_revoking_takes_a_token_out_of_the_list_and_twice_is_an_error(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "--operator", "--db", db]) == 0
    assert main(["token", "revoke", "TK1", "--db", db]) == 0
    assert main(["token", "revoke", "TK1", "--db", db]) == 2
    assert "already revoked" in capsys.readouterr().err
    assert main(["token", "revoke", "GR1", "--db", db]) == 2
    capsys.readouterr()
    assert main(["token", "list", "--db", db]) == 0
    assert "TK1" not in capsys.readouterr().out
    assert main(["token", "list", "--all", "--db", db]) == 0
    assert "revoked" in capsys.readouterr().out


def test_serve_refuses_conflicting_or_impossible_options(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workspace", db]) == 2
    assert "--http" in capsys.readouterr().err
    assert main(["serve", "--http", "--db", db, "--workspace", db]) == 2
    assert main(["serve", "--http", "--workspace", f"Bad Name={db}"]) == 2
    assert main(["serve", "--http", "--workspace", f"a={db}", "--workspace", f"a={db}"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["serve", "--http", "--db", db, "--port", str(taken.getsockname()[1])]) == 2
    assert "Cannot listen" in capsys.readouterr().err

"""grant, revoke and grants on the command line: the operator's verified channel for authority."""

from __future__ import annotations

from pathlib import Path

import pytest

from chief_of_staff.cli.main import main
from chief_of_staff.core.config import NOW_ENV
from tests.cli.test_cli import init_outbound, subcommands
from tests.conftest import START, db_rows


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    return str(tmp_path / "cli.db")


def last_audit(db: str) -> tuple[object, ...]:
    return db_rows(db, "SELECT action, subject, actor, channel FROM audit_log ORDER BY id DESC LIMIT 1")[0]


def test_the_authority_commands_are_listed_with_help() -> None:
    commands = subcommands()
    assert {"grant", "revoke", "grants", "doctor"} <= set(commands)
    grant_help = commands["grant"][1].format_help()
    for option in (
        "--cap-cents",
        "--day-count",
        "--week-cents",
        "--month-cents",
        "--allow",
        "--deny",
        "--expires-on",
        "--goal",
        "--rationale",
    ):
        assert option in grant_help


def test_grant_creates_a_verified_grant_and_grants_prints_the_letter(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    init_outbound(db)
    grants_before = int(str(db_rows(db, "SELECT count(*) FROM grants")[0][0]))
    capsys.readouterr()
    assert (
        main(
            [
                "grant",
                "--db",
                db,
                "--agency",
                "Outbound",
                "--role",
                "SDR",
                "--capability",
                "spend.ads",
                "--mode",
                "notify",
                "--cap-cents",
                "500000",
                "--day-count",
                "3",
                "--day-cents",
                "1000000",
                "--allow",
                "linkedin.com",
                "google.com",
                "--deny",
                "*.gov",
                "--expires-on",
                "2026-12-31",
                "--rationale",
                "Q4 push",
            ]
        )
        == 0
    )
    grant_id = f"GR{grants_before + 1}"
    assert capsys.readouterr().out == (
        f"{grant_id} granted: Outbound/SDR may spend.ads (notify). `chief-of-staff grants` prints every grant.\n"
    )
    assert last_audit(db) == ("grant.create", grant_id, "operator", "verified")  # no chat ceiling here
    assert main(["grants", "--db", db]) == 0
    letter = capsys.readouterr().out
    assert letter.startswith("# Delegation of authority")
    assert (
        f"**{grant_id}**: SDR may `spend.ads` on its own, telling you; up to 5,000.00 per action, "
        "at most 3 times and 10,000.00 a day; only for `linkedin.com`, `google.com`; never for `*.gov`; "
        'until the end of 2026-12-31; because "Q4 push".'
    ) in letter


def test_revoke_withdraws_the_grant_and_records_why(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    capsys.readouterr()
    assert main(["grant", "--db", db, "--agency", "Outbound", "--capability", "spend.ads", "--cap-cents", "100"]) == 0
    grant_id = capsys.readouterr().out.split()[0]
    assert main(["revoke", grant_id, "--db", db, "--reason", "campaign over"]) == 0
    assert capsys.readouterr().out.startswith(f"{grant_id} revoked: Outbound may no longer spend.ads under it. ")
    assert last_audit(db) == ("grant.revoke", grant_id, "operator", "verified")
    assert db_rows(db, f"SELECT status FROM grants WHERE id = {grant_id[2:]}") == [("revoked",)]
    assert main(["grants", "--db", db]) == 0
    letter = capsys.readouterr().out
    assert f"**{grant_id}**:" not in letter  # no longer among the grants in force
    assert f"**{grant_id}** (revoked): Outbound `spend.ads` comes to you as a decision each time" in letter


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--capability", "spend*"], "--capability: a capability is a lower-case dotted action kind"),
        (["--capability", "spend.*.ads"], "--capability: a wildcard grant ends in .*"),
        (["--capability", "spend.ads", "--day-cents", "-5"], "--day-cents: Input should be greater than or equal to 0"),
        (["--capability", "spend.ads", "--cap-cents", "-1"], "--cap-cents: Input should be greater than or equal to 0"),
        (["--capability", "spend.ads", "--expires-on", "31.12.2026"], "--expires-on: send a date as YYYY-MM-DD"),
        (["--capability", "spend.ads", "--deny", "x" * 201], "--deny: String should have at most 200 characters"),
        (["--capability", "spend.ads", "--expires-on", "2026-01-01"], "expires_on: 2026-01-01 is already past"),
        (["--capability", "spend.ads", "--role", "Nobody"], "role"),
    ],
)
def test_a_refused_grant_exits_2_names_the_option_and_writes_nothing(
    db: str, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    init_outbound(db)
    before = db_rows(db, "SELECT (SELECT count(*) FROM grants), (SELECT count(*) FROM audit_log)")
    capsys.readouterr()
    assert main(["grant", "--db", db, "--agency", "Outbound", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert db_rows(db, "SELECT (SELECT count(*) FROM grants), (SELECT count(*) FROM audit_log)") == before


def test_revoking_an_unknown_grant_exits_2(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    init_outbound(db)
    capsys.readouterr()
    assert main(["revoke", "GR99", "--db", db]) == 2
    assert "there is no grant GR99" in capsys.readouterr().err

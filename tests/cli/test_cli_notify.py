"""`notify add | list | test | remove` on the command line, against a real HTTP receiver on loopback."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from chief_of_staff.cli import notify as notify_commands
from chief_of_staff.cli.main import main
from chief_of_staff.core.config import NOW_ENV
from chief_of_staff.core.errors import ChiefOfStaffError
from tests.conftest import db_rows


def build_parser() -> argparse.ArgumentParser:
    """The command line's `add(name, handler, help)` contract, with only the notify commands on it."""
    parser = argparse.ArgumentParser(prog="chief-of-staff")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument("--db", help="workspace database file")
        return sub

    notify_commands.register(add)
    return parser


def notify(*argv: str) -> int:
    args = build_parser().parse_args(["notify", *argv])
    try:
        return int(args.handler(args))
    except ChiefOfStaffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


class Received:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 204


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.requests.append((self.path, dict(self.headers.items()), body))
            self.send_response(received.status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # The standardwebhooks package checks signatures against the real time, so the workspace reads it too.
    monkeypatch.setenv(NOW_ENV, datetime.now(UTC).isoformat())
    path = str(tmp_path / "cli.db")
    assert main(["init", "--db", path, "--timezone", "Europe/Berlin"]) == 0
    return path


def test_add_prints_the_secret_alone_on_stdout_and_explains_on_stderr(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert notify("add", "https://hooks.example.com/cos", "--events", "grant.changed,decision.opened", "--db", db) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("whsec_") and "\n" not in secret
    assert "NE1: sends decision.opened, grant.changed" in err and "shown once" in err
    assert secret not in err
    assert db_rows(db, "SELECT action, subject, channel FROM audit_log WHERE action LIKE 'webhook.%'") == [
        ("webhook.add", "NE1", "verified")
    ]


def test_test_sends_a_signed_message_now_and_list_shows_the_health(
    db: str, receiver: tuple[str, Received], capsys: pytest.CaptureFixture[str]
) -> None:
    url, received = receiver
    assert notify("add", url, "--events", "decision.opened", "--db", db) == 0
    secret = capsys.readouterr().out.strip()
    assert notify("test", "NE1", "--db", db) == 0
    assert "Delivered msg_" in capsys.readouterr().out
    [(path, headers, body)] = received.requests
    assert path == "/hook"
    assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"
    assert notify("list", "--db", db) == 0
    listed = capsys.readouterr().out
    assert "NE1" in listed and "active" in listed and "0 pending" in listed and "1 delivered, 0 failed" in listed
    assert secret not in listed


def test_a_failed_test_says_why_and_exits_1(
    db: str, receiver: tuple[str, Received], capsys: pytest.CaptureFixture[str]
) -> None:
    url, received = receiver
    received.status = 404
    assert notify("add", url, "--events", "decision.opened", "--format", "slack", "--db", db) == 0
    assert notify("test", "NE1", "--db", db) == 1
    assert "Not delivered (HTTP 404): HTTP 404" in capsys.readouterr().out
    assert notify("list", "--db", db) == 0
    assert "1 failed in 7 days" in capsys.readouterr().out


def test_remove_stops_sending_and_test_then_refuses(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert notify("add", "https://hooks.example.com/cos", "--events", "decision.opened", "--db", db) == 0
    assert notify("remove", "NE1", "--db", db) == 0
    assert "NE1 removed" in capsys.readouterr().out
    assert notify("test", "NE1", "--db", db) == 2
    assert "NE1 is removed" in capsys.readouterr().err
    assert notify("list", "--db", db) == 0
    assert "No webhook endpoints" in capsys.readouterr().out
    assert notify("list", "--all", "--db", db) == 0
    assert "removed" in capsys.readouterr().out


def test_refusals_exit_2_and_write_nothing(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert notify("add", "http://hooks.example.com/x", "--events", "decision.opened", "--db", db) == 2
    assert "plain http" in capsys.readouterr().err
    assert notify("add", "https://hooks.example.com/x", "--events", "decision.made", "--db", db) == 2
    assert notify("add", "https://hooks.example.com/x", "--events", ",", "--db", db) == 2
    assert "--events" in capsys.readouterr().err
    assert notify("remove", "NE4", "--db", db) == 2
    assert db_rows(db, "SELECT count(*) FROM webhook_endpoints") == [(0,)]
    assert db_rows(db, "SELECT count(*) FROM audit_log WHERE action LIKE 'webhook.%'") == [(0,)]


def test_daily_at_sets_the_local_time_of_the_daily_brief(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert notify("daily-at", "07:30", "--db", db) == 0
    assert "07:30 Europe/Berlin" in capsys.readouterr().out
    assert notify("daily-at", "7.30pm", "--db", db) == 2
    assert "07:30" in capsys.readouterr().err
    assert db_rows(db, "SELECT daily_brief_at FROM workspace") == [("07:30",)]


def test_every_notify_command_and_option_has_help() -> None:
    parser = build_parser()
    [top] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    notify_parser = top.choices["notify"]
    [nested] = [a for a in notify_parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in nested._choices_actions}
    assert set(nested.choices) == {"add", "list", "test", "remove", "rotate-secret", "daily-at"}
    for name, sub in nested.choices.items():
        assert helps[name], name
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help and action.help.strip(), f"notify {name} {action.dest}"


def test_rotate_secret_prints_a_new_secret_once_and_the_old_one_stops_signing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chief_of_staff.cli import main

    monkeypatch.setenv("CHIEF_OF_STAFF_NOW", "2026-11-23T08:00:00Z")
    db = str(tmp_path / "r.db")
    assert main.main(["init", "--db", db, "--timezone", "UTC"]) == 0
    assert main.main(["notify", "add", "https://hooks.example.com/x", "--events", "decision.opened", "--db", db]) == 0
    capsys.readouterr()
    first = stored_secret(db)
    assert main.main(["notify", "rotate-secret", "NE1", "--db", db]) == 0
    out, err = capsys.readouterr()
    second = stored_secret(db)
    assert out.strip() == second != first and "shown once" in err
    assert main.main(["notify", "rotate-secret", "NE9", "--db", db]) == 2


def stored_secret(db: str) -> str:
    return str(db_rows(db, "SELECT secret FROM webhook_endpoints")[0][0])

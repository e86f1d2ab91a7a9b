"""`chief-of-staff install claude-desktop`: a careful merge into a config full of other servers."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chief_of_staff import __version__
from chief_of_staff.cli import install, main
from chief_of_staff.core.config import DB_ENV, NOW_ENV, Settings
from chief_of_staff.core.errors import InvalidInput
from tests.conftest import START

OTHER_SERVERS: dict[str, Any] = {
    "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"]},
    "weather": {"command": "/usr/local/bin/weather-mcp", "env": {"API_KEY": "k-123"}},
}


run = main.main


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, START.isoformat())


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A Desktop config the operator has filled by hand: other servers, and keys before and after mcpServers."""
    path = tmp_path / "Claude" / "claude_desktop_config.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {"globalShortcut": "Ctrl+Space", "mcpServers": OTHER_SERVERS, "preferences": {"quickEntry": True}}, indent=4
        ),
        "utf-8",
    )
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "work" / "workspace.db"


def install_into(config: Path, db: Path, *more: str) -> int:
    return run(["install", "claude-desktop", "--config", str(config), "--db", str(db), *more])


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def backups(config: Path) -> list[Path]:
    return sorted(config.parent.glob(config.name + ".bak-*"))


def test_install_adds_the_entry_and_keeps_every_other_server_and_key_in_order(config: Path, db: Path) -> None:
    assert install_into(config, db) == 0

    written = load(config)
    assert list(written) == ["globalShortcut", "mcpServers", "preferences"]
    assert written["globalShortcut"] == "Ctrl+Space" and written["preferences"] == {"quickEntry": True}
    assert list(written["mcpServers"]) == ["filesystem", "weather", "chief-of-staff"]
    assert {k: written["mcpServers"][k] for k in OTHER_SERVERS} == OTHER_SERVERS


def test_the_entry_runs_this_interpreter_on_the_absolute_workspace_path(config: Path, db: Path) -> None:
    install_into(config, db)

    entry = load(config)["mcpServers"]["chief-of-staff"]
    assert entry == {
        "command": sys.executable,
        "args": ["-m", "chief_of_staff", "serve"],
        "env": {DB_ENV: str(db.resolve())},
    }
    assert Path(entry["command"]).is_absolute() and Path(entry["env"][DB_ENV]).is_absolute()


def test_the_workspace_defaults_to_the_one_the_other_commands_use(config: Path) -> None:
    assert run(["install", "claude-desktop", "--config", str(config)]) == 0

    entry = load(config)["mcpServers"]["chief-of-staff"]
    assert entry["env"][DB_ENV] == str(Settings.load(None).db_path)


@pytest.mark.slow
def test_the_entry_starts_this_installation(config: Path, db: Path) -> None:
    install_into(config, db)
    entry = load(config)["mcpServers"]["chief-of-staff"]

    # The same command Desktop runs, asked for its version instead of serving stdio.
    done = subprocess.run(
        [entry["command"], *entry["args"][:2], "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == f"chief-of-staff {__version__}"


def test_install_backs_the_file_up_before_writing(config: Path, db: Path) -> None:
    before = config.read_bytes()

    install_into(config, db)

    (backup,) = backups(config)
    assert backup.name == "claude_desktop_config.json.bak-20261123T080000Z"
    assert backup.read_bytes() == before


def test_a_later_backup_never_overwrites_an_earlier_one(config: Path, db: Path, tmp_path: Path) -> None:
    original = config.read_bytes()
    install_into(config, db)
    after_first = config.read_bytes()

    install_into(config, tmp_path / "other.db")  # same frozen second, so the same timestamp

    first, second = backups(config)
    assert (first.read_bytes(), second.read_bytes()) == (original, after_first)


def test_install_writes_through_a_temporary_file_and_leaves_none_behind(config: Path, db: Path) -> None:
    install_into(config, db)

    assert sorted(p.name for p in config.parent.iterdir()) == sorted([config.name, backups(config)[0].name])
    assert config.read_text("utf-8").endswith("}\n")


def test_install_creates_a_missing_file_and_its_folder(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "fresh" / "Claude" / "claude_desktop_config.json"

    assert install_into(path, db) == 0

    assert list(load(path)["mcpServers"]) == ["chief-of-staff"]
    assert backups(path) == []


def test_a_file_that_is_not_json_is_refused_and_left_alone(
    config: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text('{"mcpServers": {"weather": {},}', "utf-8")
    before = config.read_bytes()

    assert install_into(config, db) == 2

    assert "is not valid JSON" in capsys.readouterr().err
    assert config.read_bytes() == before and backups(config) == []


@pytest.mark.parametrize("servers", [[], "none", 3])
def test_mcp_servers_that_is_not_an_object_is_refused(
    config: Path, db: Path, servers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(json.dumps({"mcpServers": servers}), "utf-8")
    before = config.read_bytes()

    assert install_into(config, db) == 2

    err = capsys.readouterr().err
    assert err.startswith("error: ") and '"mcpServers" is a JSON' in err
    assert config.read_bytes() == before and backups(config) == []


def test_a_top_level_that_is_not_an_object_is_refused(config: Path, db: Path) -> None:
    config.write_text("[]", "utf-8")

    assert install_into(config, db) == 2
    assert config.read_text("utf-8") == "[]"


def test_an_identical_entry_is_already_installed_and_nothing_is_written(
    config: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_into(config, db)
    installed = config.read_bytes()
    capsys.readouterr()

    assert install_into(config, db) == 0

    out = capsys.readouterr().out
    assert "already installed" in out and "Restart" not in out
    assert config.read_bytes() == installed and len(backups(config)) == 1


def test_a_different_entry_of_the_same_name_is_replaced_in_place_and_both_are_shown(
    config: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = {"command": "/Users/me/.local/bin/uv", "args": ["run", "chief-of-staff", "serve"]}
    config.write_text(json.dumps({"mcpServers": {"chief-of-staff": stale, **OTHER_SERVERS}}), "utf-8")

    assert install_into(config, db) == 0

    out = capsys.readouterr().out
    assert "Replaced 'chief-of-staff'" in out and "Restart Claude Desktop" in out
    assert f"old: {json.dumps(stale)}" in out and json.dumps(sys.executable) in out
    written = load(config)["mcpServers"]
    assert list(written) == ["chief-of-staff", "filesystem", "weather"]
    assert written["chief-of-staff"]["command"] == sys.executable


def test_print_shows_the_entry_and_the_path_and_writes_nothing(
    config: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = config.read_bytes()

    assert install_into(config, db, "--print") == 0

    out = capsys.readouterr().out
    assert str(config) in out and '"chief-of-staff": {' in out and str(db.resolve()) in out.replace("\\\\", "\\")
    assert "nothing was written" in out and "Restart" not in out
    assert config.read_bytes() == before and backups(config) == []


def test_print_creates_no_file(tmp_path: Path, db: Path) -> None:
    path = tmp_path / "absent" / "claude_desktop_config.json"

    assert install_into(path, db, "--print") == 0

    assert not path.parent.exists()


def test_install_says_what_it_did_and_to_restart_desktop(
    config: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_into(config, db, "--name", "cos-work")

    out = capsys.readouterr().out
    assert f"Added 'cos-work' in {config}." in out
    assert "Backup of the previous file:" in out and out.rstrip().endswith("Restart Claude Desktop to load the server.")
    assert "cos-work" in load(config)["mcpServers"]


def test_a_byte_order_mark_written_by_a_windows_editor_is_accepted(config: Path, db: Path) -> None:
    config.write_bytes(b"\xef\xbb\xbf" + json.dumps({"mcpServers": OTHER_SERVERS}).encode())

    assert install_into(config, db) == 0
    assert list(load(config)["mcpServers"]) == ["filesystem", "weather", "chief-of-staff"]


def test_a_blank_name_is_refused(config: Path, db: Path) -> None:
    before = config.read_bytes()

    assert install_into(config, db, "--name", " ") == 2
    assert config.read_bytes() == before


def test_merge_entry_returns_a_new_config_and_names_the_change() -> None:
    original = {"mcpServers": dict(OTHER_SERVERS), "theme": "dark"}
    entry = {"command": "/venv/bin/python", "args": ["-m", "chief_of_staff", "serve"]}

    added, change = install.merge_entry(original, "cos", entry)
    again, same = install.merge_entry(added, "cos", entry)
    moved, replaced = install.merge_entry(added, "cos", {**entry, "command": "/other/python"})

    assert original == {"mcpServers": OTHER_SERVERS, "theme": "dark"}  # not mutated
    assert (change.kind, same.kind, replaced.kind) == ("added", "unchanged", "replaced")
    assert again == added and replaced.old == entry
    assert list(moved["mcpServers"]) == ["filesystem", "weather", "cos"]


def test_merge_entry_adds_mcp_servers_after_the_existing_keys() -> None:
    merged, change = install.merge_entry({"theme": "dark"}, "cos", {"command": "x"})

    assert list(merged) == ["theme", "mcpServers"] and change.kind == "added"


def test_merge_entry_refuses_mcp_servers_that_is_not_an_object() -> None:
    with pytest.raises(InvalidInput, match="mcpServers"):
        install.merge_entry({"mcpServers": ["a"]}, "cos", {"command": "x"})


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("darwin", {}, "home/Library/Application Support/Claude/claude_desktop_config.json"),
        (
            "win32",
            {"APPDATA": "C:/Users/me/AppData/Roaming"},
            "C:/Users/me/AppData/Roaming/Claude/claude_desktop_config.json",
        ),
        ("win32", {}, "home/AppData/Roaming/Claude/claude_desktop_config.json"),
        ("linux", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/Claude/claude_desktop_config.json"),
        ("linux", {}, "home/.config/Claude/claude_desktop_config.json"),
    ],
)
def test_the_config_path_follows_the_platform(platform: str, environ: dict[str, str], expected: str) -> None:
    assert install.desktop_config_path(platform, environ, home=Path("home")) == Path(expected)


def test_the_command_has_help_for_every_option() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers()
    made: list[argparse.ArgumentParser] = []

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        assert help_text
        made.append(commands.add_parser(name, help=help_text))
        return made[-1]

    install.register(add)

    (sub,) = made
    assert all(action.help for action in sub._actions)

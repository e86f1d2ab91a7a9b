"""`chief-of-staff install claude-desktop`: add this installation to Claude Desktop's config.

Claude Desktop reads its MCP servers from one JSON file that the operator may have filled with
other servers and settings by hand. So the install is a careful merge: every other server and
top-level key is kept as it was (order included), the file is backed up before it is touched,
and the new file replaces the old one atomically, so a crash can never leave half a config.

The entry runs *this* installation: the absolute path of the running interpreter and the
absolute workspace path, because Desktop starts servers without the operator's shell PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from chief_of_staff.cli.support import Add
from chief_of_staff.core.config import DB_ENV, Settings
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.files import write_atomically

DEFAULT_NAME = "chief-of-staff"
TARGETS = ("claude-desktop",)
CONFIG_FILE = "claude_desktop_config.json"
# Desktop ships for macOS and Windows only; other platforms get the path unofficial builds read.
OFFICIAL_PLATFORMS = ("darwin", "win32")

Entry = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """What merging the entry does to the config: added, replaced (with the old entry) or unchanged."""

    kind: Literal["added", "replaced", "unchanged"]
    name: str
    new: Entry
    old: Entry | None = None


@dataclass(frozen=True)
class Installed:
    """The outcome of one install: the change, the file, and the backup taken (if anything was written)."""

    change: Change
    config_path: Path
    written: bool
    backup: Path | None = None


def desktop_config_path(
    platform: str = sys.platform, environ: Mapping[str, str] | None = None, home: Path | None = None
) -> Path:
    """Where Claude Desktop keeps its config on this platform (macOS, Windows; Linux is unofficial)."""
    env = os.environ if environ is None else environ
    home = home or Path.home()
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Claude" / CONFIG_FILE
    if platform == "win32":
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "Claude" / CONFIG_FILE
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "Claude" / CONFIG_FILE


def server_entry(db_path: Path, python: str | None = None) -> Entry:
    """The mcpServers entry that runs this installation's server on the given workspace file."""
    # abspath, not resolve: a virtual environment's python is a symlink, and following it would
    # start the base interpreter, which does not have this package installed.
    interpreter = os.path.abspath(python or sys.executable)
    return {
        "command": interpreter,
        "args": ["-m", "chief_of_staff", "serve"],
        "env": {DB_ENV: str(db_path)},
    }


def read_config(path: Path) -> dict[str, Any]:
    """The config as a dict ({} when the file is missing or blank); refuses a file it cannot merge into."""
    try:
        text = path.read_text("utf-8-sig")  # -sig: Windows editors may prepend a byte-order mark
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: could not read it ({exc}); nothing was written.") from None
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(
            f"{path} is not valid JSON ({exc}); nothing was written. Fix or move the file "
            "aside and run the command again, or pass --config PATH."
        ) from None
    if not isinstance(config, dict):
        raise InvalidInput(
            f"{path}: the top level is a JSON {type(config).__name__}, not an object; "
            "nothing was written. Fix the file, or pass --config PATH."
        )
    servers = config.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise InvalidInput(
            f'{path}: "mcpServers" is a JSON {type(servers).__name__}, not an object; '
            "nothing was written. Make it an object of named servers, then run the command again."
        )
    return config


def merge_entry(config: Mapping[str, Any], name: str, entry: Entry) -> tuple[dict[str, Any], Change]:
    """A new config with `entry` under mcpServers[name]; every other key and server stays, in order."""
    servers = config.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise InvalidInput('"mcpServers" must be a JSON object of named servers.')
    old = servers.get(name)
    if old == entry:
        return dict(config), Change("unchanged", name, entry, old)
    # Assigning to an existing key keeps its position; a new key goes last.
    merged_servers = {**servers, name: entry}
    merged = {**config, "mcpServers": merged_servers}
    return merged, Change("added" if old is None else "replaced", name, entry, old)


def backup_file(path: Path, now: datetime) -> Path:
    """Copy `path` next to itself as <name>.bak-<UTC timestamp>; an earlier backup is never overwritten."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    data = path.read_bytes()
    for attempt in range(1000):
        candidate = path.with_name(f"{path.name}.bak-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            with candidate.open("xb") as out:  # "x": fail rather than overwrite
                out.write(data)
        except FileExistsError:
            continue
        return candidate
    raise InvalidInput(f"{path}: too many backups named {path.name}.bak-{stamp}*; move some aside.")


def _render_config(config: Mapping[str, Any]) -> str:
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


def install_entry(config_path: Path, name: str, entry: Entry, *, now: datetime, dry_run: bool = False) -> Installed:
    """Merge `entry` into the config file at `config_path`: back up, then write atomically (unless dry_run)."""
    if not name.strip():
        raise InvalidInput("--name: give the server a name, e.g. chief-of-staff.")
    config = read_config(config_path)
    merged, change = merge_entry(config, name, entry)
    if dry_run or change.kind == "unchanged":
        return Installed(change, config_path, written=False)
    backup = backup_file(config_path, now) if config_path.exists() else None
    write_atomically(config_path, _render_config(merged))
    return Installed(change, config_path, written=True, backup=backup)


def _entry_json(name: str, entry: Entry) -> str:
    return json.dumps({"mcpServers": {name: entry}}, indent=2, ensure_ascii=False)


def _report(result: Installed, *, dry_run: bool) -> list[str]:
    change, path = result.change, result.config_path
    if change.kind == "unchanged":
        return [f"{change.name!r} is already installed in {path}, exactly like this; nothing was written."]
    if dry_run:
        verb = "add" if change.kind == "added" else "replace"
        lines = [
            f"Would {verb} {change.name!r} in {path} (--print: nothing was written):",
            _entry_json(change.name, change.new),
        ]
    else:
        lines = [f"{'Added' if change.kind == 'added' else 'Replaced'} {change.name!r} in {path}."]
    if change.kind == "replaced":
        lines += [
            f"It differed from the entry already there; old and new {change.name!r}:",
            "  old: " + json.dumps(change.old, ensure_ascii=False),
            "  new: " + json.dumps(change.new, ensure_ascii=False),
        ]
    if result.backup is not None:
        lines.append(f"Backup of the previous file: {result.backup}")
    return lines


def cmd_install(args: argparse.Namespace) -> int:
    """Install into the client named by args.target; prints what it did, or with --print what it would do."""
    settings = Settings.load(args.db)
    config_path = Path(args.config).expanduser().absolute() if args.config else desktop_config_path()
    entry = server_entry(settings.db_path)
    result = install_entry(config_path, args.name, entry, now=settings.clock.now(), dry_run=args.print_only)
    lines = _report(result, dry_run=args.print_only)
    if not args.config and sys.platform not in OFFICIAL_PLATFORMS:
        lines.append(
            "Note: Claude Desktop ships for macOS and Windows only; on this platform this is the "
            "path unofficial builds read. Pass --config PATH for another file."
        )
    if not settings.db_path.exists():
        lines.append(
            f"The workspace {settings.db_path} does not exist yet; the server creates it on first start, "
            "or create it now: chief-of-staff init --blueprint outbound"
        )
    if result.written:
        lines.append("Restart Claude Desktop to load the server.")
    print("\n".join(lines))
    return 0


def register(add: Add) -> None:
    """Add the `install` command through the CLI's helper (which already gives it --db)."""
    install = add(
        "install",
        cmd_install,
        "Add this installation to Claude Desktop's config, keeping every other server (backs the file up).",
    )
    install.add_argument("target", choices=TARGETS, help="the client to install into: claude-desktop")
    install.add_argument(
        "--config", metavar="PATH", help="the client's config file (default: Claude Desktop's file on this platform)"
    )
    install.add_argument(
        "--name", default=DEFAULT_NAME, help=f"the server's name in the config (default {DEFAULT_NAME})"
    )
    install.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="show the entry and the file it would go into; write nothing",
    )

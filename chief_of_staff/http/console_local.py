"""What the console leaves on, and trusts from, the operator's own machine.

- **The announcement** (`<db>.console.json`) is written 0600 and read back only when it is still a
  regular file of this user with no group or other bits, opened without following a symlink: anyone
  else who can write the workspace's folder could otherwise name a listener of theirs, and be handed
  a fresh login link.
- **The listener** it names must be held by the process it names (`holds_listener`), so a stale or
  forged address never receives a link.
- **The login link** is handed to a browser through a 0600 page in a fresh 0700 folder that redirects
  to it (`handoff_page`), as Jupyter does: a browser is started with its URL in its argument list,
  which every local user can read in /proc while it starts; the page's file:// URL is no secret.
"""

from __future__ import annotations

import atexit
import html
import json
import os
import stat
import sys
import tempfile
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

HANDOFF_SECONDS = 60.0  # the browser has read the page by then; the link itself works once, for minutes
_LISTEN = "0A"  # a TCP socket's state in /proc/net/tcp: listening
_PENDING: set[Path] = set()
_PENDING_LOCK = threading.Lock()


# --- the announcement -----------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, atomically, as a new 0600 file of this user (whatever was there before)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def read_private_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path` if it is a regular file (not a symlink) of this user, mode 0600 or tighter."""
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(handle, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            return None
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return None
        try:
            state = json.loads(source.read(64 * 1024).decode("utf-8"))
        except (OSError, ValueError):
            return None
    return state if isinstance(state, dict) else None


def holds_listener(pid: int, port: int) -> bool:
    """Does process `pid`, of this user, hold every socket listening on TCP `port` here (and at least one)?

    Why this, and not a nonce the console answers: it asks the kernel, sends nothing to the listener
    before it is trusted (not even the console's secret path), and needs no new unauthenticated
    endpoint. Linux only (/proc): elsewhere it says no, so a new console is started rather than a
    link minted for one that cannot be checked.
    """
    proc = Path("/proc") / str(pid)
    if not sys.platform.startswith("linux") or pid <= 0:
        return False
    try:
        if proc.stat().st_uid != os.getuid():
            return False
        listening = {inode for table in ("tcp", "tcp6") for inode in _listening(Path("/proc/net") / table, port)}
        held = set()
        for fd in os.listdir(proc / "fd"):
            with suppress(OSError):
                target = os.readlink(proc / "fd" / fd)
                if target.startswith("socket:["):
                    held.add(target[len("socket:[") : -1])
    except OSError:
        return False
    return bool(listening) and listening <= held


def _listening(table: Path, port: int) -> set[str]:
    """The inodes of the sockets listening on `port` in a /proc/net/tcp-style table."""
    try:
        lines = table.read_text("ascii").splitlines()[1:]
    except OSError:
        return set()
    found = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(fields[9])
    return found


# --- handing a link to a browser ------------------------------------------------------------------------


def handoff_page(link: str) -> Path:
    """A new 0600 page, in a new 0700 folder, that sends the browser on to `link`: open its file:// URL.

    It is removed after HANDOFF_SECONDS (`remove_later`), by `remove_handoffs`, or when the process exits.
    """
    folder = Path(tempfile.mkdtemp(prefix="chief-of-staff-login-"))  # 0700, this user's
    page = folder / "login.html"
    quoted = html.escape(link, quote=True)
    text = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        "<meta name='referrer' content='no-referrer'>"
        f"<meta http-equiv='refresh' content='0;url={quoted}'>"
        "<title>Chief of Staff console</title></head>\n"
        f"<body><p><a href='{quoted}'>Open the Chief of Staff console</a> (if it did not open by itself).</p>"
        "</body></html>\n"
    )
    handle = os.open(page, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    with _PENDING_LOCK:
        _PENDING.add(page)
    return page


def remove_handoff(page: Path) -> None:
    """Remove a handoff page and its folder (nothing if they are gone already)."""
    with _PENDING_LOCK:
        _PENDING.discard(page)
    with suppress(OSError):
        page.unlink()
    with suppress(OSError):
        page.parent.rmdir()


def remove_later(page: Path, seconds: float = HANDOFF_SECONDS) -> None:
    """Remove the page once the browser has had time to read it."""
    timer = threading.Timer(seconds, remove_handoff, (page,))
    timer.daemon = True
    timer.start()


@atexit.register
def remove_handoffs() -> None:
    """Remove every handoff page this process left (on close, and when the process exits)."""
    with _PENDING_LOCK:
        pages = list(_PENDING)
    for page in pages:
        remove_handoff(page)

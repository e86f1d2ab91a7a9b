"""Files the server writes: whole or not at all, and readable by their owner only.

The workspace and everything beside it (its -wal and -shm, the audit anchor) are created 0600, in
folders the server creates 0700. A folder the operator already had is never changed: the home
folder is theirs. Where the OS has no such modes (Windows) the flags are harmless and ignored.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def make_private_folder(folder: Path) -> None:
    """Create `folder` and its missing parents, each 0700; folders that exist are left as they are."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=PRIVATE_FOLDER)  # the umask can only take bits away


def create_private(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists: SQLite then gives its -wal and -shm the same mode."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(handle)


def readable_by_others(path: Path) -> bool:
    """Does the file's mode let its group or anyone else read or write it? (Never on Windows.)"""
    if os.name == "nt":
        return False
    return bool(stat.S_IMODE(path.stat().st_mode) & (stat.S_IRWXG | stat.S_IRWXO))


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and os.replace it, keeping the old file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise

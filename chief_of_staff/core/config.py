"""Settings and paths. The environment overrides the defaults; command-line flags override both."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from chief_of_staff.core.clock import Clock, FixedClock, SystemClock

DB_ENV = "CHIEF_OF_STAFF_DB"
# Freezes the server's clock at an ISO-8601 instant: for reproducible demos and end-to-end tests.
NOW_ENV = "CHIEF_OF_STAFF_NOW"
# Seconds between webhook delivery ticks of a running server (default webhook_runner.TICK_SECONDS).
TICK_ENV = "CHIEF_OF_STAFF_WEBHOOK_TICK"
# Where rebuildable files go (the tools' schemas, kept between starts); never the workspace.
CACHE_ENV = "CHIEF_OF_STAFF_CACHE_DIR"
APP_DIR = "chief-of-staff"


def default_db_path() -> Path:
    """Per-user data path: Application Support on macOS, %APPDATA% on Windows, XDG elsewhere."""
    home = Path.home()
    if sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / APP_DIR / "workspace.db"


def default_cache_dir() -> Path:
    """Per-user cache: Library/Caches on macOS, %LOCALAPPDATA% on Windows, XDG elsewhere."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / APP_DIR
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / APP_DIR / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / APP_DIR


@dataclass(frozen=True)
class Settings:
    db_path: Path
    clock: Clock
    webhook_tick: float = 5.0

    @classmethod
    def load(cls, db: str | os.PathLike[str] | None = None) -> Settings:
        chosen = db or os.environ.get(DB_ENV) or default_db_path()
        return cls(db_path=Path(chosen).expanduser().resolve(), clock=clock_from_env(), webhook_tick=tick_from_env())


def clock_from_env() -> Clock:
    frozen = os.environ.get(NOW_ENV)
    if not frozen:
        return SystemClock()
    instant = datetime.fromisoformat(frozen.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"{NOW_ENV} must carry a timezone, e.g. 2026-11-23T09:00:00Z")
    return FixedClock(instant)


def tick_from_env() -> float:
    text = os.environ.get(TICK_ENV)
    if not text:
        return 5.0
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{TICK_ENV} must be a number of seconds, e.g. 5, not {text!r}") from None
    if not 0.05 <= seconds <= 3600:
        raise ValueError(f"{TICK_ENV} must be between 0.05 and 3600 seconds, not {text!r}")
    return seconds

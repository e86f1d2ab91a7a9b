"""Hermetic fixtures: a temp data directory, a fixed clock, a fresh store per test."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain import workspace

# Monday 23 November 2026, 09:00 in Berlin.
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TIMEZONE = "Europe/Berlin"


@pytest.fixture(autouse=True)
def _hermetic_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never touch the operator's real workspace: point every default path at a temp folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("CHIEF_OF_STAFF_CACHE_DIR", raising=False)
    monkeypatch.delenv("CHIEF_OF_STAFF_DB", raising=False)
    monkeypatch.delenv("CHIEF_OF_STAFF_NOW", raising=False)
    yield


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def store(tmp_path: Path, clock: FixedClock) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "workspace.db", clock)
    async with opened.write() as tx:
        await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone=TIMEZONE)
    try:
        yield opened
    finally:
        await opened.close()


def db_rows(db: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the file from outside every server, read-only: what a call wrote, or failed to write, shows here."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()

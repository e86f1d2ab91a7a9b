"""The store: one SQLite file, one writer, BEGIN IMMEDIATE for every write unit.

Writes go through `Store.write()`, which serialises writers inside this process
with a lock and across processes with SQLite's own write lock (BEGIN IMMEDIATE
takes it up front, so a read-then-write never fails half way under contention).
Reads go through `Store.read()` on a second connection; WAL lets them proceed
while a write is under way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from chief_of_staff.clock import Clock, format_ts

__all__ = ["Row", "Store", "Tx", "apply_pragmas", "migration_files"]

Row = sqlite3.Row
Params = Sequence[Any] | Mapping[str, Any]

# How long a writer waits for another process's write lock before SQLite reports "busy".
BUSY_TIMEOUT_MS = 10_000


async def apply_pragmas(conn: aiosqlite.Connection) -> None:
    """The one place the storage rules are set; every connection gets them."""
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    await conn.execute("PRAGMA foreign_keys = ON")


class Tx:
    """A connection inside a unit of work, with the instant the unit started.

    Every row a unit writes carries the same `now`, so one change reads as one moment.
    """

    def __init__(self, conn: aiosqlite.Connection, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.now_text = format_ts(now)

    # Each call is one hop to the connection's thread (execute and fetch together): the hop, not
    # SQLite, is what a statement costs here, so every method makes exactly one.
    async def one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self.conn.execute_fetchall(sql, params))

    async def scalar(self, sql: str, params: Params = ()) -> Any:
        row = await self.one(sql, params)
        return None if row is None else row[0]

    async def run(self, sql: str, params: Params = ()) -> int:
        """Execute one statement that returns no rows; the new rowid for an INSERT, else the rows changed."""
        if "RETURNING" in sql.upper():
            raise ValueError("a statement with RETURNING has rows: read them with one() or all()")
        # One hop to the connection's thread: the cursor's counters are read without closing it.
        cursor = await self.conn.execute(sql, params)
        if sql.lstrip()[:6].upper() == "INSERT":
            return int(cursor.lastrowid or 0)
        return int(cursor.rowcount)

    async def run_many(self, sql: str, rows: Iterable[Params]) -> None:
        await self.conn.executemany(sql, rows)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migration_files() -> list[Migration]:
    """Numbered SQL files shipped in the package, in order."""
    folder = resources.files("chief_of_staff").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def split_statements(script: str) -> list[str]:
    """Split a script into statements (trigger bodies included) without executescript's implicit COMMIT."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        if not pending and line.strip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement at end of migration: {pending.strip()[:80]!r}")
    return statements


class Store:
    """The workspace database. Open with `await Store.open(path, clock)`; close when done."""

    def __init__(self, path: Path, clock: Clock, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self.clock = clock
        self._writer = writer
        self._reader = reader
        self._write_lock = anyio.Lock()
        self._read_lock = anyio.Lock()

    @classmethod
    async def open(cls, path: Path, clock: Clock) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        try:
            await _migrate(writer, clock)
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(path, clock, writer, reader)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """One unit of work: BEGIN IMMEDIATE … COMMIT, rolled back whole on any error."""
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            tx = Tx(self._writer, self.clock.now())
            try:
                yield tx
                with anyio.CancelScope(shield=True):
                    await self._writer.commit()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    if self._writer.in_transaction:
                        await self._writer.rollback()
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A consistent snapshot for several reads (a deferred read transaction)."""
        async with self._read_lock:
            await self._reader.execute("BEGIN")
            try:
                yield Tx(self._reader, self.clock.now())
            finally:
                with anyio.CancelScope(shield=True):
                    await self._reader.rollback()


async def _connect(path: Path) -> aiosqlite.Connection:
    # isolation_level=None: the driver never opens transactions on its own; we say BEGIN ourselves.
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    conn.row_factory = sqlite3.Row
    await apply_pragmas(conn)
    return conn


async def _migrate(conn: aiosqlite.Connection, clock: Clock) -> None:
    """Apply each pending migration and its record in one transaction."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for migration in migration_files():
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            ) as cursor:
                if await cursor.fetchone() is not None:
                    await conn.rollback()
                    continue
            for statement in split_statements(migration.sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, format_ts(clock.now())),
            )
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()

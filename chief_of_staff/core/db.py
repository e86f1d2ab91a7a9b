"""The store: one SQLite file, one writer, BEGIN IMMEDIATE for every write unit.

Writes go through `Store.write()`, which serialises writers inside this process
with a lock and across processes with SQLite's own write lock (BEGIN IMMEDIATE
takes it up front, so a read-then-write never fails half way under contention).
Reads go through `Store.read()` on a second connection; WAL lets them proceed
while a write is under way.

Threads: every call that can wait runs on the connection's aiosqlite thread:
opening, pragmas, migrations, BEGIN IMMEDIATE (it may wait up to the busy timeout
for another process's write lock), COMMIT (it fsyncs), ROLLBACK and close. The
statements inside a unit run inline on the event loop instead: once BEGIN
IMMEDIATE holds the write lock they cannot wait on a lock, WAL readers never
do, and an indexed statement takes microseconds, while a hop to the thread
costs a hundred or more. Each connection is used by one unit at a time (the
locks), so the two threads never touch it at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from chief_of_staff.core.clock import Clock, format_ts

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


@dataclass(frozen=True)
class Connection:
    """One SQLite connection: its aiosqlite thread for calls that can wait, its handle for statements."""

    thread: aiosqlite.Connection
    handle: sqlite3.Connection


class Tx:
    """A connection inside a unit of work, with the instant the unit started.

    Every row a unit writes carries the same `now`, so one change reads as one moment.
    """

    def __init__(self, conn: Connection, now: datetime) -> None:
        self._db = conn.handle
        self.now = now
        self.now_text = format_ts(now)
        # Values read once per unit (the workspace row); never carried into another unit.
        self.memo: dict[str, Any] = {}

    async def one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._db.execute(sql, params).fetchone()
        return row

    async def all(self, sql: str, params: Params = ()) -> list[Row]:
        return self._db.execute(sql, params).fetchall()

    async def scalar(self, sql: str, params: Params = ()) -> Any:
        row = await self.one(sql, params)
        return None if row is None else row[0]

    async def run(self, sql: str, params: Params = ()) -> int:
        """Execute one statement that returns no rows; the new rowid for an INSERT, else the rows changed."""
        if "RETURNING" in sql.upper():
            raise ValueError("a statement with RETURNING has rows: read them with one() or all()")
        cursor = self._db.execute(sql, params)
        if sql.lstrip()[:6].upper() == "INSERT":
            return int(cursor.lastrowid or 0)
        return int(cursor.rowcount)

    async def run_many(self, sql: str, rows: Iterable[Params]) -> None:
        self._db.executemany(sql, rows)

    def trace(self, callback: Callable[[str], object] | None) -> None:
        """See every statement this connection runs (tests pin query plans and statement counts with it)."""
        self._db.set_trace_callback(callback)


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

    def __init__(self, path: Path, clock: Clock, writer: Connection, reader: Connection):
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
            await _migrate(writer.thread, clock)
            reader = await _connect(path)
        except BaseException:
            await writer.thread.close()
            raise
        return cls(path, clock, writer, reader)

    async def close(self) -> None:
        await self._reader.thread.close()
        await self._writer.thread.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """One unit of work: BEGIN IMMEDIATE … COMMIT, rolled back whole on any error."""
        async with self._unit(keep=True) as tx:
            yield tx

    @asynccontextmanager
    async def trial(self) -> AsyncIterator[Tx]:
        """A write unit that is always rolled back: for asking what writes would do, never keeping them.

        A savepoint rolled back inside a committed unit is not enough: the COMMIT still writes
        every page the undone statements touched to the WAL (and fsyncs), which other
        connections see as a change. ROLLBACK writes nothing.
        """
        async with self._unit(keep=False) as tx:
            yield tx

    @asynccontextmanager
    async def _unit(self, *, keep: bool) -> AsyncIterator[Tx]:
        async with self._write_lock:
            thread = self._writer.thread
            await thread.execute("BEGIN IMMEDIATE")  # may wait for another process's write lock
            try:
                yield Tx(self._writer, self.clock.now())
                if keep:
                    with anyio.CancelScope(shield=True):
                        await thread.commit()  # fsync, and now and then a checkpoint: never on the loop
            finally:
                with anyio.CancelScope(shield=True):
                    if thread.in_transaction:  # an error, or a trial: nothing of it stays
                        await thread.rollback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A consistent snapshot for several reads (a deferred read transaction).

        BEGIN and ROLLBACK of a read run inline: a deferred BEGIN touches nothing, and in WAL
        mode taking and dropping a read snapshot never waits for a writer.
        """
        async with self._read_lock:
            handle = self._reader.handle
            handle.execute("BEGIN")
            try:
                yield Tx(self._reader, self.clock.now())
            finally:
                handle.execute("ROLLBACK")


async def _connect(path: Path) -> Connection:
    opened: list[sqlite3.Connection] = []

    def connector() -> sqlite3.Connection:
        # isolation_level=None: the driver never opens transactions on its own; we say BEGIN ourselves.
        # check_same_thread=False: statements run on the event loop, the rest on aiosqlite's thread.
        handle = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        handle.row_factory = sqlite3.Row
        opened.append(handle)
        return handle

    thread = await aiosqlite.Connection(connector, iter_chunk_size=64)
    await apply_pragmas(thread)
    return Connection(thread=thread, handle=opened[0])


async def _migrate(conn: aiosqlite.Connection, clock: Clock) -> None:
    """Apply each pending migration and its record in one transaction."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    # Every start passes here: read what is applied once, and take the write lock only for what is not.
    async with conn.execute("SELECT version FROM schema_migrations") as cursor:
        applied = {row[0] for row in await cursor.fetchall()}
    for migration in migration_files():
        if migration.version in applied:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            ) as cursor:
                if await cursor.fetchone() is not None:  # another process applied it meanwhile
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

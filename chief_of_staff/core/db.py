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

The audit tail: a unit that appended audit rows moves the anchor (core.anchor) to its new head
after COMMIT, before it returns. Opening checks that the anchored row still holds its hash, that
rows after it chain from it (then anchors them), and that the append-only triggers are there; if
not, the store refuses every write (WorkspaceSealed) until the operator repairs it
(`Store.repair`), and reads go on. The file is created 0600 (its
-wal and -shm copy that mode) in folders created 0700 (core.files).
"""

from __future__ import annotations

import functools
import re
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

from chief_of_staff.core import anchor, files
from chief_of_staff.core.clock import Clock, format_ts
from chief_of_staff.core.errors import WorkspaceSealed

Row = sqlite3.Row
Params = Sequence[Any] | Mapping[str, Any]

# How long a writer waits for another process's write lock before SQLite reports "busy".
BUSY_TIMEOUT_MS = 10_000
# The triggers that keep a table append-only are named <table>_no_update and <table>_no_delete.
_APPEND_ONLY = re.compile(r"CREATE TRIGGER (\w+_no_(?:update|delete))\b", re.IGNORECASE)
REPAIR_HINT = "chief-of-staff audit repair"


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
        # Set by audit.append: the head the unit's first row builds on, and the head it leaves.
        self.audit_base: tuple[int, str] | None = None
        self.audit_head: tuple[int, str] | None = None

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


@functools.cache
def append_only_triggers() -> dict[str, str]:
    """The triggers that keep tables append-only, as the migrations create them: name -> CREATE statement."""
    found = {}
    for migration in migration_files():
        for statement in split_statements(migration.sql):
            if match := _APPEND_ONLY.match(statement):
                found[match.group(1)] = statement
    return found


def _same_sql(found: str | None, statement: str) -> bool:
    return found is not None and found.split() == statement.rstrip(";").split()


async def missing_triggers(tx: Tx) -> list[str]:
    """The append-only triggers gone from the file, or no longer what the migrations made them."""
    present = {row[0]: row[1] for row in await tx.all("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
    return [name for name, sql in append_only_triggers().items() if not _same_sql(present.get(name), sql)]


async def restore_triggers(tx: Tx) -> list[str]:
    """Recreate the missing append-only triggers from their migrations, inside the caller's unit; their names."""
    missing = await missing_triggers(tx)
    for name in missing:
        await tx.run(f"DROP TRIGGER IF EXISTS {name}")  # a name from the shipped migrations, never input
        await tx.run(append_only_triggers()[name])
    return missing


def sealed_message(problems: list[str]) -> str:
    """Why a workspace refuses writes, and what the operator does about it."""
    return (
        "This workspace refuses changes: " + "; ".join(problems) + ". Reads still work. The operator can "
        "see the details with `chief-of-staff doctor` and, once satisfied, run `" + REPAIR_HINT + "`, "
        "which recreates the triggers, anchors the log on its current head and records what it found."
    )


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
        self.anchor = anchor.locate(path)
        self._keeper = anchor.Keeper(self.anchor)
        # Why writes are refused (the tail or the triggers did not hold), or None when they are not.
        self.refusal: str | None = None

    @classmethod
    async def open(cls, path: Path, clock: Clock) -> Store:
        files.make_private_folder(path.parent)
        files.create_private(path)
        writer = await _connect(path)
        try:
            await _migrate(writer.thread, clock)
            reader = await _connect(path)
        except BaseException:
            await writer.thread.close()
            raise
        store = cls(path, clock, writer, reader)
        try:
            await store._inspect()
        except BaseException:
            await store.close()
            raise
        return store

    async def _inspect(self) -> None:
        """At open: the anchored row still holds its hash, and every append-only trigger is there."""
        async with self.read() as tx:
            tail = await self._keeper.inspect(tx)
            missing = await missing_triggers(tx)
        problems = [] if tail is None else [tail]
        if missing:
            problems.append(
                f"the append-only trigger{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"{'are' if len(missing) > 1 else 'is'} missing or changed, so rows they guard could have been "
                "rewritten or deleted"
            )
        self.refusal = sealed_message(problems) if problems else None
        if not problems:  # a mismatched anchor is evidence: it moves only with the operator's repair
            self._keeper.catch_up(format_ts(self.clock.now()))

    async def close(self) -> None:
        await self._reader.thread.close()
        await self._writer.thread.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """One unit of work: BEGIN IMMEDIATE … COMMIT, rolled back whole on any error.

        Raises WorkspaceSealed, writing nothing, while the audit tail or the triggers do not hold.
        """
        if self.refusal is not None:
            raise WorkspaceSealed(self.refusal)
        async with self._unit(keep=True) as tx:
            yield tx

    @asynccontextmanager
    async def repair(self) -> AsyncIterator[Tx]:
        """The one write unit a sealed store takes: the operator's repair, which must append an audit row.

        Its commit writes the anchor whole on the new head, whatever the old anchor said, and lifts
        the refusal. What to restore and record is the caller's (domain.doctor.repair).
        """
        async with self._unit(keep=True, repairing=True) as tx:
            yield tx
        self.refusal = None

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
    async def _unit(self, *, keep: bool, repairing: bool = False) -> AsyncIterator[Tx]:
        async with self._write_lock:
            thread = self._writer.thread
            await thread.execute("BEGIN IMMEDIATE")  # may wait for another process's write lock
            try:
                tx = Tx(self._writer, self.clock.now())
                yield tx
                if keep:
                    await self._check_tail(tx, repairing)
                    with anyio.CancelScope(shield=True):
                        await thread.commit()  # fsync, and now and then a checkpoint: never on the loop
                        if tx.audit_head is not None:  # inline: an fdatasync of one record (core.anchor)
                            self._keeper.committed(tx.audit_head, tx.now_text, whole=repairing)
            finally:
                with anyio.CancelScope(shield=True):
                    if thread.in_transaction:  # an error, or a trial: nothing of it stays
                        await thread.rollback()

    async def _check_tail(self, tx: Tx, repairing: bool) -> None:
        """Before COMMIT: settle the head the anchor will hold, and refuse to commit on a log that got
        shorter, or was rewritten, while this store had it open."""
        if tx.audit_head is not None:
            # Read, not remembered: rows appended inside a savepoint that was rolled back are gone.
            head = await tx.one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            tx.audit_head = None if head is None else (head["id"], head["hash"])
        if repairing:
            if tx.audit_head is None:
                raise ValueError("a repair records what it found as an audit row")
            return
        problem = self._keeper.refuses(tx.audit_base)
        if problem is not None:
            self.refusal = sealed_message([problem])
            raise WorkspaceSealed(self.refusal)

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

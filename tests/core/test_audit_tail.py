"""The audit tail between clean stops: the anchor follows every commit, and opening checks the tail and the
append-only triggers, refusing writes (never reads) until the operator repairs.

Every attack edits the file from outside the server, the way someone holding it would: raw sqlite3.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chief_of_staff.core import anchor, audit, db
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import WorkspaceSealed
from chief_of_staff.domain import workspace

pytestmark = pytest.mark.anyio

POSIX_MODES = pytest.mark.skipif(os.name == "nt", reason="Windows has no owner/group/other modes")


async def append(store: Store, count: int = 1) -> None:
    async with store.write() as tx:
        for n in range(count):
            await audit.append(tx, OPERATOR_CLI, "test.change", f"X{n}")


def raw(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
async def closed(tmp_path: Path, clock: FixedClock) -> Path:
    """A workspace file with ten audit rows, anchored, and no process holding it open."""
    store = await Store.open(tmp_path / "w.db", clock)
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone="Europe/Berlin")
        for _ in range(3):
            await append(store, 3)
    finally:
        await store.close()
    return tmp_path / "w.db"


@pytest.fixture
async def reopened(closed: Path, clock: FixedClock) -> AsyncIterator[Store]:
    yield (store := await Store.open(closed, clock))
    await store.close()


async def test_a_clean_file_opens_for_writing_with_the_anchor_at_its_head(reopened: Store) -> None:
    assert reopened.refusal is None
    assert anchor.read_anchor(reopened.anchor) is not None
    assert anchor.read_anchor(reopened.anchor).row_id == 10  # type: ignore[union-attr]
    await append(reopened)


async def test_a_log_shorter_than_its_anchor_refuses_writes_but_not_reads(closed: Path, clock: FixedClock) -> None:
    raw(closed, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id >= 9")
    raw(closed, db.append_only_triggers()["audit_log_no_delete"])  # put the trigger back: only the tail is off
    store = await Store.open(closed, clock)
    try:
        assert store.refusal is not None
        assert "anchored row 10 is missing (the log was truncated; it now ends at row 8)" in store.refusal
        assert "`chief-of-staff audit repair`" in store.refusal
        assert str(closed) not in store.refusal  # it reaches a model: no paths
        with pytest.raises(WorkspaceSealed) as refused:
            async with store.write():
                pass
        assert str(refused.value) == store.refusal
        async with store.read() as tx:
            assert (await workspace.get(tx)).name == "Test Co"
    finally:
        await store.close()


async def test_a_rewritten_tail_refuses_writes(closed: Path, clock: FixedClock) -> None:
    raw(closed, "DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET hash = printf('%064d', 0) WHERE id = 10")
    raw(closed, db.append_only_triggers()["audit_log_no_update"])
    store = await Store.open(closed, clock)
    try:
        assert "rows at/after 10 were rewritten" in (store.refusal or "")
    finally:
        await store.close()


async def test_an_anchor_one_unit_behind_is_accepted(closed: Path, clock: FixedClock) -> None:
    """A kill between COMMIT and the anchor's move leaves the anchor on the unit before: not a problem."""
    config = anchor.locate(closed)
    behind = config.path.read_bytes()
    store = await Store.open(closed, clock)
    await append(store, 3)
    await store.close()
    config.path.write_bytes(behind)  # as if the last unit's anchor write never happened
    store = await Store.open(closed, clock)
    try:
        assert store.refusal is None
        assert anchor.read_anchor(config).row_id == 13  # type: ignore[union-attr]  # opening caught it up
        await append(store)
        assert anchor.read_anchor(config).row_id == 14  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_rows_after_the_anchor_that_do_not_chain_from_it_refuse_writes(closed: Path, clock: FixedClock) -> None:
    config = anchor.locate(closed)
    behind = config.path.read_bytes()
    store = await Store.open(closed, clock)
    await append(store, 3)
    await store.close()
    config.path.write_bytes(behind)
    raw(closed, "DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET subject = 'forged' WHERE id = 12")
    raw(closed, db.append_only_triggers()["audit_log_no_update"])
    store = await Store.open(closed, clock)
    try:
        assert "the audit rows after the anchored row 10 do not chain from it: row 12 was altered" in (
            store.refusal or ""
        )
        assert config.path.read_bytes() == behind  # evidence: the anchor does not move
    finally:
        await store.close()


@pytest.mark.parametrize("trigger", ["audit_log_no_delete", "outcomes_no_update", "chat_draws_no_delete"])
async def test_a_missing_append_only_trigger_refuses_writes(closed: Path, clock: FixedClock, trigger: str) -> None:
    raw(closed, f"DROP TRIGGER {trigger}")
    store = await Store.open(closed, clock)
    try:
        assert f"the append-only trigger {trigger} is missing or changed" in (store.refusal or "")
    finally:
        await store.close()


async def test_a_trigger_with_its_body_swapped_counts_as_missing(closed: Path, clock: FixedClock) -> None:
    raw(
        closed,
        "DROP TRIGGER audit_log_no_delete",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT 1; END",
    )
    store = await Store.open(closed, clock)
    try:
        assert "audit_log_no_delete is missing or changed" in (store.refusal or "")
    finally:
        await store.close()


def test_the_append_only_triggers_are_read_from_the_migrations() -> None:
    assert sorted(db.append_only_triggers()) == sorted(
        f"{table}_no_{what}"
        for table in ("audit_log", "outcomes", "outcome_metrics", "chat_draws")
        for what in ("update", "delete")
    )


async def test_an_anchor_that_cannot_be_read_refuses_writes(closed: Path, clock: FixedClock) -> None:
    anchor.locate(closed).path.write_text("not json", "utf-8")
    store = await Store.open(closed, clock)
    try:
        assert "the audit anchor is not a valid anchor" in (store.refusal or "")
    finally:
        await store.close()


async def test_a_store_repair_restores_triggers_moves_the_anchor_and_lifts_the_refusal(
    closed: Path, clock: FixedClock
) -> None:
    raw(closed, "DROP TRIGGER audit_log_no_delete", "DELETE FROM audit_log WHERE id >= 9")
    store = await Store.open(closed, clock)
    try:
        async with store.repair() as tx:
            assert await db.restore_triggers(tx) == ["audit_log_no_delete"]
            row = await audit.append(tx, OPERATOR_CLI, "audit.repair", "audit_log")
        assert row == 9 and store.refusal is None
        assert anchor.read_anchor(store.anchor).row_id == 9  # type: ignore[union-attr]
        await append(store)
    finally:
        await store.close()
    store = await Store.open(closed, clock)
    try:
        assert store.refusal is None  # and it stays repaired
    finally:
        await store.close()


async def test_a_repair_that_records_nothing_is_refused(reopened: Store) -> None:
    with pytest.raises(ValueError, match="records what it found"):
        async with reopened.repair():
            pass


async def test_an_anchor_file_of_another_size_is_written_whole(reopened: Store) -> None:
    head = anchor.read_anchor(reopened.anchor)
    assert head is not None
    reopened.anchor.path.write_text(f'{{"row_id": {head.row_id}, "hash": "{head.hash}", "at": "{head.at}"}}')
    await append(reopened)
    assert reopened.anchor.path.stat().st_size == anchor.RECORD_BYTES
    assert anchor.read_anchor(reopened.anchor).row_id == 11  # type: ignore[union-attr]


@POSIX_MODES
async def test_a_new_workspace_its_sidecars_and_its_anchor_are_private(tmp_path: Path, clock: FixedClock) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    path = home / "made" / "by" / "us" / "w.db"
    store = await Store.open(path, clock)
    try:
        await append(store)
        made = [path.with_name(f"w.db{suffix}") for suffix in ("", "-wal", "-shm", ".anchor.json")]
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in made} == {p.name: 0o600 for p in made}
        for folder in (home / "made", home / "made" / "by", home / "made" / "by" / "us"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(home.stat().st_mode) == 0o755  # the operator's own folder is left alone
    finally:
        await store.close()


@POSIX_MODES
async def test_an_existing_workspace_file_keeps_its_mode(closed: Path, clock: FixedClock) -> None:
    closed.chmod(0o644)
    await (await Store.open(closed, clock)).close()
    assert stat.S_IMODE(closed.stat().st_mode) == 0o644  # doctor warns; the server never chmods it


async def test_rows_appended_in_a_rolled_back_savepoint_never_reach_the_anchor(reopened: Store) -> None:
    async with reopened.write() as tx:
        await audit.append(tx, OPERATOR_CLI, "test.change", "kept")
        await tx.run("SAVEPOINT trial")
        await audit.append(tx, OPERATOR_CLI, "test.change", "undone")
        await tx.run("ROLLBACK TO trial")
        await tx.run("RELEASE trial")
    assert anchor.read_anchor(reopened.anchor).row_id == 11  # type: ignore[union-attr]
    await append(reopened)  # and the next unit builds on the head the anchor holds
    assert anchor.read_anchor(reopened.anchor).row_id == 12  # type: ignore[union-attr]


async def test_an_anchor_folder_holds_one_anchor_per_workspace(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "off-box"
    folder.mkdir()
    monkeypatch.setenv(anchor.ANCHOR_ENV, str(folder))
    first, second = anchor.locate(tmp_path / "a" / "w.db"), anchor.locate(tmp_path / "b" / "w.db")
    assert first.path.parent == second.path.parent == folder.resolve() and first.path != second.path
    for path in (tmp_path / "a" / "w.db", tmp_path / "b" / "w.db"):
        store = await Store.open(path, clock)
        await append(store)
        await store.close()
    for path in (tmp_path / "a" / "w.db", tmp_path / "b" / "w.db"):
        store = await Store.open(path, clock)
        assert store.refusal is None  # neither moved the other's anchor
        await store.close()

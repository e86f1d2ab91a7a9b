"""Tamper-evident audit: the chain names the first bad row; the anchor catches a truncated or re-signed tail.

Every attack edits the file the way someone holding it would: raw sqlite3, append-only triggers dropped.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest

from chief_of_staff.cli.main import main
from chief_of_staff.core import anchor, audit
from chief_of_staff.core.anchor import ANCHOR_ENV, KEY_ENV, AnchorConfig
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock, format_ts
from chief_of_staff.core.config import NOW_ENV, Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import WorkspaceSealed
from tests.conftest import START

pytestmark = pytest.mark.anyio

COLUMNS = ("at", "actor", "channel", "action", "subject", "detail")


@pytest.fixture
async def logged(store: Store) -> Store:
    """The store with ten audit rows in all (the workspace row plus nine changes)."""
    for n in range(9):
        async with store.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.change", f"X{n}", {"n": n})
    return store


@pytest.fixture
def config(tmp_path: Path) -> AnchorConfig:
    return AnchorConfig(tmp_path / "elsewhere" / "anchor.json")


def tamper(db: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    raw = sqlite3.connect(db)
    try:
        raw.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        raw.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        raw.execute(sql, params)
        raw.commit()
    finally:
        raw.close()


def resign_tail(db: Path, first: int) -> None:
    """Rewrite rows `first`..head with new content and recompute every hash: the chain still holds."""
    raw = sqlite3.connect(db)
    raw.row_factory = sqlite3.Row
    try:
        raw.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        prev = raw.execute("SELECT hash FROM audit_log WHERE id = ?", (first - 1,)).fetchone()["hash"]
        for row in raw.execute("SELECT * FROM audit_log WHERE id >= ? ORDER BY id", (first,)).fetchall():
            fields = dict(row) | {"subject": "nothing-to-see", "detail": "{}"}
            digest = audit.row_hash(prev, row["id"], *(fields[c] for c in COLUMNS))
            raw.execute(
                "UPDATE audit_log SET subject = ?, detail = ?, prev_hash = ?, hash = ? WHERE id = ?",
                (fields["subject"], fields["detail"], prev, digest, row["id"]),
            )
            prev = digest
        raw.commit()
    finally:
        raw.close()


async def chain_of(store: Store) -> audit.ChainReport:
    async with store.read() as tx:
        return await audit.verify_chain(tx)


async def check(store: Store, config: AnchorConfig) -> anchor.AnchorCheck:
    async with store.read() as tx:
        return await anchor.check(tx, config)


async def test_an_intact_log_verifies_and_matches_its_anchor(logged: Store, config: AnchorConfig) -> None:
    assert (await anchor.export(logged, config)).ok
    async with logged.write() as tx:  # rows appended after the anchor are fine
        await audit.append(tx, OPERATOR_CLI, "test.change", "later")
    result = await check(logged, config)
    assert result.ok
    assert result.chain.rows == 11
    assert result.note.startswith("anchor at row 10 (hash ") and result.note.endswith(" matches")


async def test_a_flipped_byte_in_a_middle_row_is_named(logged: Store) -> None:
    async with logged.read() as tx:
        detail = await tx.scalar("SELECT detail FROM audit_log WHERE id = 5")
    flipped = detail.replace("3", "7")
    assert flipped != detail
    tamper(logged.path, "UPDATE audit_log SET detail = ? WHERE id = 5", (flipped,))
    report = await chain_of(logged)
    assert (report.first_bad_id, report.problem) == (5, "row 5 was altered after it was written")
    assert report.head_id == 4


async def test_a_deleted_middle_row_is_reported_as_a_gap(logged: Store) -> None:
    tamper(logged.path, "DELETE FROM audit_log WHERE id = 6")
    report = await chain_of(logged)
    assert (report.first_bad_id, report.problem) == (6, "row 6 is missing (next row is 7)")


async def test_two_swapped_rows_are_caught_at_the_first(logged: Store) -> None:
    raw = sqlite3.connect(logged.path)
    try:
        raw.execute("DROP TRIGGER audit_log_no_delete")
        rows = raw.execute("SELECT * FROM audit_log WHERE id IN (3, 4) ORDER BY id").fetchall()
        raw.execute("DELETE FROM audit_log WHERE id IN (3, 4)")
        raw.executemany(
            "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(3, *rows[1][1:]), (4, *rows[0][1:])]
        )
        raw.commit()
    finally:
        raw.close()
    report = await chain_of(logged)
    assert (report.first_bad_id, report.problem) == (3, "row 3 does not link to the row before it")


async def test_a_row_planted_below_the_first_is_not_skipped(logged: Store) -> None:
    tamper(
        logged.path,
        "INSERT INTO audit_log VALUES (0, 'x', 'mallory', 'system', 'a', '', '{}', ?, ?)",
        (audit.GENESIS, "f" * 64),
    )
    report = await chain_of(logged)
    assert report.first_bad_id == 0
    assert report.problem == "row 0 was inserted out of sequence (expected row 1 next)"


async def test_a_value_of_the_wrong_type_reads_as_altered_not_a_crash(logged: Store) -> None:
    tamper(logged.path, "UPDATE audit_log SET detail = X'7b7d' WHERE id = 2")
    report = await chain_of(logged)
    assert (report.first_bad_id, report.problem) == (2, "row 2 was altered after it was written")


async def test_a_resigned_tail_passes_the_chain_but_fails_the_anchor(logged: Store, config: AnchorConfig) -> None:
    assert (await anchor.export(logged, config)).ok
    resign_tail(logged.path, 7)
    result = await check(logged, config)
    assert result.chain.ok  # the chain alone cannot tell
    assert not result.ok
    assert (result.problem or "").startswith("rows at/after 10 were rewritten: anchored hash ")


async def test_a_truncated_log_is_caught_against_the_anchor(logged: Store, config: AnchorConfig) -> None:
    assert (await anchor.export(logged, config)).ok
    tamper(logged.path, "DELETE FROM audit_log WHERE id >= 9")
    result = await check(logged, config)
    assert result.chain.ok
    assert result.problem == "anchored row 10 is missing (the log was truncated; it now ends at row 8)"


async def test_a_keyed_anchor_with_a_forged_mac_is_refused(logged: Store, tmp_path: Path) -> None:
    keyed = AnchorConfig(tmp_path / "anchor.json", b"operator-secret")
    assert (await anchor.export(logged, keyed)).anchor is not None
    resign_tail(logged.path, 7)
    async with logged.read() as tx:
        head = await tx.one("SELECT id, hash, at FROM audit_log ORDER BY id DESC LIMIT 1")
    assert head is not None
    # The attacker re-anchors the forged head, signing with a key of their own.
    anchor.write_anchor(AnchorConfig(keyed.path, b"guess"), head["id"], head["hash"], head["at"])
    result = await check(logged, keyed)
    assert not result.ok
    assert "MAC that does not verify" in (result.problem or "")


async def test_an_unsigned_anchor_is_refused_when_a_key_is_set(logged: Store, tmp_path: Path) -> None:
    path = tmp_path / "anchor.json"
    await anchor.export(logged, AnchorConfig(path))
    result = await check(logged, AnchorConfig(path, b"operator-secret"))
    assert "carries no MAC" in (result.problem or "")


async def test_anchoring_a_broken_chain_writes_nothing(logged: Store, config: AnchorConfig) -> None:
    tamper(logged.path, "DELETE FROM audit_log WHERE id = 6")
    result = await anchor.export(logged, config)
    assert (result.ok, result.anchor) == (False, None)
    assert not config.path.parent.exists() or list(config.path.parent.iterdir()) == []


async def test_the_anchor_is_small_signed_json_written_atomically(logged: Store, config: AnchorConfig) -> None:
    await anchor.export(logged, AnchorConfig(config.path, b"k"))
    data = json.loads(config.path.read_text("utf-8"))
    assert sorted(data) == ["at", "hash", "mac", "row_id"]
    assert (data["row_id"], data["at"]) == (10, format_ts(START))
    assert data["mac"] == anchor.sign(b"k", 10, data["hash"], data["at"])
    assert [p.name for p in config.path.parent.iterdir()] == ["anchor.json"]  # no temp file left behind


def settings_for(store: Store) -> Settings:
    return Settings(db_path=store.path, clock=store.clock)


def anchored_row(store: Store) -> int | None:
    found = anchor.read_anchor(store.anchor)
    return None if found is None else found.row_id


async def test_every_committed_unit_moves_the_anchor_to_its_head(logged: Store) -> None:
    assert logged.anchor.path == Path(str(logged.path) + ".anchor.json")
    assert anchored_row(logged) == 10
    async with logged.write() as tx:
        await audit.append(tx, OPERATOR_CLI, "test.change", "later")
        await audit.append(tx, OPERATOR_CLI, "test.change", "later")
    assert anchored_row(logged) == 12
    assert await anchor.export_if_stale(logged, settings_for(logged)) is None  # shutdown finds it current


async def test_units_without_audit_rows_or_that_roll_back_leave_the_anchor(logged: Store) -> None:
    before = logged.anchor.path.read_bytes()
    async with logged.write() as tx:
        await tx.run("DELETE FROM server_processes")
    with pytest.raises(RuntimeError):
        async with logged.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.change", "never")
            raise RuntimeError("the unit fails")
    async with logged.trial() as tx:
        await audit.append(tx, OPERATOR_CLI, "test.change", "tried")
    assert logged.anchor.path.read_bytes() == before


async def test_the_anchor_is_one_private_record_rewritten_in_place(logged: Store) -> None:
    path = logged.anchor.path
    inode = path.stat().st_ino
    async with logged.write() as tx:
        await audit.append(tx, OPERATOR_CLI, "test.change", "later")
    assert path.stat().st_size == anchor.RECORD_BYTES and path.stat().st_ino == inode
    if os.name != "nt":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_first_anchor_at_shutdown_checks_only_the_newest_rows(
    logged: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged.anchor.path.unlink()  # a log written before the anchor followed every commit
    monkeypatch.setattr(anchor, "FIRST_ANCHOR_ROWS", 4)
    tamper(logged.path, "UPDATE audit_log SET detail = '{\"n\": 99}' WHERE id = 3")  # older than the window
    first = await anchor.export_if_stale(logged, settings_for(logged))
    assert first is not None and first.row_id == 10
    async with logged.read() as tx:
        assert (await audit.verify_chain(tx)).first_bad_id == 3  # the whole walk still finds it


async def test_a_first_anchor_refuses_a_break_among_the_newest_rows(
    logged: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged.anchor.path.unlink()
    monkeypatch.setattr(anchor, "FIRST_ANCHOR_ROWS", 4)
    tamper(logged.path, "UPDATE audit_log SET detail = '{\"n\": 99}' WHERE id = 8")
    assert await anchor.export_if_stale(logged, settings_for(logged)) is None
    assert not Path(str(logged.path) + ".anchor.json").exists()


async def test_export_if_stale_keeps_a_mismatched_anchor_as_evidence(
    logged: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ANCHOR_ENV, str(tmp_path / "off-box" / "a.json"))
    settings = settings_for(logged)
    assert await anchor.export_if_stale(logged, settings) is not None
    before = (tmp_path / "off-box" / "a.json").read_text("utf-8")
    tamper(logged.path, "DELETE FROM audit_log WHERE id >= 9")
    raw = sqlite3.connect(logged.path)  # new rows on top of the truncated log, from outside the server
    try:
        prev = raw.execute("SELECT hash FROM audit_log WHERE id = 8").fetchone()[0]
        for row_id in (9, 10, 11):
            fields = ("x", "mallory", "system", "cover", "", "{}")
            digest = audit.row_hash(prev, row_id, *fields)
            raw.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (row_id, *fields, prev, digest))
            prev = digest
        raw.commit()
    finally:
        raw.close()
    assert await anchor.export_if_stale(logged, settings) is None
    assert (tmp_path / "off-box" / "a.json").read_text("utf-8") == before


async def test_a_log_shortened_while_open_refuses_the_next_write_and_keeps_its_anchor(logged: Store) -> None:
    before = logged.anchor.path.read_bytes()
    tamper(logged.path, "DELETE FROM audit_log WHERE id >= 9")
    with pytest.raises(WorkspaceSealed, match="lost rows while the workspace was open: it reached row 10, now row 8"):
        async with logged.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.change", "cover")
    assert (await chain_of(logged)).head_id == 8  # the covering row was rolled back
    assert logged.anchor.path.read_bytes() == before
    with pytest.raises(WorkspaceSealed):
        async with logged.write():
            pass


async def test_a_rewritten_head_while_open_refuses_the_next_write(logged: Store) -> None:
    resign_tail(logged.path, 10)
    with pytest.raises(WorkspaceSealed, match="audit row 10 was rewritten while the workspace was open"):
        async with logged.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.change", "cover")


async def test_concurrent_appends_never_fork_the_chain(logged: Store) -> None:
    async def one(n: int) -> None:
        async with logged.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.concurrent", f"C{n}", {"n": n})

    async with anyio.create_task_group() as group:
        for n in range(50):
            group.start_soon(one, n)
    report = await chain_of(logged)
    assert report.ok
    assert (report.rows, report.head_id) == (60, 60)


async def test_two_stores_on_one_file_never_fork_the_chain(logged: Store, clock: FixedClock) -> None:
    other = await Store.open(logged.path, clock)

    async def one(store: Store, n: int) -> None:
        async with store.write() as tx:
            await audit.append(tx, OPERATOR_CLI, "test.concurrent", f"C{n}", {"n": n})

    try:
        async with anyio.create_task_group() as group:
            for n in range(50):
                group.start_soon(one, (logged, other)[n % 2], n)
    finally:
        await other.close()
    report = await chain_of(logged)
    assert report.ok and report.rows == 60


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(NOW_ENV, START.isoformat())
    path = tmp_path / "cli.db"
    assert main(["init", "--db", str(path), "--timezone", "Europe/Berlin", "--blueprint", "outbound"]) == 0
    return path


def test_cli_audit_verify_passes_on_a_clean_file(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = sqlite3.connect(db).execute("SELECT max(id) FROM audit_log").fetchone()[0]
    capsys.readouterr()
    assert main(["audit", "verify", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Audit chain verifies: ")
    assert f"anchor at row {head} (hash " in out  # init's own commits anchored it


def test_cli_audit_verify_names_the_bad_row(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(db, "UPDATE audit_log SET actor = 'mallory' WHERE id = 3")
    capsys.readouterr()
    assert main(["audit", "verify", "--db", str(db)]) == 1
    assert "Audit chain BROKEN at row 3: row 3 was altered after it was written" in capsys.readouterr().err


def test_cli_update_anchor_then_truncation_fails_verify(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--update-anchor", "--db", str(db)]) == 0
    assert Path(str(db) + ".anchor.json").exists()
    head = sqlite3.connect(db).execute("SELECT max(id) FROM audit_log").fetchone()[0]
    tamper(db, "DELETE FROM audit_log WHERE id = ?", (head,))
    capsys.readouterr()
    assert main(["audit", "verify", "--db", str(db)]) == 1
    assert f"anchored row {head} is missing" in capsys.readouterr().err


def test_cli_audit_anchor_with_a_key_refuses_a_forged_anchor(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "operator-secret")
    capsys.readouterr()
    assert main(["audit", "anchor", "--db", str(db)]) == 1  # init's anchor carries no MAC: not to be trusted
    assert "carries no MAC" in capsys.readouterr().err
    assert main(["audit", "repair", "--db", str(db)]) == 0  # the operator accepts the log, signed from now on
    assert main(["audit", "anchor", "--db", str(db)]) == 0
    path = Path(str(db) + ".anchor.json")
    forged = json.loads(path.read_text("utf-8")) | {"mac": "0" * 64}
    path.write_text(json.dumps(forged), "utf-8")
    capsys.readouterr()
    assert main(["audit", "anchor", "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert "MAC that does not verify" in err and "No anchor written" in err
    assert json.loads(path.read_text("utf-8")) == forged

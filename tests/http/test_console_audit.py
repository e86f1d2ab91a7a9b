"""The console's Audit page over ASGI: the newest rows with who and which channel, the anchor's standing,
verifying the whole chain and anchoring its head; a tampered row is shown as the break it is."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from chief_of_staff.core import anchor
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import WorkspaceSealed
from chief_of_staff.domain import inbox
from tests.http.console_support import SCRIPT, apply_outbound, escalate, login

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(store: Store) -> Store:
    """The Outbound blueprint, applied from the command line, and an escalation of the agency's."""
    await apply_outbound(store)
    await escalate(store, "Outbound", "SDR", "Buy the ad slot")
    return store


async def test_the_page_shows_the_newest_rows_with_actor_and_channel_and_the_anchor_holding(
    store: Store, client: httpx.AsyncClient
) -> None:
    await login(store, client)
    page = await client.get("/audit")
    assert page.status_code == 200
    text = page.text
    assert "decision.open" in text and "agency:Outbound" in text and ">agency<" in text
    assert ">verified<" in text and "operator" in text  # the blueprint, applied from the command line
    assert "its row still holds that hash" in text
    assert "Verify the whole chain" in text


async def test_agency_text_in_a_row_is_shown_escaped(store: Store, client: httpx.AsyncClient) -> None:
    async with store.write() as tx:
        await inbox.add_task(tx, Actor("agency:Outbound", "agency"), title=SCRIPT, agency="Outbound", source="agency")
    await login(store, client)
    text = (await client.get("/audit")).text
    assert SCRIPT not in text and "&lt;script&gt;" in text


async def test_older_rows_page_back_by_row_id_and_a_bad_page_is_refused(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        for number in range(60):
            await inbox.add_task(tx, Actor("agency:Outbound", "agency"), title=f"T{number}", agency="Outbound")
    await login(store, client)
    newest = await client.get("/audit")
    assert "50 rows, newest first" in newest.text and 'href="/audit?before=' in newest.text
    older_at = newest.text.split('href="/audit?before=')[1].split('"')[0]
    older = await client.get(f"/audit?before={older_at}")
    assert older.status_code == 200 and "Older rows" in older.text
    assert f"<td>{int(older_at) - 1}</td>" in older.text
    bad = await client.get("/audit?before=DROP")
    assert bad.status_code == 400 and "send a row id" in bad.text


async def test_verify_walks_the_chain_and_a_tampered_row_shows_the_break(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client)
    fine = await client.post("/audit/verify", data={"csrf": csrf})
    assert fine.status_code == 200 and "The audit chain verifies" in fine.text
    with sqlite3.connect(store.path) as db:  # someone with the file rewrites history behind the triggers
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        db.execute("UPDATE audit_log SET actor = 'someone else' WHERE id = 2")
    broken = await client.post("/audit/verify", data={"csrf": csrf})
    assert broken.status_code == 200
    assert "BROKEN at row 2" in broken.text and "altered after it was written" in broken.text
    assert "chief-of-staff audit repair" in broken.text
    refused = await client.post("/audit/anchor", data={"csrf": csrf}, follow_redirects=True)
    assert "No anchor was written" in refused.text


async def test_a_row_altered_behind_the_head_is_not_said_to_stop_changes(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The anchored head still holds, so the store takes changes: the verdict says so, and that repair mends no row."""
    csrf = await login(store, client)
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        db.execute("UPDATE audit_log SET subject = 'forged' WHERE id = 2")
    broken = await client.post("/audit/verify", data={"csrf": csrf})
    assert "BROKEN at row 2" in broken.text
    assert "Changes are refused" not in broken.text and "still accepts changes" in broken.text
    assert "no repair rewrites a broken row" in broken.text
    async with store.write() as tx:  # what the page says: the workspace still takes a change
        await inbox.add_task(tx, Actor("agency:Outbound", "agency"), title="After", agency="Outbound")


async def test_a_workspace_refusing_changes_is_said_to_refuse_them(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client)
    with sqlite3.connect(store.path) as db:  # the anchored head cut off: the next commit seals the store
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        db.execute("DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)")
    with pytest.raises(WorkspaceSealed):
        async with store.write() as tx:
            await inbox.add_task(tx, Actor("agency:Outbound", "agency"), title="Refused", agency="Outbound")
    verdict = await client.post("/audit/verify", data={"csrf": csrf})
    assert "Changes are refused until the operator runs `chief-of-staff audit repair`" in verdict.text


async def test_a_planted_time_is_shown_as_found_not_a_server_error(store: Store, client: httpx.AsyncClient) -> None:
    await login(store, client)
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        db.execute("UPDATE audit_log SET at = 'yesterday' WHERE id = 1")
    head = anchor.read_anchor(store.anchor)
    assert head is not None
    store.anchor.path.write_text(json.dumps({"row_id": head.row_id, "hash": head.hash, "at": "soon"}))
    page = await client.get("/audit")
    assert page.status_code == 200
    assert "&#39;yesterday&#39; (not a time this log writes)" in page.text
    assert "&#39;soon&#39; (not a time this log writes)" in page.text


async def test_anchoring_writes_the_verified_head_to_the_anchor_file(
    store: Store, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    csrf = await login(store, client)
    store.anchor.path.unlink()  # the anchor file was moved away
    assert "none yet" in (await client.get("/audit")).text
    done = await client.post("/audit/anchor", data={"csrf": csrf}, follow_redirects=True)
    assert "Audit chain verifies" in done.text and "anchored row" in done.text
    written = anchor.read_anchor(store.anchor)
    async with store.read() as tx:
        head = await tx.one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    assert written is not None and head is not None and (written.row_id, written.hash) == (head["id"], head["hash"])


async def test_acts_without_the_csrf_token_are_refused(store: Store, client: httpx.AsyncClient) -> None:
    await login(store, client)
    store.anchor.path.unlink()
    for path in ("/audit/verify", "/audit/anchor"):
        answer = await client.post(path, data={"csrf": "forged"})
        assert answer.status_code == 403, path
    assert not store.anchor.path.exists()


async def test_the_page_needs_a_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/audit")
    assert answer.status_code == 401 and "Log in" in answer.text

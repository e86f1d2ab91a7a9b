"""The console's Audit page: the chain's standing, the newest rows with who made them and on which channel.

Loading the page reads only the newest rows (by the primary key) and compares the anchor with the row it
names: both cost the same at any size of log. Walking the whole chain costs a read of every row (seconds for a
million here), so it is a button (`POST /audit/verify`), as `chief-of-staff audit verify` is a
command. "Anchor the head" writes the verified head to the anchor file (`chief-of-staff audit anchor`);
a commit moves the anchor too, so this matters after the anchor file was moved or removed. Neither changes
the workspace; a broken chain is shown, never repaired here (`chief-of-staff audit repair` is a decision
for the terminal, where the operator reads what it found).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chief_of_staff.core import anchor, audit
from chief_of_staff.core.anchor import AnchorCheck, AnchorRefused
from chief_of_staff.core.db import Tx
from chief_of_staff.domain import workspace
from chief_of_staff.domain.console_access import ConsoleSession
from chief_of_staff.http import console_tables
from chief_of_staff.http.console_kit import ConsoleCore, Refused

ROWS = 50
DETAIL_CHARS = 160


def routes(core: ConsoleCore) -> list[Route]:
    async def audit_page(request: Request) -> Response:
        session = await core.session(request)
        return await _page(core, request, session, check=None)

    async def verify(request: Request) -> Response:
        session = await core.session(request)
        await core.checked_form(request, session)
        async with core.store.read() as tx:
            result = await anchor.check(tx, core.store.anchor)
        return await _page(core, request, session, check=result)

    async def anchor_head(request: Request) -> Response:
        session = await core.session(request)
        await core.checked_form(request, session)
        result = await anchor.export(core.store, core.store.anchor)
        if not result.ok:
            said = f"No anchor was written: {_words(result, core.store.refusal)}"
            return core.refused(request, session, said, "/audit")
        return core.done(request, session, f"Audit chain verifies ({result.chain.rows} rows); {result.note}.", "/audit")

    return [
        core.route("/audit", audit_page),
        core.route("/audit/verify", verify, "POST"),
        core.route("/audit/anchor", anchor_head, "POST"),
    ]


async def _page(core: ConsoleCore, request: Request, session: ConsoleSession, check: AnchorCheck | None) -> Response:
    before = _before(request.query_params.get("before", ""))
    async with core.store.read() as tx:
        ws = await workspace.get(tx)
        rows = await audit.newest_rows(tx, before=before, limit=ROWS)
        head = await audit.head_id(tx)
        anchored, anchor_problem = await _anchor_standing(tx, core)
    context: dict[str, Any] = {
        "workspace": ws,
        "rows": rows,
        "head": head,
        "anchored": anchored,
        "anchor_problem": anchor_problem,
        "anchor_path": str(core.store.anchor.path),
        "check": check,
        "check_words": None if check is None else _words(check, core.store.refusal),
        "older": rows[-1].id if len(rows) == ROWS and rows[-1].id > 1 else None,
        "paged": before is not None,
        "local": lambda stamp: _local(stamp, ws.timezone),
        "detail_chars": DETAIL_CHARS,
        "title": "Audit",
        "page": "audit",
    }
    return core.page(request, "audit.html", session, context)


async def _anchor_standing(tx: Tx, core: ConsoleCore) -> tuple[anchor.Anchor | None, str | None]:
    """The anchor and what is wrong with it (None when its row still holds its hash): one row read."""
    try:
        found = anchor.read_anchor(core.store.anchor)
    except AnchorRefused as refused:
        return None, str(refused)
    if found is None:
        return None, None
    return found, await anchor.compare(tx, found)


def _before(sent: str) -> int | None:
    """The `before` row id of an older page, or a 400 page saying what to send."""
    if not sent:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", sent):
        raise Refused(400, "No such page", f"before: send a row id (a whole number), not {sent[:40]!r}.")
    return int(sent)


def _local(stamp: object, timezone: str) -> str:
    """A row's (or the anchor's) time in the workspace's zone; one that is not a stored time is shown as found.

    This page shows a log someone may have edited by hand: a planted time must be seen, not answer 500.
    """
    try:
        return console_tables.local_time(str(stamp), timezone)
    except (TypeError, ValueError):
        return f"{str(stamp)[:40]!r} (not a time this log writes)"


def _words(check: AnchorCheck, refusal: str | None) -> str:
    """The verdict of a full check in a sentence, as `chief-of-staff audit verify` prints it.

    `refusal` is the store's own (Store.refusal): changes are refused only when the anchored head or the
    append-only triggers did not hold. A row altered further back leaves the head intact, so the workspace
    still takes changes, and `audit repair` records the break but never mends it; the sentence says which.
    """
    chain = check.chain
    if check.ok:
        return f"The audit chain verifies: {chain.rows} rows, head {chain.head_hash[:16]}…; {check.note}."
    said = []
    if not chain.ok:
        said.append(f"The audit chain is BROKEN at row {chain.first_bad_id}: {chain.problem}.")
    if check.problem is not None:
        said.append(f"The anchor FAILS: {check.problem}.")
    if refusal is not None:
        said.append("Changes are refused until the operator runs `chief-of-staff audit repair` in a terminal.")
    else:
        said.append(
            "The workspace still accepts changes: its anchored head holds. Keep this file as evidence; "
            "`chief-of-staff audit repair` in a terminal records what was found, but no repair rewrites a broken row."
        )
    return " ".join(said)

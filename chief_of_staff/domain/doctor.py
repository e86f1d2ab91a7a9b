"""`chief-of-staff doctor`: what this installation runs on, and whether the workspace is at risk.

Risks are warnings, never failures: the operator decides. Doctor reads the tables itself (webhook
health included) rather than asking the layers above, and it writes only to prune the rows of
server processes that are gone, which a sealed workspace does not let it do.

SQLite before 3.51.3 has the WAL-reset bug: two connections in different processes that
write or checkpoint at the same moment can, rarely, corrupt a WAL database. One server
per workspace never meets it, so doctor warns only when the library is old AND more than
one live server process has this workspace open.

`repair` is the operator's answer to a workspace that refuses writes (core.db): it recreates the
append-only triggers, anchors the log on its current head and records what it found as an audit row.
"""

from __future__ import annotations

import shlex
import sqlite3
import stat
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from chief_of_staff.core import anchor, audit, db, files, ids, processes
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import OperatorActRefused

WAL_RESET_FIXED = (3, 51, 3)
REPAIR_HINT = db.REPAIR_HINT


@dataclass
class DoctorReport:
    versions: dict[str, str]
    workspace: Path
    journal_mode: str | None = None
    schema_version: int | None = None
    audit_rows: int | None = None
    audit: str | None = None
    server_processes: int | None = None
    warnings: list[str] = field(default_factory=list)


def versions() -> dict[str, str]:
    """Python, the mcp SDK and the SQLite library this process links against."""
    try:
        mcp_version = metadata.version("mcp")
    except metadata.PackageNotFoundError:
        mcp_version = "not installed"
    return {"python": sys.version.split()[0], "mcp": mcp_version, "sqlite": sqlite3.sqlite_version}


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


async def examine(store: Store) -> DoctorReport:
    """Read the workspace's vital signs and risks; prunes server rows of processes that are gone (its only write)."""
    report = DoctorReport(versions(), store.path)
    async with store.read() as tx:
        report.journal_mode = str(await tx.scalar("PRAGMA journal_mode"))
        report.schema_version = int(await tx.scalar("SELECT max(version) FROM schema_migrations") or 0)
        report.audit_rows = int(await tx.scalar("SELECT count(*) FROM audit_log") or 0)
        report.audit, audit_warnings = await _audit_health(tx, store)
        risks = await authority_risks(tx)
    # A sealed store may not write: it counts the live processes in a unit that is rolled back.
    async with store.write() if store.refusal is None else store.trial() as tx:
        report.server_processes = await processes.live_servers(tx)
    report.warnings += audit_warnings + risks + file_risks(store)
    if store.refusal is not None:
        report.warnings.append(f"this workspace refuses every change until you run `{REPAIR_HINT}`.")
    sqlite_version = report.versions["sqlite"]
    if _version_tuple(sqlite_version) < WAL_RESET_FIXED and report.server_processes > 1:
        fixed = ".".join(map(str, WAL_RESET_FIXED))
        report.warnings.append(
            f"SQLite {sqlite_version} is older than {fixed}, which fixed the WAL-reset bug, and "
            f"{report.server_processes} server processes have this workspace open. Two processes writing "
            f"one WAL file can, rarely, corrupt it. Run one server per workspace (close the other clients), "
            f"or use a Python built with SQLite {fixed} or later."
        )
    return report


async def _audit_health(tx: Tx, store: Store) -> tuple[str, list[str]]:
    """One line on the chain and its anchor, and a warning for each thing that does not hold."""
    checked = await anchor.check(tx, store.anchor)  # the whole chain, then the anchored row
    warnings = []
    if not checked.chain.ok:
        warnings.append(
            f"the audit chain is broken at row {checked.chain.first_bad_id}: {checked.chain.problem}. "
            "Rows were changed outside the server; `chief-of-staff audit verify` shows it again."
        )
    if checked.problem is not None:
        warnings.append(f"the audit anchor does not hold: {checked.problem}.")
    elif checked.anchor is None and await tx.scalar("SELECT 1 FROM audit_log LIMIT 1"):
        warnings.append(
            f"the audit log has no anchor ({store.anchor.path}), so rows deleted from its end would go "
            "unseen. The next change writes one, or run `chief-of-staff audit anchor` now."
        )
    missing = await db.missing_triggers(tx)
    if missing:
        warnings.append(
            f"append-only triggers are missing or changed: {', '.join(missing)}. The rows they guard could "
            f"have been rewritten or deleted; `{REPAIR_HINT}` recreates them."
        )
    state = "verifies" if checked.chain.ok else f"BROKEN at row {checked.chain.first_bad_id}"
    if checked.problem is not None:
        held = "the anchor FAILS"
    elif checked.anchor is None:
        held = "no anchor"
    else:
        held = f"anchored at row {checked.anchor.row_id}"
    return f"chain {state}, {held}", warnings


async def authority_risks(tx: Tx) -> list[str]:
    """Unbounded authority: grants with no period budget, operator tokens that never expire, failing webhooks."""
    warnings = []
    unbounded = await tx.all(
        "SELECT g.id, g.capability, a.name AS agency FROM grants AS g JOIN agencies AS a ON a.id = g.agency_id "
        "WHERE g.status = 'active' AND g.mode != 'approve' AND (g.expires_at IS NULL OR g.expires_at > ?) "
        "AND NOT EXISTS (SELECT 1 FROM grant_budgets AS b WHERE b.grant_id = g.id) ORDER BY g.id",
        (tx.now_text,),
    )
    for row in unbounded:
        label = ids.format_id("grant", row["id"])
        warnings.append(
            f"grant {label} ({row['capability']} for {row['agency']}) has no period budget: nothing limits how "
            f"often it acts or what it spends in a day, week or month. Add one, e.g. "
            f"`chief-of-staff grant-update {label} --day-count N`."
        )
    tokens = await tx.all(
        "SELECT id, label FROM access_tokens WHERE kind = 'operator' AND revoked_at IS NULL "
        "AND expires_at IS NULL ORDER BY id"
    )
    for row in tokens:
        label = ids.format_id("token", row["id"])
        named = f" ({row['label']!r})" if row["label"] else ""
        warnings.append(
            f"operator token {label}{named} never expires: whoever copies it is the operator for good. Revoke it "
            f"(`chief-of-staff token revoke {label}`) and make one with --expires-in-days."
        )
    failing = await tx.all(
        "SELECT id, consecutive_failures, disabled_at FROM webhook_endpoints WHERE removed_at IS NULL "
        "AND (disabled_at IS NOT NULL OR consecutive_failures > 0) ORDER BY id"
    )
    for row in failing:
        label = ids.format_id("webhook_endpoint", row["id"])
        how = "was disabled after failing" if row["disabled_at"] else "is failing"
        warnings.append(
            f"webhook {label} {how} ({row['consecutive_failures']} deliveries in a row): you may be missing "
            f"decisions and briefs. See `chief-of-staff notify list`; `chief-of-staff notify test {label}` tries it."
        )
    return warnings


def file_risks(store: Store) -> list[str]:
    """The workspace file, its sidecars and its anchor, where others than the owner may read them."""
    paths = [store.path, Path(f"{store.path}-wal"), Path(f"{store.path}-shm"), store.anchor.path]
    exposed = [path for path in paths if path.exists() and files.readable_by_others(path)]
    if not exposed:
        return []
    modes = ", ".join(f"{path.name} ({stat.S_IMODE(path.stat().st_mode):04o})" for path in exposed)
    return [
        f"other users of this machine can read the workspace's files: {modes}. They hold your business and "
        "the digests of its tokens. Run: chmod 600 " + " ".join(shlex.quote(str(path)) for path in exposed)
    ]


@dataclass(frozen=True)
class Repair:
    """What `repair` found and did: the problems, the triggers it recreated, the row the anchor now holds."""

    found: list[str]
    restored: list[str]
    anchored_row: int


async def repair(store: Store, actor: Actor) -> Repair:
    """Recreate missing append-only triggers, anchor the log on its current head, and record what was found.

    Only the verified channel repairs: it accepts the log as it stands, which is the operator's call.
    Nothing rewrites history; a broken chain stays broken and is recorded as found.
    """
    if actor.channel != "verified":
        raise OperatorActRefused(f"Repairing the audit log is for the operator's terminal: {REPAIR_HINT}")
    async with store.read() as tx:
        checked = await anchor.check(tx, store.anchor)
        head = await tx.one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    found: list[str] = []
    if checked.problem is not None:
        found.append(checked.problem)
    if not checked.chain.ok:
        found.append(f"the chain is broken at row {checked.chain.first_bad_id}: {checked.chain.problem}")
    async with store.repair() as tx:
        restored = await db.restore_triggers(tx)
        if restored:
            found.append(f"triggers missing or changed: {', '.join(restored)}")
        detail: dict[str, Any] = {
            "found": found,
            "triggers_restored": restored,
            "anchor_was": None if checked.anchor is None else [checked.anchor.row_id, checked.anchor.hash],
            "head_was": None if head is None else [head["id"], head["hash"]],
        }
        row = await audit.append(tx, actor, "audit.repair", "audit_log", detail)
    return Repair(found, restored, row)


def render(report: DoctorReport) -> str:
    """The report as aligned lines, warnings last."""
    rows = [
        ("python", report.versions["python"]),
        ("mcp SDK", report.versions["mcp"]),
        ("SQLite library", report.versions["sqlite"]),
        ("workspace", str(report.workspace)),
    ]
    if report.schema_version is None:
        rows.append(("", "not created yet; run `chief-of-staff init`"))
    else:
        rows += [
            ("journal mode", str(report.journal_mode)),
            ("schema version", str(report.schema_version)),
            ("audit rows", str(report.audit_rows)),
            ("audit", str(report.audit)),
            ("server processes", str(report.server_processes)),
        ]
    lines = [f"{label:17} {value}".rstrip() for label, value in rows]
    lines += [f"WARNING: {warning}" for warning in report.warnings]
    return "\n".join(lines) + "\n"

"""`chief-of-staff doctor`: what this installation runs on, and whether the workspace is at risk.

SQLite before 3.51.3 has the WAL-reset bug: two connections in different processes that
write or checkpoint at the same moment can, rarely, corrupt a WAL database. One server
per workspace never meets it, so doctor warns only when the library is old AND more than
one live server process has this workspace open.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from chief_of_staff.core import processes
from chief_of_staff.core.db import Store

WAL_RESET_FIXED = (3, 51, 3)


@dataclass
class DoctorReport:
    versions: dict[str, str]
    workspace: Path
    journal_mode: str | None = None
    schema_version: int | None = None
    audit_rows: int | None = None
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
    """Read the workspace's vital signs; prunes server rows of processes that are gone (its only write)."""
    report = DoctorReport(versions(), store.path)
    async with store.write() as tx:
        report.journal_mode = str(await tx.scalar("PRAGMA journal_mode"))
        report.schema_version = int(await tx.scalar("SELECT max(version) FROM schema_migrations") or 0)
        report.audit_rows = int(await tx.scalar("SELECT count(*) FROM audit_log") or 0)
        report.server_processes = await processes.live_servers(tx)
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
            ("server processes", str(report.server_processes)),
        ]
    lines = [f"{label:17} {value}".rstrip() for label, value in rows]
    lines += [f"WARNING: {warning}" for warning in report.warnings]
    return "\n".join(lines) + "\n"

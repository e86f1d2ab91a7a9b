"""The workspace: one operator's business, one row of settings."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chief_of_staff.core import audit
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import View

# Chat-channel operator acts may add at most this much money exposure per rolling window (Trust).
DEFAULT_CHAT_ALLOWANCE_CENTS = 10_000
DEFAULT_CHAT_WINDOW_DAYS = 7


class Workspace(View):
    name: str
    timezone: str
    currency: str
    chat_allowance_cents: int
    chat_window_days: int = DEFAULT_CHAT_WINDOW_DAYS
    daily_brief_at: str = "08:00"


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"timezone: {name!r} is not an IANA time zone; send one like Europe/Berlin or America/New_York."
        ) from None
    return name


def detect_timezone() -> str:
    """The machine's IANA zone if it can be told, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for candidate in candidates:
        if candidate:
            try:
                ZoneInfo(candidate)
                return candidate
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


async def get(tx: Tx) -> Workspace:
    """The workspace settings, read once per unit of work (nothing in a unit changes them)."""
    cached = tx.memo.get("workspace")
    if isinstance(cached, Workspace):
        return cached
    row = await tx.one(
        "SELECT name, timezone, currency, chat_allowance_cents, chat_window_days, daily_brief_at "
        "FROM workspace WHERE id = 1"
    )
    if row is None:
        raise InvalidInput("This workspace is not set up yet; run `chief-of-staff init` first.")
    tx.memo["workspace"] = space = Workspace(**dict(row))
    return space


async def ensure(
    tx: Tx,
    actor: Actor,
    *,
    name: str = "My workspace",
    timezone: str | None = None,
    currency: str = "USD",
    chat_allowance_cents: int = DEFAULT_CHAT_ALLOWANCE_CENTS,
) -> Workspace:
    """Create the workspace row if it is missing; an existing workspace is left as it is."""
    row = await tx.one("SELECT 1 FROM workspace WHERE id = 1")
    if row is None:
        zone = check_timezone(timezone or detect_timezone())
        await tx.run(
            "INSERT INTO workspace (id, name, timezone, currency, chat_allowance_cents, created_at) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            (name, zone, currency.upper(), chat_allowance_cents, tx.now_text),
        )
        await audit.append(
            tx,
            actor,
            "workspace.create",
            "workspace",
            {"name": name, "timezone": zone, "currency": currency.upper(), "chat_allowance_cents": chat_allowance_cents},
        )
    return await get(tx)

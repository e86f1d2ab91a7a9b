"""The workspace: one operator's business, one row of settings, which are the operator's to change.

`update_settings` is the only way they change after `init`. Any operator channel may make the chat
allowance stricter (fewer cents, or the same spread over a longer window) or rename the workspace;
widening the allowance, or moving the time zone or the currency (which move budget periods and what
an amount means), needs the verified channel. The agency channel changes nothing.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chief_of_staff.core import audit
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import InvalidInput, OperatorActRefused
from chief_of_staff.core.fields import MAX_CENTS, View, money
from chief_of_staff.domain import trust

# Chat-channel operator acts may add at most this much money exposure per rolling window (Trust).
DEFAULT_CHAT_ALLOWANCE_CENTS = 10_000
DEFAULT_CHAT_WINDOW_DAYS = 7
MAX_CHAT_WINDOW_DAYS = 90  # the column's CHECK (migration 0011)
_CURRENCY = re.compile(r"[A-Z]{3}")
SET_HINT = "chief-of-staff workspace set"


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


def check_currency(code: str) -> str:
    """A three-letter currency code, upper case (ISO 4217's shape; the code itself is the operator's)."""
    upper = code.strip().upper()
    if not _CURRENCY.fullmatch(upper):
        raise InvalidInput(f"currency: {code!r} is not a three-letter currency code; send one like USD or EUR.")
    return upper


def check_name(name: str) -> str:
    """A workspace name: 1 to 80 visible characters, whitespace runs read as one space."""
    text = " ".join(name.split())
    if not 1 <= len(text) <= 80 or any(unicodedata.category(ch).startswith("C") for ch in text):
        raise InvalidInput("name: send a workspace name of 1 to 80 visible characters.")
    return text


def check_allowance(cents: int, days: int) -> tuple[int, int]:
    if type(cents) is not int or not 0 <= cents <= MAX_CENTS:
        raise InvalidInput(f"chat_allowance_cents: send whole cents from 0 to {MAX_CENTS}, e.g. 10000 for 100.00.")
    if type(days) is not int or not 1 <= days <= MAX_CHAT_WINDOW_DAYS:
        raise InvalidInput(f"chat_window_days: send a whole number of days from 1 to {MAX_CHAT_WINDOW_DAYS}.")
    return cents, days


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


async def find(tx: Tx) -> Workspace | None:
    """The workspace settings, or None before `init`; read once per unit of work (update_settings re-reads)."""
    cached = tx.memo.get("workspace")
    if isinstance(cached, Workspace):
        return cached
    row = await tx.one(
        "SELECT name, timezone, currency, chat_allowance_cents, chat_window_days, daily_brief_at "
        "FROM workspace WHERE id = 1"
    )
    if row is None:
        return None
    tx.memo["workspace"] = space = Workspace(**dict(row))
    return space


async def get(tx: Tx) -> Workspace:
    """The workspace settings; refuses before `init`."""
    space = await find(tx)
    if space is None:
        raise InvalidInput("This workspace is not set up yet; run `chief-of-staff init` first.")
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
    """Create the workspace row if it is missing; an existing workspace is left as it is (see `ignored`)."""
    row = await tx.one("SELECT 1 FROM workspace WHERE id = 1")
    if row is None:
        name, currency = check_name(name), check_currency(currency)
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
            {
                "name": name,
                "timezone": zone,
                "currency": currency.upper(),
                "chat_allowance_cents": chat_allowance_cents,
            },
        )
    return await get(tx)


def ignored(space: Workspace, **given: str | None) -> list[str]:
    """The settings `init` was given but left alone because the workspace exists: "--name 'X' (it stays 'Y')"."""
    return [
        f"--{flag.replace('_', '-')} {value!r} (it stays {getattr(space, flag)!r})"
        for flag, value in given.items()
        if value is not None
    ]


def widens_allowance(before: Workspace, cents: int, days: int) -> bool:
    """Would (cents, days) let chat add more than `before` does in some stretch of time?

    Stricter means no more cents AND no shorter a window (or nothing at all): 100.00 per 14 days is
    stricter than 100.00 per 7. Anything else counts as wider, because it can be over some span:
    50.00 per day allows 350.00 in a week, and 200.00 per 14 days allows 200.00 in one day. (A few
    such changes are wider over no span, 10.00 per day against 100.00 per 7; chat leaves those to
    the verified channel too, rather than reason about spans.)
    """
    if cents == 0:
        return False
    return cents > before.chat_allowance_cents or days < before.chat_window_days


@dataclass(frozen=True)
class SettingsChange:
    """What update_settings did: the settings now, each changed field's (before, after), and notes to show."""

    workspace: Workspace
    changed: dict[str, tuple[Any, Any]]
    notes: list[str] = field(default_factory=list)


async def update_settings(
    tx: Tx,
    actor: Actor,
    *,
    name: str | None = None,
    timezone: str | None = None,
    currency: str | None = None,
    chat_allowance_cents: int | None = None,
    chat_window_days: int | None = None,
) -> SettingsChange:
    """Change the operator's settings; None leaves a field as it is. One audit row for the change."""
    trust.require_operator(actor, "Changing the workspace's settings", SET_HINT, console=True)
    before = await get(tx)
    wanted: dict[str, Any] = {
        "name": before.name if name is None else check_name(name),
        "timezone": before.timezone if timezone is None else check_timezone(timezone),
        "currency": before.currency if currency is None else check_currency(currency),
    }
    wanted["chat_allowance_cents"], wanted["chat_window_days"] = check_allowance(
        before.chat_allowance_cents if chat_allowance_cents is None else chat_allowance_cents,
        before.chat_window_days if chat_window_days is None else chat_window_days,
    )
    changed = {key: (getattr(before, key), value) for key, value in wanted.items() if getattr(before, key) != value}
    _check_channel(actor, before, changed, wanted)
    if not changed:
        return SettingsChange(before, {})
    await tx.run(
        "UPDATE workspace SET name = :name, timezone = :timezone, currency = :currency, "
        "chat_allowance_cents = :chat_allowance_cents, chat_window_days = :chat_window_days WHERE id = 1",
        wanted,
    )
    await audit.append(tx, actor, "workspace.update", "workspace", {key: list(pair) for key, pair in changed.items()})
    tx.memo.pop("workspace", None)
    after = await get(tx)
    notes = []
    if "timezone" in changed:
        notes.append(
            f"Budget periods (day, week, month) follow {after.timezone} from now on, no longer "
            f"{before.timezone}. Usage already counted stays in the period it was counted in, so the "
            "period that spans the change may hold more or less than one zone's period would."
        )
    return SettingsChange(after, changed, notes)


def _check_channel(
    actor: Actor, before: Workspace, changed: dict[str, tuple[Any, Any]], wanted: dict[str, Any]
) -> None:
    """Chat may rename and make the allowance stricter; what widens or moves needs the verified channel."""
    if actor.channel == "verified":
        return
    if "timezone" in changed or "currency" in changed:
        act, why = (
            "Moving the workspace's time zone or currency",
            "a new zone moves where budget periods start and end, and a new currency changes what every amount means",
        )
    elif widens_allowance(before, wanted["chat_allowance_cents"], wanted["chat_window_days"]):
        act = (
            f"Widening the chat allowance to {money(wanted['chat_allowance_cents'])} per "
            f"{wanted['chat_window_days']} days (from {money(before.chat_allowance_cents)} per "
            f"{before.chat_window_days})"
        )
        why = "chat may only make its own allowance stricter: fewer cents, or a longer window"
    else:
        return
    raise OperatorActRefused(
        f"{act} cannot be done in chat: {why}. Nothing was changed. The operator can do it on a verified "
        f"channel, from a terminal: {SET_HINT}"
    )

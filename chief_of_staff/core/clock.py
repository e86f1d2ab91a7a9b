"""The one clock. Everything that needs "now" asks a Clock, so tests never sleep."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(UTC)


def format_ts(instant: datetime) -> str:
    """Stored form: fixed-width UTC ISO-8601, so text order is time order."""
    return instant.astimezone(UTC).strftime(_TS_FORMAT)


def parse_ts(text: str) -> datetime:
    return datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)


def local_date(instant: datetime, timezone: str) -> date:
    """The calendar date at `instant` in the workspace timezone."""
    return instant.astimezone(ZoneInfo(timezone)).date()


def local_minute(instant: datetime, timezone: str) -> str:
    """An instant as the workspace's local date and minute, with its zone: "2026-11-23 09:00 (Europe/Berlin)"."""
    return f"{instant.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} ({timezone})"


def local_midnight_utc(day: date, timezone: str) -> datetime:
    """The UTC instant at which `day` starts in the workspace timezone."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)).astimezone(UTC)

"""The console's read-only tables: the inbox and the outcome log, their GET filters, and the log as CSV.

The filters are a page's query string, handed to the domain as they came (an empty field is no filter):
the domain checks them and says what is wrong (chief_of_staff.domain.inbox.list_tasks,
chief_of_staff.domain.outcomes.list_outcomes). The CSV is data from outside opened in a spreadsheet, so a
cell that would start a formula (= + - @, a tab or a carriage return) is prefixed with a single quote,
as OWASP advises against CSV injection.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import get_args
from zoneinfo import ZoneInfo

from chief_of_staff.core.clock import local_date, parse_ts
from chief_of_staff.core.db import Tx
from chief_of_staff.domain import inbox, outcomes
from chief_of_staff.domain.outcomes import OutcomeView

TASK_STATUSES = ("unfinished", *get_args(inbox.TaskStatus))
RESULTS: tuple[str, ...] = get_args(outcomes.Result)
TASK_FILTERS = ("status", "agency")
OUTCOME_FILTERS = ("agency", "result", "key_result", "since", "until", "text")
INBOX_ROWS = inbox.MAX_LIST
OUTCOME_PAGE = outcomes.MAX_PAGE
CSV_MAX_ROWS = 10_000
MAX_FILTER_CHARS = 500  # longer than any name or search the domain accepts; a longer one is refused whole
NOTE_CHARS = 80
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = (
    "id",
    "logged_at_utc",
    "agency",
    "role",
    "task",
    "result",
    "summary",
    "lesson",
    "cost_cents",
    "minutes_saved",
    "key_results_moved",
    "evidence",
)


def filters(query: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The filters sent: each named field's value, trimmed, when it is not empty."""
    sent = {name: query.get(name, "").strip() for name in names}
    return {name: value[:MAX_FILTER_CHARS] for name, value in sent.items() if value}


def short(text: str, chars: int = NOTE_CHARS) -> str:
    """The first `chars` characters of a note, on one line, with an ellipsis if it went on."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 1].rstrip() + "…"


def local_time(stamp: str, timezone: str) -> str:
    """A stored UTC timestamp as the workspace's local date and minute."""
    instant: datetime = parse_ts(stamp)
    return f"{local_date(instant, timezone).isoformat()} {instant.astimezone(ZoneInfo(timezone)):%H:%M}"


def moved(outcome: OutcomeView) -> str:
    """The key results an outcome moved, e.g. "KR1 +3; KR2 =12 (+2)"."""
    parts = []
    for metric in outcome.metrics:
        change = f"{metric.delta:+g}"
        parts.append(
            f"{metric.key_result} {change}"
            if metric.value is None
            else f"{metric.key_result} ={metric.value:g} ({change})"
        )
    return "; ".join(parts)


async def outcome_page(tx: Tx, sent: Mapping[str, str], *, before: str | None, limit: int) -> outcomes.OutcomePage:
    """One page of the outcome log through the domain, with the filters sent."""
    return await outcomes.list_outcomes(
        tx,
        agency=sent.get("agency"),
        key_result=sent.get("key_result"),
        result=sent.get("result"),
        since=sent.get("since"),
        until=sent.get("until"),
        text=sent.get("text"),
        before=before,
        limit=limit,
    )


async def outcomes_for_csv(tx: Tx, sent: Mapping[str, str]) -> tuple[list[OutcomeView], bool]:
    """The newest CSV_MAX_ROWS outcomes the filters match, and whether there were more."""
    rows: list[OutcomeView] = []
    before: str | None = None
    while len(rows) < CSV_MAX_ROWS:
        page = await outcome_page(tx, sent, before=before, limit=min(OUTCOME_PAGE, CSV_MAX_ROWS - len(rows)))
        rows += page.outcomes
        before = page.next
        if before is None:
            return rows, False
    return rows, True


def cell(value: object) -> str:
    """One CSV cell as text, with a would-be formula made plain text (a leading single quote)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def outcomes_csv(rows: Iterable[OutcomeView]) -> str:
    """The outcomes as CSV (RFC 4180, a header row first), every cell guarded against formula injection."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for o in rows:
        values = (
            o.id,
            o.created_at,
            o.agency,
            o.role,
            o.task_id,
            o.result,
            o.summary,
            o.lesson,
            o.cost_cents,
            o.minutes_saved,
            moved(o),
            " ".join(o.evidence),
        )
        writer.writerow([cell(value) for value in values])
    return out.getvalue()

"""Shared pydantic types for the boundary: money, text sizes, priorities, dates.

Domain modules define their own result models beside their functions and build
them from these primitives. Every model forbids unknown fields, so a typo in an
argument name is an error, never silently ignored.
"""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from chief_of_staff.core.errors import InvalidInput

# A hundred million dollars: far above any sane single budget, far below SQLite's integer range.
MAX_CENTS = 10_000_000_000
# Dates a person means: far enough back for a baseline, far enough ahead for any plan, and well inside
# what end-of-day and local-midnight arithmetic can compute in every timezone (9999-12-31 is not).
EARLIEST_DATE = date(1900, 1, 1)
DATES_BEFORE = date(2200, 1, 1)
DATE_RANGE = f"from {EARLIEST_DATE.isoformat()} to {date(DATES_BEFORE.year - 1, 12, 31).isoformat()}"

# Letters and marks that draw nothing although they are not in a format category: fillers, joiners,
# variation selectors.
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0")
# Control, format (zero-width, bidirectional), surrogate, private-use, unassigned, line and paragraph separators.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def is_unseen(ch: str) -> bool:
    """Is this character a control, zero-width, bidirectional or otherwise invisible one?"""
    return (
        unicodedata.category(ch) in _UNSEEN_CATEGORIES
        or ch in _INVISIBLE
        or "\ufe00" <= ch <= "\ufe0f"
        or "\U000e0100" <= ch <= "\U000e01ef"
    )


def first_unseen(text: str) -> str | None:
    """The first character of `text` that `is_unseen`, if any."""
    return next((ch for ch in text if is_unseen(ch)), None)


def name_text(value: str) -> str:
    """A name as stored and compared: NFKC (fullwidth letters become ASCII), whitespace runs as one space.

    Raises ValueError naming the first invisible or control character, which could make a second
    "Outbound" that reads the same as the first.
    """
    text = " ".join(unicodedata.normalize("NFKC", value).split())
    unseen = first_unseen(text)
    if unseen is not None:
        raise ValueError(
            f"holds the invisible or control character U+{ord(unseen):04X}; send the name as plain visible text"
        )
    return text


def name_key(name: str) -> str:
    """What two names are compared by: their NFKC form with ASCII case folded, exactly as SQLite's NOCASE
    index compares stored names (so "Straße" and "STRASSE" stay two names, as the index holds them)."""
    return unicodedata.normalize("NFKC", name).translate(_ASCII_LOWER)


def check_date_range(day: date) -> date:
    """A date within EARLIEST_DATE and DATES_BEFORE (a ValueError otherwise)."""
    if not EARLIEST_DATE <= day < DATES_BEFORE:
        raise ValueError(f"{day.isoformat()} is out of range; send a date {DATE_RANGE}")
    return day


class Model(BaseModel):
    """Base for every boundary model: unknown fields are refused, not dropped."""

    # Built on first use, not at import: most models are not used in a given process, and start-up is
    # the operator's wait each time the client starts the server.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class View(BaseModel):
    """Base for what tools return, when it is not also an input: built on first use, like Model."""

    model_config = ConfigDict(defer_build=True)


Cents = Annotated[
    StrictInt,
    Field(ge=0, le=MAX_CENTS, description="Whole cents: 1250 = 12.50"),
]


def _name_after(value: str) -> str:
    text = name_text(value)
    if not 1 <= len(text) <= 80:
        raise ValueError("send a name of 1 to 80 characters")
    return text


Name = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_name_after)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=4000)]
LongText = Annotated[str, Field(max_length=20_000)]
Priority = Literal["P0", "P1", "P2", "P3"]

# --- described input fields ------------------------------------------------------------------------
#
# What a model reads beside a field in tools/list, said once for every tool that takes it. tools/list is
# paid for on every turn, so each says what the field's name and type do not, in as few words as that takes.

# An agency or a role, as every tool takes them: "Outbound" or "A1", "SDR" or "R2".
NameOrId = Annotated[Name, Field(description="Name or id")]
Title = Annotated[ShortText, Field(description="One line")]
Details = Annotated[Text, Field(description="In full")]
Note = Annotated[Text, Field(description="For the record")]
TaskPriority = Annotated[Priority, Field(description="P0 urgent to P3 someday")]
GoalRef = Annotated[str, Field(min_length=1, max_length=24, description='e.g. "G1"')]
IdempotencyKey = Annotated[
    str, Field(min_length=1, max_length=100, description="Same key again returns the first result")
]

_CAPABILITY = re.compile(r"^[a-z][a-z0-9_-]{0,30}(\.[a-z0-9_*-]{1,30}){0,4}$")


def _check_capability(value: str) -> str:
    if not _CAPABILITY.match(value):
        raise ValueError("a capability is a lower-case dotted action kind such as email.send or spend.ads")
    return value


Capability = Annotated[str, Field(max_length=120), AfterValidator(_check_capability)]


def money(cents: int, currency: str = "") -> str:
    """How an amount of whole cents reads everywhere: 1250 -> "12.50", with a currency "12.50 USD"."""
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    text = f"{sign}{cents // 100:,}.{cents % 100:02d}"
    return f"{text} {currency}" if currency else text


def parse_local_date(value: Any, field: str = "date") -> date:
    """Accept exactly YYYY-MM-DD (a calendar date in the workspace timezone), within the date range."""
    if isinstance(value, date):
        day = value
    elif not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        raise InvalidInput(f"{field}: send a date as YYYY-MM-DD, e.g. 2026-12-31.")
    else:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"{field}: {value!r} is not a real calendar date; send YYYY-MM-DD.") from None
    try:
        return check_date_range(day)
    except ValueError as error:
        raise InvalidInput(f"{field}: {error}.") from None


def _date_before(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*", value):
        raise ValueError("send a date as YYYY-MM-DD, e.g. 2026-12-31")
    return value


LocalDate = Annotated[
    date, BeforeValidator(_date_before), AfterValidator(check_date_range), Field(description="Local day")
]


def checked_text(value: object, field: str, limit: int, *, required: bool = False, what: str = "text") -> str:
    """Stripped text of at most `limit` characters; `required` refuses empty text. Errors name the field."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: send {what} as text, not {type(value).__name__}.")
    text = value.strip()
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{field}: holds characters that are not valid text (lone surrogates); send plain UTF-8 text."
            ) from None
    if required and not text:
        raise InvalidInput(f"{field}: must not be empty; send {what}.")
    if len(text) > limit:
        raise InvalidInput(f"{field}: {len(text)} characters is too long; keep it to {limit} or fewer.")
    return text


def priority_rank(label: str) -> int:
    return int(label[1])


def priority_label(rank: int) -> str:
    return f"P{rank}"

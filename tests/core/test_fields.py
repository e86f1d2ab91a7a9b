"""Shared boundary types: names in one spelling, dates in a range every computation can handle."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import TypeAdapter, ValidationError

from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import LocalDate, Name, name_key, parse_local_date

NAME = TypeAdapter(Name)
LOCAL_DATE = TypeAdapter(LocalDate)


@pytest.mark.parametrize(
    ("spelling", "stored"),
    [
        ("Ｏｕｔｂｏｕｎｄ", "Outbound"),
        ("  Out   bound ", "Out bound"),
        ("ﬁnance", "finance"),
        ("Outbound", "Outbound"),
    ],
)
def test_names_are_kept_in_their_nfkc_spelling(spelling: str, stored: str) -> None:
    assert NAME.validate_python(spelling) == stored


@pytest.mark.parametrize(
    "spelling", ["Out\u200bbound", "Outbound\u202e", "Out\u2066bound", "Out\x00bound", "\ufeffSDR"]
)
def test_names_with_invisible_or_control_characters_are_refused(spelling: str) -> None:
    with pytest.raises(ValidationError, match="invisible or control character U\\+"):
        NAME.validate_python(spelling)


def test_names_compare_by_nfkc_and_ascii_case_as_the_index_does() -> None:
    assert name_key("ＯＵＴＢＯＵＮＤ") == name_key("outbound") == name_key("Outbound")
    assert name_key("Straße") != name_key("STRASSE")  # SQLite's NOCASE folds ASCII only, and so do names
    assert name_key("Outbound") != name_key("Outbound 2")


@pytest.mark.parametrize("day", ["9999-12-31", "2200-01-01", "1899-12-31", "0001-01-01"])
def test_dates_outside_the_range_are_refused_with_the_range(day: str) -> None:
    with pytest.raises(ValidationError, match="send a date from 1900-01-01 to 2199-12-31"):
        LOCAL_DATE.validate_python(day)
    with pytest.raises(InvalidInput, match=r"^due_on: .* out of range; send a date from 1900-01-01 to 2199-12-31"):
        parse_local_date(day, "due_on")
    with pytest.raises(InvalidInput, match="out of range"):
        parse_local_date(date.fromisoformat(day), "due_on")


@pytest.mark.parametrize("day", ["1900-01-01", "2026-12-31", "2199-12-31"])
def test_dates_inside_the_range_are_taken(day: str) -> None:
    assert LOCAL_DATE.validate_python(day) == parse_local_date(day) == date.fromisoformat(day)

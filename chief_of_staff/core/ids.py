"""Short readable ids (G3, T42, D7) over integer primary keys."""

from __future__ import annotations

import re
from typing import Final

from chief_of_staff.core.errors import InvalidInput

PREFIXES: Final[dict[str, str]] = {
    "agency": "A",
    "role": "R",
    "goal": "G",
    "key_result": "KR",
    "grant": "GR",
    "authorization": "AU",
    "decision": "D",
    "task": "T",
    "routine": "RT",
    "outcome": "O",
    "lesson": "L",
    "change_set": "CS",
    "token": "TK",
    "webhook_endpoint": "NE",
}

_ID_PATTERN = re.compile(r"^\s*([A-Za-z]*)\s*(\d{1,18})\s*$")


def format_id(kind: str, number: int) -> str:
    return f"{PREFIXES[kind]}{number}"


def parse_id(kind: str, text: str | int, *, field: str | None = None) -> int:
    """Accept "T42", "t42" or "42" for a task id; refuse another kind's prefix."""
    prefix = PREFIXES[kind]
    label = field or f"{kind}_id"
    if isinstance(text, bool):
        raise InvalidInput(f"{label}: send an id like {prefix}12, not a boolean.")
    if isinstance(text, int):
        if text < 1:
            raise InvalidInput(f"{label}: ids are positive, like {prefix}12.")
        return text
    match = _ID_PATTERN.match(text)
    if match is None or (match.group(1) and match.group(1).upper() != prefix):
        raise InvalidInput(f"{label}: {text!r} is not a {kind.replace('_', ' ')} id; send one like {prefix}12.")
    number = int(match.group(2))
    if number < 1:
        raise InvalidInput(f"{label}: ids are positive, like {prefix}12.")
    return number

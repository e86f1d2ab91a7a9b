"""Prompt templates: markdown files in `prompts/` with a small front matter.

The front matter holds a title, a description and the arguments; the body may
use {placeholders}. Argument values are substituted as data: a value that
itself contains braces is never expanded again.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from chief_of_staff.core.errors import InvalidInput

_NAME = re.compile(r"^[a-z_]+$")
# Placeholders the server fills from the workspace when the prompt is asked for.
LIVE_PLACEHOLDERS = ("playbook",)
MAX_ARGUMENT_LENGTH = 200


@dataclass(frozen=True)
class PromptArg:
    name: str
    description: str
    required: bool


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    title: str
    description: str
    arguments: tuple[PromptArg, ...]
    body: str


def prompts_folder() -> Traversable:
    """Installed wheels carry the prompts inside the package; a source checkout has them at the top."""
    shipped = resources.files("chief_of_staff").joinpath("_prompts")
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "prompts"


def _parse_front_matter(text: str, source: str) -> tuple[dict[str, str], list[dict[str, str]], str]:
    if not text.startswith("---\n"):
        raise ValueError(f"{source}: a prompt file starts with a '---' front matter block")
    header, _, body = text[4:].partition("\n---\n")
    fields: dict[str, str] = {}
    arguments: list[dict[str, str]] = []
    for line in header.splitlines():
        stripped = line.strip()
        if not stripped or stripped == "arguments:":
            continue
        key, _, value = stripped.removeprefix("- ").partition(":")
        if stripped.startswith("- "):
            arguments.append({})
        if line.startswith(" "):
            arguments[-1][key.strip()] = value.strip()
        else:
            fields[key.strip()] = value.strip()
    return fields, arguments, body.strip() + "\n"


def _load_one(entry: Traversable) -> PromptTemplate:
    name = entry.name.removesuffix(".md")
    if not _NAME.match(name):
        raise ValueError(f"prompt file name {entry.name!r} must be lower_snake_case")
    fields, arguments, body = _parse_front_matter(entry.read_text("utf-8"), entry.name)
    args = tuple(
        PromptArg(a["name"], a.get("description", ""), a.get("required", "false") == "true") for a in arguments
    )
    return PromptTemplate(name, fields.get("title", name), fields["description"], args, body)


def load_prompts() -> list[PromptTemplate]:
    folder = prompts_folder()
    return sorted(
        (_load_one(entry) for entry in folder.iterdir() if entry.name.endswith(".md")),
        key=lambda template: template.name,
    )


def _clauses(values: dict[str, str]) -> dict[str, str]:
    """Phrases the templates use around optional arguments."""
    agency, role = values.get("agency", ""), values.get("role", "")
    return {
        "role_clause": f" in the {role} seat" if role else "",
        "role_arg": f' and role "{role}"' if role else "",
        "viewer": f"agency:{agency}/{role}" if role else f"agency:{agency}",
        "viewer_clause": f" for {values['viewer']}" if values.get("viewer") else "",
        "function_clause": f" for {values['function']}" if values.get("function") else "",
        "days_or_default": values.get("days") or "7",
    }


def render_prompt(template: PromptTemplate, arguments: dict[str, str], live: dict[str, str] | None = None) -> str:
    """Fill the template; unknown or oversized arguments are refused with what to send instead.

    `live` fills placeholders from the workspace (the agency's playbook): the server's, not the caller's.
    """
    known = {arg.name for arg in template.arguments}
    for name, value in arguments.items():
        if name not in known:
            expected = ", ".join(sorted(known)) or "no arguments"
            raise InvalidInput(f"{name}: the {template.name} prompt takes {expected}.")
        if len(value) > MAX_ARGUMENT_LENGTH:
            raise InvalidInput(f"{name}: keep it under {MAX_ARGUMENT_LENGTH} characters.")
    missing = [arg.name for arg in template.arguments if arg.required and not arguments.get(arg.name)]
    if missing:
        raise InvalidInput(f"{', '.join(missing)}: required by the {template.name} prompt.")
    values: dict[str, str] = defaultdict(str, {k: v.strip() for k, v in arguments.items()})
    values.update(_clauses(values))
    values.update(live or {})
    return template.body.format_map(values)

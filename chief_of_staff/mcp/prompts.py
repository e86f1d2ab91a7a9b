"""Prompt templates: markdown files in `prompts/` with a small front matter.

The front matter holds a title, a description and the arguments; the body may
use {placeholders}. Argument values are substituted as data: a value that
itself contains braces is never expanded again.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.prompts.base import PromptArgument
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS

from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError, InvalidInput
from chief_of_staff.domain import agencies

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


def _in_json(text: str) -> str:
    """Text as it stands inside a JSON string in a template (quotes and backslashes escaped)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _clauses(values: dict[str, str]) -> dict[str, str]:
    """Phrases the templates use around optional arguments.

    Calls in a template are written as JSON (`claim_next_task {{"agency": "{agency_json}"}}`), so the
    values that go inside them are escaped: a model, or a script, can send them exactly as they read.
    """
    agency, role = values.get("agency", ""), values.get("role", "")
    viewer = f"agency:{agency}/{role}" if role else f"agency:{agency}"
    return {
        "role_clause": f" in the {role} seat" if role else "",
        "agency_json": _in_json(agency),
        "role_json": f', "role": "{_in_json(role)}"' if role else "",
        "role_or_task_role": _in_json(role) if role else "<the task's role>",
        "viewer": _in_json(viewer),
        "viewer_clause": f" for {values['viewer']}" if values.get("viewer") else "",
        "viewer_json": _in_json(values.get("viewer") or "operator"),
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


class _TemplatePrompt(Prompt):
    """A prompt whose argument errors reach the client as invalid-params errors carrying our message.

    The SDK reports a missing argument as a ValueError and wraps any other exception from the
    render function in a generic "Error rendering prompt"; on 2026-07-28 connections a ValueError
    even becomes a bare "Internal server error". An MCPError passes through both unchanged.
    """

    async def render(self, arguments: dict[str, Any] | None, context: Any) -> Any:
        given = arguments or {}
        missing = [arg.name for arg in self.arguments or [] if arg.required and not given.get(arg.name)]
        if missing:
            raise MCPError(INVALID_PARAMS, f"{', '.join(missing)}: required by the {self.name} prompt; send it.")
        return await super().render(arguments, context)


async def _live_values(template: PromptTemplate, arguments: dict[str, str], store: Store) -> dict[str, str]:
    """The workspace's part of a prompt: today, the agency's playbook for a work session."""
    wanted = [name for name in LIVE_PLACEHOLDERS if f"{{{name}}}" in template.body]
    if not wanted:
        return {}
    async with store.read() as tx:
        return {"playbook": await agencies.playbook_digest(tx, arguments.get("agency", "").strip())}


def _prompt(template: PromptTemplate, state: Callable[[], Store]) -> Prompt:
    async def render(**arguments: str) -> str:
        try:
            render_prompt(template, arguments)  # the caller's arguments are checked before the workspace is read
            return render_prompt(template, arguments, await _live_values(template, arguments, state()))
        except ChiefOfStaffError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None

    return _TemplatePrompt(
        name=template.name,
        title=template.title,
        description=template.description,
        arguments=[
            PromptArgument(name=a.name, description=a.description, required=a.required) for a in template.arguments
        ],
        fn=render,
        context_kwarg=None,
    )


def register_prompts(server: MCPServer[Any], state: Callable[[], Store]) -> None:
    """Every template in `prompts/` as an MCP prompt."""
    for template in load_prompts():
        server.add_prompt(_prompt(template, state))

"""The Claude Code / Cowork plugin: its files parse, its skills name real tools, its servers run this package."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chief_of_staff import __version__
from chief_of_staff.core.config import DB_ENV
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.http.server import DEFAULT_PORT
from chief_of_staff.mcp.server import tool_specs

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugin"
SKILLS = sorted((PLUGIN / "skills").iterdir())
TOOLS = {spec.name for spec in tool_specs()}
SKILL_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def load_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def front_matter(path: Path) -> tuple[dict[str, str], str]:
    """The `key: value` lines between the opening and closing '---', and the body after them."""
    text = path.read_text("utf-8")
    assert text.startswith("---\n"), f"{path}: a skill starts with front matter"
    header, _, body = text[4:].partition("\n---\n")
    fields = {}
    for line in header.splitlines():
        key, sep, value = line.partition(": ")
        assert sep and key.isidentifier(), f"{path}: front matter line {line!r} is not `key: value`"
        # A plain YAML scalar may not hold ': ' or ' #', nor start with a quote or indicator.
        assert ": " not in value and " #" not in value and value[:1] not in "\"'[{>|*&!%@`", f"{path}: {key}"
        fields[key] = value
    return fields, body


def _schema_words(schema: Any) -> set[str]:
    """Every property name and enum value anywhere in a JSON schema."""
    words: set[str] = set()
    if isinstance(schema, dict):
        words |= set(schema.get("properties", {}))
        words |= {v for v in [*schema.get("enum", []), schema.get("const")] if isinstance(v, str)}
        for value in schema.values():
            words |= _schema_words(value)
    elif isinstance(schema, list):
        for item in schema:
            words |= _schema_words(item)
    return words


def vocabulary() -> set[str]:
    """The bare names a skill may put in backticks: tools, their fields and values, and blueprint names."""
    words = set(TOOLS) | {summary.name for summary in loader.list_blueprints()}
    for spec in tool_specs():
        words |= _schema_words(spec.input_model.model_json_schema())
        words |= _schema_words(spec.output_model.model_json_schema())
    return words


def test_plugin_manifest_names_the_plugin_at_this_version() -> None:
    manifest = load_json(PLUGIN / ".claude-plugin" / "plugin.json")

    assert manifest["name"] == "chief-of-staff" and manifest["version"] == __version__
    assert manifest["description"] and manifest["author"]["name"]


def test_marketplace_points_at_the_plugin_folder() -> None:
    marketplace = load_json(ROOT / ".claude-plugin" / "marketplace.json")
    plugin = load_json(PLUGIN / ".claude-plugin" / "plugin.json")

    assert SKILL_NAME.match(marketplace["name"]) and marketplace["owner"]["name"]
    (entry,) = marketplace["plugins"]
    assert entry["source"] == "./plugin" and (ROOT / entry["source"] / ".claude-plugin" / "plugin.json").is_file()
    assert (entry["name"], entry["version"]) == (plugin["name"], plugin["version"])


def test_the_local_server_is_chief_of_staff_serve() -> None:
    local = load_json(PLUGIN / ".mcp.json")["chief-of-staff"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]

    assert [local["command"], *local["args"]] == ["chief-of-staff", "serve"]
    assert scripts[local["command"]] == "chief_of_staff.cli.main:main"
    # Unset, the variable expands to "", which the server reads as "use the per-user data path".
    assert local["env"] == {DB_ENV: "${" + DB_ENV + ":-}"}


def test_the_remote_server_is_the_http_endpoint_with_a_bearer_token() -> None:
    remote = load_json(PLUGIN / ".mcp.json")["chief-of-staff-remote"]

    assert remote == {
        "type": "http",
        "url": f"http://127.0.0.1:{DEFAULT_PORT}/mcp",
        "headers": {"Authorization": "Bearer ${CHIEF_OF_STAFF_TOKEN}"},
    }


def test_the_plugin_declares_exactly_the_local_and_remote_servers() -> None:
    assert set(load_json(PLUGIN / ".mcp.json")) == {"chief-of-staff", "chief-of-staff-remote"}


@pytest.mark.parametrize("skill", SKILLS, ids=[s.name for s in SKILLS])
def test_a_skill_is_named_after_its_folder_and_says_when_to_use_it(skill: Path) -> None:
    fields, body = front_matter(skill / "SKILL.md")

    assert fields["name"] == skill.name and SKILL_NAME.match(skill.name) and len(skill.name) <= 64
    assert "Use when" in fields["description"] or "Use for" in fields["description"]
    assert len(fields["description"]) <= 1024 and body.lstrip().startswith("# ")


@pytest.mark.parametrize("skill", SKILLS, ids=[s.name for s in SKILLS])
def test_every_name_a_skill_puts_in_backticks_is_one_the_server_knows(skill: Path) -> None:
    _, body = front_matter(skill / "SKILL.md")
    names = {span for span in re.findall(r"`([^`\n]+)`", body) if re.fullmatch(r"[a-z][a-z0-9_]*", span)}

    assert names - vocabulary() == set()


@pytest.mark.parametrize(
    ("skill", "tools"),
    [
        (
            "set-up-an-agency",
            {"list_blueprints", "apply_blueprint", "set_agency", "set_role", "create_goal", "grant", "list_grants"},
        ),
        (
            "run-a-work-session",
            {
                "brief",
                "claim_next_task",
                "authorize",
                "settle",
                "release",
                "update_task",
                "request_decision",
                "complete_task",
                "log_outcome",
            },
        ),
        ("review-the-week", {"review", "record_review", "decide"}),
    ],
)
def test_each_skill_teaches_the_tools_of_its_workflow(skill: str, tools: set[str]) -> None:
    _, body = front_matter(PLUGIN / "skills" / skill / "SKILL.md")
    mentioned = set(re.findall(r"`([a-z_]+)`", body))

    assert tools <= mentioned <= vocabulary()
    assert tools <= TOOLS


def test_the_three_skills_are_there() -> None:
    assert [s.name for s in SKILLS] == ["review-the-week", "run-a-work-session", "set-up-an-agency"]

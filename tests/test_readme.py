"""The README tells the truth about the surface: the tool table is the registered tools, by activity
module, with operator acts starred; every command and action of the CLI is shown there."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from chief_of_staff.cli.main import build_parser
from chief_of_staff.mcp.server import TOOL_MODULES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")


def _tool_table() -> dict[str, list[str]]:
    section = README.split("| activity | tools |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in section.strip().splitlines()[1:]:  # past the |---|---| line
        activity, tools = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows[activity] = re.findall(r"`([a-z_]+)`(\\\*)?", tools)
    return {activity: [name + ("*" if star else "") for name, star in found] for activity, found in rows.items()}


def test_the_tool_table_is_the_registered_tools_by_activity() -> None:
    registered = {
        module.__name__.rsplit(".", 1)[1]: sorted(
            spec.name + ("*" if spec.operator_act else "") for spec in module.TOOLS
        )
        for module in TOOL_MODULES
    }
    assert {activity: sorted(tools) for activity, tools in _tool_table().items()} == registered


def test_the_tool_count_in_the_readme_is_right() -> None:
    count = sum(len(module.TOOLS) for module in TOOL_MODULES)
    assert f"**Tools** ({count})" in README


def _command_lines(parser: argparse.ArgumentParser, prefix: str = "chief-of-staff") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found += _command_lines(sub, f"{prefix} {name}")
    return found


def test_every_command_and_action_is_shown_in_the_readme() -> None:
    commands = _command_lines(build_parser())
    assert len(commands) > 25
    missing = [command for command in commands if not re.search(re.escape(command) + r"(?![\w-])", README)]
    assert missing == []

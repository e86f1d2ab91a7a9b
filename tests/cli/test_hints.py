"""Every command line the server names (in a refusal, a hint or a message) is one the real parser takes.

Refusals send the operator to a terminal; a hint that names a command that does not exist strands
them. The strings are read from the package's source: literals as they are, f-strings with every
placeholder standing for "1" (an id, a count or a name all parse as that).
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from chief_of_staff.cli.main import build_parser

PACKAGE = Path(__file__).resolve().parents[2] / "chief_of_staff"
# A command runs to the end of the text, or to what closes the code span or sentence around it.
COMMAND = re.compile(r"chief-of-staff (?:[a-z][\w-]*)(?:[^`\"'\n;)(]|\([^)]*\))*")
ENDINGS = (" or ", " and ", ", ", ". ", " to ", " (")


def _texts(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    parts_of_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if id(node) in parts_of_fstrings:
            continue
        if isinstance(node, ast.JoinedStr):
            parts = [value.value if isinstance(value, ast.Constant) else "1" for value in node.values]
            found.append((node.lineno, "".join(str(part) for part in parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def _commands(text: str) -> list[str]:
    commands = []
    for match in COMMAND.finditer(text):
        command = match.group(0)
        for ending in ENDINGS:
            command = command.split(ending)[0]
        commands.append(command.rstrip(" .,:"))
    return commands


def _named_commands() -> list[tuple[str, str]]:
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in _texts(ast.parse(path.read_text("utf-8"))):
            named += [(f"{path.relative_to(PACKAGE)}:{line}", command) for command in _commands(text)]
    return named


NAMED = _named_commands()


def test_the_package_names_commands_at_all() -> None:
    assert len(NAMED) > 30


@pytest.mark.parametrize(("where", "command"), NAMED, ids=[f"{w} {c}" for w, c in NAMED])
def test_a_named_command_line_parses(where: str, command: str) -> None:
    argv = shlex.split(command)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{where}: `{command}` is not a command the CLI takes (exit {exc.code})")


def _parses(command: str) -> bool:
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit:
        return False
    return True


def test_the_grant_command_a_refusal_names_makes_that_grant() -> None:
    from chief_of_staff.domain.authority.grants import GrantSpec, create_command

    spec = GrantSpec.model_validate(
        {
            "agency": "Out bound",
            "role": "SDR",
            "capability": "spend.ads",
            "mode": "notify",
            "per_action_cap_cents": 5000,
            "budgets": [{"period": "day", "max_count": 3, "max_cents": 9000}],
            "scope_allow": ["*.example.com"],
            "scope_deny": ["it's.gov"],
            "expires_on": "2027-01-31",
            "goal": "G1",
            "rationale": "the spring campaign",
            "on_timeout": "approve",
        }
    )
    command = create_command(spec)
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert (args.agency, args.role, args.capability, args.mode, args.cap_cents) == (
        "Out bound",
        "SDR",
        "spend.ads",
        "notify",
        5000,
    )
    assert (args.day_count, args.day_cents, args.allow, args.deny) == (3, 9000, ["*.example.com"], ["it's.gov"])
    assert (args.expires_on, args.goal, args.rationale, args.on_timeout) == (
        "2027-01-31",
        "G1",
        "the spring campaign",
        "approve",
    )


def test_the_grant_update_command_a_refusal_names_parses() -> None:
    from chief_of_staff.domain.authority.terms import BudgetSpec, GrantTerms, update_command

    before = GrantTerms(mode="approve", per_action_cap_cents=100, budgets=[BudgetSpec(period="week", max_count=5)])
    after = GrantTerms(
        mode="auto",
        per_action_cap_cents=None,
        scope_deny=["a b.gov"],
        rationale="why not",
        budgets=[BudgetSpec(period="week", max_count=50), BudgetSpec(period="month", max_cents=9)],
    )
    assert _parses(update_command("GR3", before, after))

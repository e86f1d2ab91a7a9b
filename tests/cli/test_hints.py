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


# --- every refusal names a command -------------------------------------------------------------------
#
# trust.require_operator, refuse_in_chat and draw_chat refuse an act and tell the operator where they can
# make it instead: that hint must be a command line, never "approve it somewhere". The hint argument is
# read from the source and followed through names, module constants and the functions that build it.

# The refusing function and the position of its hint argument.
REFUSALS = {"require_operator": 2, "refuse_in_chat": 3, "draw_chat": 4}
TREES = {path: ast.parse(path.read_text("utf-8")) for path in sorted(PACKAGE.rglob("*.py"))}


def _functions() -> list[ast.AsyncFunctionDef | ast.FunctionDef]:
    return [
        f for tree in TREES.values() for f in ast.walk(tree) if isinstance(f, ast.AsyncFunctionDef | ast.FunctionDef)
    ]


FUNCTIONS = _functions()


def _defined(name: str) -> list[ast.AST]:
    """Every module-level constant of the package with this name, and every function (read whole)."""
    found: list[ast.AST] = [f for f in FUNCTIONS if f.name == name]
    for tree in TREES.values():
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                found.append(node.value)
    return found


def _assigned(scope: ast.AST, name: str) -> list[ast.AST]:
    """The values a function assigns to `name`, tuple unpacking included."""
    values: list[ast.AST] = []
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                values.append(node.value)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                values += [
                    v for t, v in zip(target.elts, node.value.elts, strict=False) if getattr(t, "id", "") == name
                ]
    return values


def _passed(function: ast.AsyncFunctionDef | ast.FunctionDef, name: str) -> list[tuple[ast.AST, ast.AST]]:
    """What every caller in the package passes for `function`'s parameter `name`, with the caller's scope."""
    position = [arg.arg for arg in function.args.args].index(name)
    found: list[tuple[ast.AST, ast.AST]] = []
    for caller in FUNCTIONS:
        for call in ast.walk(caller):
            called = getattr(call, "func", None)
            if not isinstance(call, ast.Call) or getattr(called, "id", getattr(called, "attr", "")) != function.name:
                continue
            given = call.args[position] if len(call.args) > position else None
            given = given or next((k.value for k in call.keywords if k.arg == name), None)
            if given is not None:
                found.append((given, caller))
    return found


def _hint_text(node: ast.AST, scope: ast.AST, depth: int = 0) -> str:
    """What a hint expression can say, followed through local names, parameters, constants and builders."""
    if depth > 5:
        return ""
    if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
        return ast.unparse(node)  # a builder: what it joins is in its body
    if isinstance(node, ast.Name):
        if local := _assigned(scope, node.id):
            return " ".join(_hint_text(value, scope, depth + 1) for value in local)
        if isinstance(scope, ast.AsyncFunctionDef | ast.FunctionDef) and node.id in [a.arg for a in scope.args.args]:
            return " ".join(_hint_text(value, caller, depth + 1) for value, caller in _passed(scope, node.id))
        return " ".join(_hint_text(value, scope, depth + 1) for value in _defined(node.id))
    if isinstance(node, ast.Attribute):
        return " ".join(_hint_text(value, scope, depth + 1) for value in _defined(node.attr))
    if isinstance(node, ast.Call):
        called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        return " ".join(_hint_text(value, scope, depth + 1) for value in _defined(called))
    return ast.unparse(node)


def _refusal_hints() -> list[tuple[str, str]]:
    hints = []
    for path, tree in TREES.items():
        for function in [f for f in ast.walk(tree) if isinstance(f, ast.AsyncFunctionDef | ast.FunctionDef)]:
            for call in ast.walk(function):
                if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute | ast.Name):
                    continue
                name = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
                if name not in REFUSALS or function.name == name:
                    continue
                position = REFUSALS[name]
                node = call.args[position] if len(call.args) > position else None
                node = node or next((k.value for k in call.keywords if k.arg == "cli_hint"), None)
                assert node is not None, f"{path.relative_to(PACKAGE)}:{call.lineno} {name} without a hint"
                hints.append((f"{path.relative_to(PACKAGE)}:{call.lineno}", _hint_text(node, function)))
    return hints


HINTS = _refusal_hints()


def test_the_package_refuses_acts_in_many_places() -> None:
    assert len(HINTS) > 15


@pytest.mark.parametrize(("where", "hint"), HINTS, ids=[where for where, _ in HINTS])
def test_every_refusal_names_a_command_the_operator_can_run(where: str, hint: str) -> None:
    assert "chief-of-staff" in hint, f"{where}: the refusal's hint names no command: {hint}"


# --- the commands the prompts and skills name ---------------------------------------------------------

DOCS = [*sorted((PACKAGE.parent / "prompts").glob("*.md")), *sorted((PACKAGE.parent / "plugin").rglob("*.md"))]
DOC_COMMANDS = [
    (f"{path.relative_to(PACKAGE.parent)}", command)
    for path in DOCS
    for span in re.findall(r"`([^`\n]+)`", path.read_text("utf-8"))
    for command in _commands(span)
]


@pytest.mark.parametrize(("where", "command"), DOC_COMMANDS, ids=[f"{w} {c}" for w, c in DOC_COMMANDS])
def test_a_command_a_prompt_or_skill_names_parses(where: str, command: str) -> None:
    assert _parses(command), f"{where}: `{command}` is not a command the CLI takes"


@pytest.mark.parametrize("name", ["Outbound", "Out bound", "it's"])
def test_the_resume_command_a_pause_names_resumes_that_agency(name: str) -> None:
    from chief_of_staff.domain.agencies import resume_command

    args = build_parser().parse_args(shlex.split(resume_command(name))[1:])
    assert (args.command, args.agency_command, args.agency) == ("agency", "resume", name)

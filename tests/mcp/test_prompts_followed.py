"""Prompts that match the tools: the work_session prompt, followed literally by a script, does the work.

The script is a deliberately literal "model". It reads the prompt as served (prompts/get, in the
protocol Claude Desktop speaks), takes every call the prompt writes as `tool {json}`, and sends
exactly those tools and argument names, filling each `<...>` with what a model would know at that
point: the claimed task's id, the capability and key result the task's own text names, the
recipient it found with its other tools. It knows nothing else about the server; anything the
prompt gets wrong (a tool or argument that does not exist, a missing role or task id, a viewer
left out) shows up as a refusal, a needless decision, or the operator's mark moving.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextContent

from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.mcp.prompts import load_prompts, prompts_folder, render_prompt
from chief_of_staff.mcp.server import build_server, tool_specs
from tests.conftest import START, db_rows
from tests.mcp.test_mcp_surface import call, stand_up
from tests.test_plugin import vocabulary

pytestmark = pytest.mark.anyio

# A call as the prompts write it: `tool {"argument": "value", "count": <number>}`.
CALL = re.compile(r"`(?P<tool>[a-z_]+) (?P<arguments>\{[^`]*\})`")
QUOTED_BLANK = re.compile(r'"<(?P<name>[^<>"]+)>"')
BARE_BLANK = re.compile(r"<(?P<name>[^<>\"]+)>")


@dataclass(frozen=True)
class Step:
    tool: str
    arguments: str  # the JSON as written, blanks and all
    line: str


def steps_of(text: str) -> list[Step]:
    return [
        Step(match["tool"], match["arguments"], line) for line in text.splitlines() for match in CALL.finditer(line)
    ]


def filled(step: Step, known: dict[str, Any]) -> dict[str, Any]:
    """The step's arguments with every blank replaced by what the model knows; an unknown blank fails."""

    def value(match: re.Match[str]) -> str:
        name = match["name"]
        assert name in known, f"the prompt asks for <{name}> in {step.tool}, which the model cannot know"
        return json.dumps(known[name])

    arguments: dict[str, Any] = json.loads(BARE_BLANK.sub(value, QUOTED_BLANK.sub(value, step.arguments)))
    return arguments


@dataclass
class LiteralModel:
    """Follows the prompt's calls in order; at a branch, the call on the line that names the answer."""

    client: Client
    steps: list[Step]
    known: dict[str, Any] = field(default_factory=dict)
    keys: int = 0

    def step(self, tool: str, *, on_line_with: str = "") -> Step:
        found = [s for s in self.steps if s.tool == tool and on_line_with in s.line]
        assert found, f"the prompt never says to call {tool}" + (f" for {on_line_with}" if on_line_with else "")
        return found[0]

    def new_key(self) -> str:
        self.keys += 1
        return f"session-1-action-{self.keys}"

    async def do(self, tool: str, *, on_line_with: str = "") -> dict[str, Any]:
        self.known["new key"] = self.new_key()
        return await call(self.client, tool, **filled(self.step(tool, on_line_with=on_line_with), self.known))


async def served_prompt(client: Client, arguments: dict[str, str]) -> str:
    rendered = await client.get_prompt("work_session", arguments)
    return "\n".join(m.content.text for m in rendered.messages if isinstance(m.content, TextContent))


def named_in(text: str, names: list[str]) -> str:
    """The first name the text mentions (case-insensitive), as a literal reader would pick it out."""
    found = [name for name in names if name.casefold() in text.casefold()]
    assert found, f"none of {names} is named in {text!r}"
    return found[0]


@pytest.mark.parametrize("role", ["SDR", None], ids=["in-a-role-seat", "agency-wide"])
async def test_the_work_session_prompt_followed_literally_completes_a_task_without_a_needless_decision(
    tmp_path: Path, role: str | None
) -> None:
    db = tmp_path / "w.db"
    server = build_server(Settings(db_path=db, clock=FixedClock(START)))
    async with Client(server, mode="legacy") as client:
        await stand_up(client)
        await call(client, "brief", viewer="operator")  # the operator has looked: their mark is here
        operator_mark = db_rows(db, "SELECT last_audit_id FROM viewers WHERE name = 'operator'")
        schemas = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
        text = await served_prompt(client, {"agency": "Outbound", **({"role": role} if role else {})})
        model = LiteralModel(client, steps_of(text))

        # Every call the prompt writes names a real tool and only arguments that tool takes.
        assert model.steps, "the prompt writes no calls to follow"
        for step in model.steps:
            assert step.tool in schemas, f"the prompt calls {step.tool}, which is not a tool"
            names = set(json.loads(BARE_BLANK.sub("0", QUOTED_BLANK.sub('""', step.arguments))))
            assert names <= set(schemas[step.tool]["properties"]), (step.tool, names)

        brief = await model.do("brief")
        assert brief["viewer"].startswith("agency:Outbound")
        task = (await model.do("claim_next_task"))["task"]
        assert task is not None, "nothing was claimed"

        # The model reads its task: the capability it names among the agency's grants, and the key result
        # it names among the agency's goals. The recipient comes from the model's own tools.
        capabilities = [grant["capability"] for grant in brief["authority"]]
        metrics = [kr["metric"] for goal in brief["goals"] for kr in goal["key_results"]]
        model.known |= {
            "task id": task["id"],
            "the task's role": task["role"],
            "capability": named_in(task["details"], capabilities),
            "cents": 0,
            "target": "jane@acme.com",
        }
        answer = await model.do("authorize")
        assert answer["answer"] == "allowed", answer["reason"]
        model.known |= {"authorization id": answer["authorization_id"], "actual cents": 0}
        await model.do("settle", on_line_with="`allowed`")

        model.known |= {
            "result": "success",
            "one line": "Sent one first-touch email to Jane at Acme.",
            "key result": named_in(task["details"], metrics),
            "change": 1,
            "cost": 0,
        }
        done = await model.do("complete_task")

    assert done["task"]["status"] == "done" and done["outcome"]["result"] == "success"
    assert db_rows(db, "SELECT count(*) FROM decisions") == [(0,)], "following the prompt opened a decision"
    # Asked as the task's role, in the seat or not: the role's grant answered, not the agency's default deny.
    assert db_rows(db, "SELECT actor FROM audit_log WHERE action = 'authority.authorize'") == [("agency:Outbound/SDR",)]
    assert db_rows(db, "SELECT last_audit_id FROM viewers WHERE name = 'operator'") == operator_mark, (
        "the work session moved the operator's mark"
    )
    emails_sent = db_rows(db, "SELECT current FROM key_results WHERE metric = 'emails sent'")
    assert emails_sent == [(1.0,)]


def without_blanks_left_out(value: Any) -> Any:
    """What the operator did not change is left out, as the prompt says: blanks the model fills with None."""
    if isinstance(value, dict):
        return {k: without_blanks_left_out(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_blanks_left_out(item) for item in value]
    return value


async def test_the_setup_prompt_puts_the_interviews_answers_into_the_blueprint_it_applies(
    tmp_path: Path, mode: str
) -> None:
    db = tmp_path / "w.db"
    async with Client(build_server(Settings(db_path=db, clock=FixedClock(START))), mode=mode) as client:
        rendered = await client.get_prompt("setup_agency", {"function": "outbound sales"})
        text = "\n".join(m.content.text for m in rendered.messages if isinstance(m.content, TextContent))
        applies = [step for step in steps_of(text) if step.tool == "apply_blueprint"]
        assert len(applies) == 2, "a first look, then the plan with the answers"
        # The interview: 20 meetings by the end of the year from 2, SDR emails asked for each time at
        # most 25 a day, never the biggest customer; nothing said about money.
        known = {
            "blueprint": "outbound",
            "metric": "meetings booked",
            "target": 20,
            "start": 2,
            "YYYY-MM-DD": "2026-12-31",
            "capability": "email.send",
            "mode": "approve",
            "cents": None,
            "day, week or month": "day",
            "count": 25,
            "pattern": "bigcustomer.com",
        }
        first = await call(client, "apply_blueprint", **filled(applies[0], known))
        arguments = without_blanks_left_out(filled(applies[1], known))
        planned = await call(client, "apply_blueprint", **arguments)
        applied = await call(client, "apply_blueprint", **arguments, dry_run=False, confirm=True)
    assert first["creates"] != planned["creates"] and not planned["applied"]
    assert applied["applied"] and applied["creates"] == planned["creates"]
    assert "key result meetings booked: 2 → 20 meetings by 2026-12-31" in planned["creates"]
    assert db_rows(db, "SELECT mode FROM grants WHERE capability = 'email.send'") == [("approve",)]
    assert db_rows(db, "SELECT count(*) FROM grants WHERE scope_deny LIKE '%bigcustomer.com%'") == [(3,)]


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


PROMPTS = sorted(path for path in Path(str(prompts_folder())).iterdir() if path.suffix == ".md")
SAMPLE_ARGUMENTS = {"agency": "Outbound", "role": "SDR", "days": "7", "viewer": "operator", "function": "sales"}


def rendered(name: str) -> str:
    template = next(t for t in load_prompts() if t.name == name)
    given = {arg.name: SAMPLE_ARGUMENTS[arg.name] for arg in template.arguments}
    return render_prompt(template, given, {"playbook": ""})


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys(item)}
    return set()


@pytest.mark.parametrize("prompt", PROMPTS, ids=[p.stem for p in PROMPTS])
def test_every_call_a_prompt_writes_is_a_tool_with_the_arguments_it_takes(prompt: Path) -> None:
    specs = {spec.name: spec.input_model.model_json_schema() for spec in tool_specs()}
    for step in steps_of(rendered(prompt.stem)):
        assert step.tool in specs, f"{prompt.stem} calls {step.tool}, which is not a tool"
        arguments = json.loads(BARE_BLANK.sub("0", QUOTED_BLANK.sub('""', step.arguments)))
        assert set(arguments) <= set(specs[step.tool]["properties"]), (prompt.stem, step.tool, set(arguments))
        assert keys(arguments) <= vocabulary(), (prompt.stem, step.tool)


@pytest.mark.parametrize("prompt", PROMPTS, ids=[p.stem for p in PROMPTS])
def test_every_name_a_prompt_puts_in_backticks_is_one_the_server_knows(prompt: Path) -> None:
    body = rendered(prompt.stem)
    names = {span for span in re.findall(r"`([^`\n]+)`", body) if re.fullmatch(r"[a-z][a-z0-9_]*", span)}

    assert names - vocabulary() == set()

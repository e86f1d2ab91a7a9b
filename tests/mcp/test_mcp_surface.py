"""The MCP surface in-process, over both the 2025-11-25 handshake (Claude Desktop) and the 2026-07-28 path.

Every test runs once per client mode. Each builds its own server on a fresh database file and, where it
needs an agency, applies the Outbound blueprint through the tools themselves (`stand_up`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, ResourceTemplateReference, TextContent, TextResourceContents

from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.mcp.server import build_server
from tests.conftest import START

pytestmark = pytest.mark.anyio

TOOLS_LIST_BUDGET = 40_000  # issue 15: at or under 40,000 bytes, in both protocol eras
READ_ONLY = {
    "list_goals",
    "list_tasks",
    "list_grants",
    "list_decisions",
    "list_blueprints",
    "roster",
    "check",
    "list_outcomes",
}
RESOURCES = {"cos://brief", "cos://goals", "cos://authority-letter", "cos://inbox", "cos://decisions", "cos://review"}
PROMPTS = {"chief_of_staff", "daily_brief", "work_session", "setup_agency", "decide", "weekly_review"}
LEAKS = ("Traceback", "/work/", ".py", "sqlite3.")


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "w.db"


@asynccontextmanager
async def connect(db_path: Path, mode: str) -> AsyncIterator[Client]:
    server = build_server(Settings(db_path=db_path, clock=FixedClock(START)))
    async with Client(server, mode=mode) as client:
        yield client


def count_rows(db_path: Path, table: str) -> int:
    """Read the file from outside the server, read-only: what a failed call wrote would show here."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def text_of(result: Any) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


def assert_clean(message: str) -> None:
    for leak in LEAKS:
        assert leak not in message, f"{leak!r} leaked into an error: {message}"


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    return dict(result.structured_content)


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    message = text_of(result)
    assert result.is_error, message
    assert_clean(message)
    return message


async def stand_up(client: Client) -> None:
    """The operator said yes: the Outbound agency with its goal, grants, routines and starter tasks."""
    plan = await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
    assert plan["agency"] == "Outbound"


# --- listing -------------------------------------------------------------------------------------


async def test_every_tool_is_described_strict_and_honestly_annotated(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        tools = (await client.list_tools()).tools
    assert len(tools) >= 20
    for tool in tools:
        assert tool.description and tool.description.strip(), tool.name
        assert tool.input_schema.get("type") == "object", tool.name
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        assert tool.output_schema, tool.name
        hints = tool.annotations
        assert hints is not None, tool.name
        for hint in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint):
            assert hint is not None, tool.name
    assert {t.name for t in tools if t.annotations and t.annotations.read_only_hint} == READ_ONLY


async def test_tools_list_fits_the_byte_budget(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        listing = await client.list_tools()
    size = len(listing.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8"))
    assert size <= TOOLS_LIST_BUDGET, f"tools/list is {size} bytes, over the {TOOLS_LIST_BUDGET} budget"


# --- the operator story --------------------------------------------------------------------------


async def test_blueprint_dry_run_writes_nothing_and_apply_needs_confirm(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        audit_before = count_rows(db_path, "audit_log")
        plan = await call(client, "apply_blueprint", name="outbound")
        assert plan["agency"] == "Outbound" and plan["creates"]
        assert count_rows(db_path, "audit_log") == audit_before

        message = await refused(client, "apply_blueprint", {"name": "outbound", "dry_run": False})
        assert "Ask the operator" in message and "confirm=true" in message
        assert count_rows(db_path, "audit_log") == audit_before
        assert count_rows(db_path, "agencies") == 0

        await stand_up(client)
        roster = await call(client, "roster")
        assert [a["name"] for a in roster["agencies"]] == ["Outbound"]
        assert count_rows(db_path, "audit_log") > audit_before


async def test_agency_works_a_task_under_its_grants_and_moves_the_goal(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        (goal,) = (await call(client, "list_goals", agency="Outbound"))["goals"]
        assert len(goal["key_results"]) == 3
        emails_kr = next(kr for kr in goal["key_results"] if kr["metric"] == "emails sent")

        task = await call(
            client,
            "add_task",
            title="Email two leads",
            agency="Outbound",
            role="SDR",
            goal_id=goal["id"],
            priority="P0",
        )
        claimed = await call(client, "claim_next_task", agency="Outbound", role="SDR")
        assert claimed["task"]["id"] == task["id"]
        assert claimed["task"]["status"] == "claimed"

        sdr = {"agency": "Outbound", "role": "SDR", "task_id": task["id"]}
        allowed = await call(client, "authorize", capability="email.send", target="jane@acme.com", **sdr)
        assert allowed["answer"] == "allowed", allowed["reason"]
        settled = await call(client, "settle", authorization_id=allowed["authorization_id"], actual_cents=0)
        assert settled["status"] == "settled"

        denied = await call(client, "authorize", capability="email.send", target="buyer@agency.gov", **sdr)
        assert denied["answer"] == "denied"
        assert "*.gov" in denied["reason"]

        done = await call(
            client,
            "complete_task",
            task_id=task["id"],
            result="success",
            summary="Sent two first-touch emails",
            metrics=[{"key_result": emails_kr["id"], "delta": 2}],
        )
        assert done["task"]["status"] == "done"
        (goal,) = (await call(client, "list_goals", agency="Outbound"))["goals"]
        moved = next(kr for kr in goal["key_results"] if kr["id"] == emails_kr["id"])
        assert moved["current"] == 2
        assert moved["progress"] == pytest.approx(2 / 1500, abs=0.0005)  # rounded for the model


async def test_uncovered_capability_escalates_and_chat_decides_it(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        await call(client, "brief", viewer="operator")  # the operator has looked: later changes are new
        asked = await call(
            client,
            "authorize",
            agency="Outbound",
            role="SDR",
            capability="spend.ads",
            amount_cents=5000,
            target="linkedin.com",
        )
        assert asked["answer"] == "needs_approval"
        decision_id = asked["decision_id"]
        pending = (await call(client, "list_decisions"))["decisions"]
        assert [d["id"] for d in pending] == [decision_id]

        outcome = await call(
            client,
            "log_outcome",
            agency="Outbound",
            role="SDR",
            summary="Two positive replies",
            result="success",
            metrics=[{"key_result": "KR2", "delta": 2}],
            cost_cents=150,
        )
        assert outcome["result"] == "success"

        view = await call(client, "brief")
        assert [d["id"] for d in view["pending_decisions"]] == [decision_id]
        assert view["pending_decision_count"] == 1
        assert view["changes"]["total"] >= 2
        assert "authority.authorize" in view["changes"]["by_action"]
        assert "outcome.log" in view["changes"]["by_action"]

        message = await refused(client, "decide", {"decision_id": decision_id, "approve": True})
        assert "confirm=true" in message
        # The blueprint drew 50.00 of the 100.00 chat allowance (25.00 a week; 7 days touch two weeks).
        assert (await call(client, "brief"))["chat_allowance"]["left_cents"] == 5_000
        decided = await call(client, "decide", decision_id=decision_id, approve=True, note="one test", confirm=True)
        assert decided["status"] == "approved"
        assert decided["decided_channel"] == "chat"
        assert (await call(client, "list_decisions"))["decisions"] == []
        again = await call(
            client,
            "authorize",
            agency="Outbound",
            role="SDR",
            capability="spend.ads",
            amount_cents=5000,
            target="linkedin.com",
        )
        assert again["answer"] == "allowed" and again["decision_id"] == decision_id

        big = await call(
            client,
            "authorize",
            agency="Outbound",
            role="SDR",
            capability="spend.ads",
            amount_cents=250_000,
            target="linkedin.com",
        )
        audit_before = count_rows(db_path, "audit_log")
        message = await refused(client, "decide", {"decision_id": big["decision_id"], "approve": True, "confirm": True})
        assert "chat allowance is left" in message and f"chief-of-staff approve {big['decision_id']}" in message
        assert count_rows(db_path, "audit_log") == audit_before


# --- bad input -----------------------------------------------------------------------------------

TASK_FIELDS = {"title": "Write the ICP", "agency": "Outbound"}
AUTHORIZE = {"agency": "Outbound", "role": "SDR", "capability": "email.send", "target": "jane@acme.com"}

# tool, arguments, phrases the message must contain (the field, and what to send instead).
BAD_CALLS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("complete_task", {"task_id": "T999", "result": "success", "summary": "x"}, ("task_id", "T999", "list_tasks")),
    ("authorize", {**AUTHORIZE, "amount_cents": -5}, ("amount_cents", "non-negative integer")),
    ("authorize", {**AUTHORIZE, "amount_cents": 12.5}, ("amount_cents", "whole cents", "1250")),
    ("authorize", {**AUTHORIZE, "amount_cents": True}, ("amount_cents", "whole cents")),
    ("add_task", {**TASK_FIELDS, "priority": "P9"}, ("priority", "'P0'", "'P3'")),
    ("add_task", {**TASK_FIELDS, "due_on": "next tuesday"}, ("due_on", "YYYY-MM-DD")),
    ("add_task", {**TASK_FIELDS, "title": "x" * 5000}, ("title", "at most 200 characters")),
    ("add_task", {**TASK_FIELDS, "priorty": "P1"}, ("priorty", "Did you mean 'priority'")),
    ("add_task", {**TASK_FIELDS, "depends_on": "T1"}, ("depends_on", "valid list")),
    ("add_task", {"agency": "Outbound"}, ("title", "required")),
    ("add_task", {"title": {"nested": 1}}, ("title", "valid string")),
]


async def test_bad_arguments_are_refused_with_guidance_and_write_nothing(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        audit_before = count_rows(db_path, "audit_log")
        for tool, arguments, phrases in BAD_CALLS:
            message = await refused(client, tool, arguments)
            for phrase in phrases:
                assert phrase in message, f"{tool} {list(arguments)}: {phrase!r} missing from {message!r}"
            assert count_rows(db_path, "audit_log") == audit_before, f"{tool} {list(arguments)} wrote"

        unknown = await client.call_tool("no_such_tool", {})
        assert unknown.is_error and "no_such_tool" in text_of(unknown)
        assert_clean(text_of(unknown))

        view = await call(client, "brief", mark_seen=False)  # still answering after all of that
        assert view["workspace"] and view["pending_decision_count"] == 0


async def test_domain_refusals_name_the_field_and_leak_nothing(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        audit_before = count_rows(db_path, "audit_log")
        cases = [
            ("add_task", {**TASK_FIELDS, "depends_on": ["T999"]}, "depends_on"),
            ("authorize", {**AUTHORIZE, "agency": "Nowhere"}, "agency"),
            ("update_task", {"task_id": "G1", "priority": "P1"}, "task_id"),
            (
                "create_goal",
                {
                    "agency": "Outbound",
                    "title": "More",
                    "key_results": [
                        {"metric": "m", "baseline": 0, "target": 1, "direction": "up", "due_date": "2027-01-01"}
                    ],
                },
                "confirm=true",
            ),
        ]
        for tool, arguments, phrase in cases:
            message = await refused(client, tool, arguments)
            assert phrase in message, message
        assert count_rows(db_path, "audit_log") == audit_before


# --- resources -----------------------------------------------------------------------------------


async def read_text(client: Client, uri: str) -> tuple[str, str | None]:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents)
    return content.text, content.mime_type


async def test_resources_list_and_read_in_their_declared_types(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        listed = {str(r.uri): r.mime_type for r in (await client.list_resources()).resources}
        assert set(listed) >= RESOURCES
        for uri in RESOURCES:
            text, mime = await read_text(client, uri)
            assert mime == listed[uri]
            if mime == "application/json":
                json.loads(text)
            else:
                assert mime == "text/markdown" and text.strip()
        brief_text, _ = await read_text(client, "cos://brief")
        assert "Outbound" in brief_text or "meetings" in brief_text
        letter, _ = await read_text(client, "cos://authority-letter")
        assert "email.send" in letter


async def test_resource_templates_read_one_thing_and_unknown_ids_error(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates >= {"cos://goals/{goal_id}", "cos://tasks/{task_id}", "cos://agencies/{agency}"}
        task = await call(client, "add_task", title="Check the sending domain", agency="Outbound")

        goal = json.loads((await read_text(client, "cos://goals/G1"))[0])
        assert goal["id"] == "G1" and len(goal["key_results"]) == 3
        read_task = json.loads((await read_text(client, f"cos://tasks/{task['id']}"))[0])
        assert read_task["title"] == "Check the sending domain"
        agency = json.loads((await read_text(client, "cos://agencies/Outbound"))[0])
        assert agency["agency"]["name"] == "Outbound"
        assert {r["name"] for r in agency["agency"]["roles"]} == {"SDR", "Researcher"}

        for uri, phrase in (("cos://tasks/T999", "T999"), ("cos://goals/G42", "G42"), ("cos://agencies/Nope", "Nope")):
            with pytest.raises(MCPError) as raised:
                await client.read_resource(uri)
            assert phrase in str(raised.value)
            assert_clean(str(raised.value))
        assert (await read_text(client, "cos://goals"))[0]  # still answering


# --- prompts -------------------------------------------------------------------------------------


async def test_prompts_list_render_and_refuse_missing_arguments(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(prompts) >= PROMPTS
        assert all(p.description for p in prompts.values())

        await stand_up(client)
        await call(
            client,
            "log_outcome",
            agency="Outbound",
            summary="Sent the first batch",
            result="failure",
            lesson="Subject lines over 60 characters get cut off on phones",
        )
        rendered = await client.get_prompt("work_session", {"agency": "Outbound", "role": "SDR"})
        text = " ".join(m.content.text for m in rendered.messages if isinstance(m.content, TextContent))
        assert "Outbound" in text and "SDR" in text
        # The playbook comes along, what breaks first, quoted as data.
        assert "- breaks (L" in text and '"Subject lines over 60 characters get cut off on phones"' in text
        assert text.index("breaks (L") < text.index("works (L")

        for arguments, phrase in (
            ({"role": "SDR"}, "agency: required"),
            ({"agency": "Inbound"}, "there is no agency 'Inbound'"),
            ({"agency": "x" * 500}, "under 200 characters"),
            ({"agency": "Outbound", "seat": "SDR"}, "seat: the work_session prompt takes"),
        ):
            with pytest.raises(MCPError) as raised:
                await client.get_prompt("work_session", arguments)
            assert phrase in str(raised.value)
            assert_clean(str(raised.value))


# --- completions ---------------------------------------------------------------------------------


def template(uri: str) -> ResourceTemplateReference:
    return ResourceTemplateReference(type="ref/resource", uri=uri)


async def test_completions_offer_open_tasks_agencies_and_goals(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        await call(client, "add_task", title="Warm up the inbox", agency="Outbound")
        open_ids = {t["id"] for t in (await call(client, "list_tasks", limit=100))["tasks"]}
        assert open_ids

        tasks = await client.complete(template("cos://tasks/{task_id}"), {"name": "task_id", "value": "T"})
        assert set(tasks.completion.values) == open_ids
        agencies = await client.complete(template("cos://agencies/{agency}"), {"name": "agency", "value": "Out"})
        assert agencies.completion.values == ["Outbound"]
        goals = await client.complete(template("cos://goals/{goal_id}"), {"name": "goal_id", "value": "G"})
        assert goals.completion.values == ["G1"]
        nothing = await client.complete(template("cos://agencies/{agency}"), {"name": "agency", "value": "Zz"})
        assert nothing.completion.values == []
        roles = await client.complete(
            PromptReference(type="ref/prompt", name="work_session"),
            {"name": "role", "value": ""},
            {"agency": "Outbound"},
        )
        assert set(roles.completion.values) == {"SDR", "Researcher"}


async def test_a_workspace_that_refuses_changes_still_serves_reads_and_says_how_to_repair(
    db_path: Path, mode: str
) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("DROP TRIGGER audit_log_no_delete")  # tampering: the append-only rule is gone
        conn.commit()
    finally:
        conn.close()
    async with connect(db_path, mode) as client:
        grants = (await call(client, "list_grants"))["grants"]
        assert grants, "reads still work"
        message = await refused(client, "authorize", AUTHORIZE)
        assert "chief-of-staff audit repair" in message

"""Streamable HTTP with tokens: who may connect, to which workspace, and what each token may do.

Every MCP behaviour runs in both client modes (the 2025-11-25 handshake and the 2026-07-28 path)
against a real uvicorn server on a loopback port.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain import tokens
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.http.server import HttpOptions
from tests.conftest import db_rows
from tests.http_support import http_client, make_token, make_workspace, serving
from tests.mcp.test_mcp_surface import call, count_rows, refused

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ws(tmp_path: Path, clock: FixedClock) -> Path:
    path = tmp_path / "acme.db"
    await make_workspace(path, clock)
    return path


async def post_initialize(url: str, token: str | None = None, **headers: str) -> httpx2.Response:
    sent = {**MCP_HEADERS, **headers} | ({"authorization": f"Bearer {token}"} if token else {})
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(f"{url}/mcp", json=INITIALIZE, headers=sent)


def grants_snapshot(path: Path) -> list[tuple[Any, ...]]:
    return db_rows(path, "SELECT * FROM grants ORDER BY id")


# --- who may connect ------------------------------------------------------------------------------


async def test_a_request_without_a_token_is_refused_with_www_authenticate(ws: Path, clock: FixedClock) -> None:
    async with serving([ws], clock) as url:
        response = await post_initialize(url)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert "resource_metadata=" in challenge


async def test_an_unknown_or_malformed_token_is_refused(ws: Path, clock: FixedClock) -> None:
    async with serving([ws], clock) as url:
        for token in ("cos_nonsense", "not-ours", "cos_" + "x" * 500):
            assert (await post_initialize(url, token)).status_code == 401


async def test_an_expired_token_is_refused_once_its_day_passes(ws: Path, clock: FixedClock) -> None:
    token = await make_token(ws, clock, expires_in_days=1)
    async with serving([ws], clock) as url:
        assert (await post_initialize(url, token)).status_code == 200
        clock.advance(timedelta(days=1))
        response = await post_initialize(url, token)
    assert response.status_code == 401 and "www-authenticate" in response.headers


async def test_a_revoked_token_is_refused_at_once_even_when_revoked_by_another_process(
    ws: Path, clock: FixedClock
) -> None:
    token = await make_token(ws, clock)
    async with serving([ws], clock) as url:
        assert (await post_initialize(url, token)).status_code == 200
        other = await Store.open(ws, clock)  # the command line, a separate connection to the same file
        try:
            async with other.write() as tx:
                await tokens.revoke_token(tx, OPERATOR_CLI, "TK1")
        finally:
            await other.close()
        assert (await post_initialize(url, token)).status_code == 401


async def test_a_bad_origin_or_host_is_refused_before_authentication(ws: Path, clock: FixedClock) -> None:
    token = await make_token(ws, clock)
    async with serving([ws], clock) as url:
        assert (await post_initialize(url, token, origin="http://evil.example")).status_code == 403
        assert (await post_initialize(url, token, host="evil.example")).status_code == 421
        assert (await post_initialize(url, None, origin="http://evil.example")).status_code == 403
        async with httpx2.AsyncClient() as http:
            assert (await http.get(f"{url}/health", headers={"host": "evil.example"})).status_code == 421
            assert (await http.get(f"{url}/health", headers={"origin": "http://localhost:3000"})).status_code == 200


async def test_an_allowed_hostname_is_accepted_when_configured(ws: Path, clock: FixedClock) -> None:
    token = await make_token(ws, clock)
    options = HttpOptions(port=0, allowed_hosts=("cos.example.com",), allowed_origins=("https://cos.example.com",))
    async with serving([ws], clock, options) as url:
        response = await post_initialize(url, token, host="cos.example.com", origin="https://cos.example.com")
    assert response.status_code == 200


async def test_health_answers_without_a_token_and_names_no_workspace(ws: Path, clock: FixedClock) -> None:
    async with serving([ws], clock) as url, httpx2.AsyncClient() as http:
        response = await http.get(f"{url}/health")
        lost = await http.get(f"{url}/elsewhere")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert "acme" not in response.text
    assert lost.status_code == 404 and "/mcp" in lost.json()["error_description"]


# --- one server, several workspaces ---------------------------------------------------------------


async def test_a_token_of_one_workspace_cannot_reach_another(tmp_path: Path, clock: FixedClock, mode: str) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    await make_workspace(a, clock)
    await make_workspace(b, clock, blueprint=False)
    token_a = await make_token(a, clock)
    token_b = await make_token(b, clock)
    async with serving([a, b], clock) as url:
        async with http_client(f"{url}/a/mcp", token_a, mode) as client:
            assert [x["name"] for x in (await call(client, "roster"))["agencies"]] == ["Outbound"]
        async with httpx2.AsyncClient(timeout=10) as http:
            wrong = await http.post(
                f"{url}/b/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "authorization": f"Bearer {token_a}"}
            )
            lost = await http.get(f"{url}/elsewhere")
        assert wrong.status_code == 401
        assert lost.status_code == 404 and "/a/mcp" not in lost.text and "/b/mcp" not in lost.text
        async with http_client(f"{url}/b/mcp", token_b, mode) as client:
            assert (await call(client, "roster"))["agencies"] == []


# --- what each token may do -----------------------------------------------------------------------


async def test_an_operator_token_is_the_verified_channel(ws: Path, clock: FixedClock, mode: str) -> None:
    token = await make_token(ws, clock)
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        # Far above the chat ceiling and with no confirm: only a verified channel may do this.
        made = await call(
            client,
            "grant",
            agency="Outbound",
            role="SDR",
            capability="spend.ads",
            per_action_cap_cents=500_000,
            rationale="launch",
        )
    assert made["id"].startswith("GR")
    assert db_rows(
        ws, "SELECT actor, channel FROM audit_log WHERE action = 'grant.create' ORDER BY id DESC LIMIT 1"
    ) == [("operator:TK1", "verified")]


OPERATOR_ACTS: list[tuple[str, dict[str, Any]]] = [
    ("grant", {"agency": "Outbound", "capability": "spend.ads", "per_action_cap_cents": 100, "confirm": True}),
    ("update_grant", {"grant_id": "GR2", "mode": "auto", "confirm": True}),
    ("apply_blueprint", {"name": "outbound", "agency_name": "Outbound 2", "dry_run": False, "confirm": True}),
    ("set_role", {"agency": "Outbound", "name": "Closer", "charter": "close", "confirm": True}),
    (
        "create_goal",
        {
            "agency": "Outbound",
            "title": "More",
            "confirm": True,
            "key_results": [
                {"metric": "demos", "baseline": 0, "target": 5, "direction": "up", "due_date": "2026-12-31"}
            ],
        },
    ),
    (
        "record_review",
        {
            "adjustments": [
                {"tool": "set_role", "arguments": {"agency": "Outbound", "name": "Closer", "charter": "close"}}
            ],
            "confirm": True,
        },
    ),
]


async def test_an_agency_token_never_makes_an_operator_act_whatever_it_sends(
    ws: Path, clock: FixedClock, mode: str
) -> None:
    token = await make_token(ws, clock, kind="agency", agency="Outbound")
    audit_before, grants_before = count_rows(ws, "audit_log"), grants_snapshot(ws)
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        for tool, arguments in OPERATOR_ACTS:
            message = await refused(client, tool, arguments)
            assert "operator" in message, (tool, message)
            assert "confirm=true" not in message, (tool, message)
    assert count_rows(ws, "audit_log") == audit_before
    assert grants_snapshot(ws) == grants_before
    assert count_rows(ws, "roles") == 2 and count_rows(ws, "goals") == 1


async def test_an_agency_token_cannot_decide_its_own_escalation(ws: Path, clock: FixedClock, mode: str) -> None:
    token = await make_token(ws, clock, kind="agency", agency="Outbound", role="Researcher")
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        asked = await call(
            client, "authorize", agency="Outbound", capability="spend.tools", amount_cents=9_000, target="clearbit.com"
        )
        assert asked["answer"] == "needs_approval"
        decision = asked["decision_id"]
        message = await refused(client, "decide", {"decision_id": decision, "approve": True, "confirm": True})
    assert "never makes operator acts" in message
    assert count_rows(ws, "decisions") == 1


async def test_a_role_token_acts_as_its_role_and_no_other(ws: Path, clock: FixedClock, mode: str) -> None:
    token = await make_token(ws, clock, kind="agency", agency="Outbound", role="SDR")
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        sent = await call(client, "authorize", agency="outbound", capability="email.send", target="jane@acme.com")
        assert sent["answer"] == "allowed"
        for arguments in ({"agency": "Outbound", "role": "Researcher"}, {"agency": "A9", "role": "SDR"}):
            message = await refused(
                client,
                "authorize",
                {**arguments, "capability": "spend.tools", "amount_cents": 100, "target": "clearbit.com"},
            )
            assert "this connection's token acts for" in message
        brief = await call(client, "brief")
        assert brief["viewer"] == "agency:Outbound/SDR"
    assert db_rows(ws, "SELECT DISTINCT actor FROM audit_log WHERE channel = 'agency'") == [("agency:Outbound/SDR",)]


async def test_a_token_connection_is_never_asked_through_elicitation(ws: Path, clock: FixedClock) -> None:
    """Over a token the token decides: no prompt to answer, so no client can answer one for the agency."""
    token = await make_token(ws, clock, kind="agency", agency="Outbound")
    asked: list[str] = []

    async def answer_yes(context: Any, params: Any) -> Any:
        from mcp.types import ElicitResult

        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    async with (
        serving([ws], clock) as url,
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http,
    ):
        from mcp.client.streamable_http import streamable_http_client

        async with Client(
            streamable_http_client(f"{url}/mcp", http_client=http), mode="legacy", elicitation_callback=answer_yes
        ) as client:
            await refused(
                client, "grant", {"agency": "Outbound", "capability": "spend.ads", "per_action_cap_cents": 100}
            )
    assert asked == []


# --- objects by id, names by Unicode, required names --------------------------------------------


async def add_other_agency(path: Path, clock: FixedClock, name: str = "Other") -> None:
    """A second agency with a role, a task and a grant of its own."""
    from chief_of_staff.domain import agencies, inbox
    from chief_of_staff.domain.authority.grants import GrantSpec

    store = await Store.open(path, clock)
    try:
        async with store.write() as tx:
            await agencies.create_agency(tx, OPERATOR_CLI, name=name, purpose="Something else")
            await agencies.set_role(tx, OPERATOR_CLI, agency=name, name="Clerk", charter="Files")
            await inbox.add_task(tx, OPERATOR_CLI, title="Their task", agency=name, role="Clerk")
            await grants.create_grant(
                tx, OPERATOR_CLI, GrantSpec(agency=name, role="Clerk", capability="spend.ads", per_action_cap_cents=900)
            )
    finally:
        await store.close()


async def test_an_agency_token_cannot_touch_another_agencys_tasks_or_grants_by_id(
    ws: Path, clock: FixedClock, mode: str
) -> None:
    await add_other_agency(ws, clock)
    token = await make_token(ws, clock, kind="agency", agency="Outbound", role="SDR")
    task = "T{}".format(db_rows(ws, "SELECT max(id) FROM tasks")[0][0])
    grant = "GR{}".format(db_rows(ws, "SELECT max(id) FROM grants")[0][0])
    researcher_tasks = db_rows(
        ws, "SELECT t.id FROM tasks t JOIN roles r ON r.id = t.role_id WHERE r.name = 'Researcher' LIMIT 1"
    )
    researcher_task = researcher_tasks[0] if researcher_tasks else None
    audit_before, grants_before = count_rows(ws, "audit_log"), grants_snapshot(ws)
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("complete_task", {"task_id": task, "summary": "done", "result": "success"}),
            ("update_task", {"task_id": task, "status": "cancelled"}),
            ("revoke", {"grant_id": grant}),
            ("update_grant", {"grant_id": grant, "mode": "approve"}),
            # Declared on the input models, so the tools that only name a task are held to it too.
            ("authorize", {"capability": "email.send", "target": "jane@acme.com", "task_id": task}),
            ("check", {"capability": "email.send", "target": "jane@acme.com", "task_id": task}),
            ("log_outcome", {"summary": "done", "result": "success", "task_id": task}),
            ("add_task", {"title": "follow up", "depends_on": [task]}),
        ]
        if researcher_task is not None:  # a sibling role's task is not the SDR token's either
            attempts.append(
                ("complete_task", {"task_id": f"T{researcher_task[0]}", "summary": "x", "result": "success"})
            )
        for tool, arguments in attempts:
            message = await refused(client, tool, arguments)
            assert "belongs to another agency or role" in message, (tool, message)
    assert count_rows(ws, "audit_log") == audit_before and grants_snapshot(ws) == grants_before


async def test_a_role_token_may_leave_out_even_required_agency_and_role(ws: Path, clock: FixedClock, mode: str) -> None:
    token = await make_token(ws, clock, kind="agency", agency="Outbound", role="SDR")
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        sent = await call(client, "authorize", capability="email.send", target="jane@acme.com")
    assert sent["answer"] == "allowed" and sent["grant_id"] == "GR1"


async def test_a_name_equal_only_under_unicode_folding_still_acts_as_the_tokens_own_agency(
    ws: Path, clock: FixedClock, mode: str
) -> None:
    await add_other_agency(ws, clock, "Straße")
    await add_other_agency(ws, clock, "STRASSE")  # a different agency: SQLite's NOCASE folds ASCII only
    token = await make_token(ws, clock, kind="agency", agency="Straße", role="Clerk")
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        asked = await call(
            client,
            "authorize",
            agency="STRASSE",
            role="Clerk",
            capability="spend.ads",
            amount_cents=500,
            target="ads.example.com",
        )
    owners = db_rows(ws, "SELECT a.name FROM authorizations z JOIN agencies a ON a.id = z.agency_id")
    assert owners == [("Straße",)] and asked["answer"] == "allowed"


async def test_an_operator_tokens_revoke_is_recorded_as_the_operator(ws: Path, clock: FixedClock) -> None:
    token = await make_token(ws, clock)
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, "legacy") as client:
        await call(client, "revoke", grant_id="GR1", reason="campaign over")
    assert db_rows(ws, "SELECT actor, channel FROM audit_log WHERE action = 'grant.revoke'") == [
        ("operator:TK1", "verified")
    ]


async def test_a_role_token_revoking_its_own_grant_never_lets_the_agency_wide_one_allow(
    ws: Path, clock: FixedClock, mode: str
) -> None:
    """Over HTTP an SDR token once revoked its own approve-mode grant and fell under an agency-wide auto one."""
    store = await Store.open(ws, clock)
    try:
        async with store.write() as tx:
            wide = GrantSpec(agency="Outbound", capability="spend.*", per_action_cap_cents=10_000)
            narrow = GrantSpec(
                agency="Outbound", role="SDR", capability="spend.ads", mode="approve", per_action_cap_cents=10_000
            )
            await grants.create_grant(tx, OPERATOR_CLI, wide)
            narrow_id = (await grants.create_grant(tx, OPERATOR_CLI, narrow)).id
    finally:
        await store.close()
    token = await make_token(ws, clock, kind="agency", agency="Outbound", role="SDR")
    ad = {"capability": "spend.ads", "amount_cents": 5_000, "target": "ads.acme.com"}
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        assert (await call(client, "authorize", **ad))["answer"] == "needs_approval"
        await call(client, "revoke", grant_id=narrow_id, reason="the page told me to")
        after = await call(client, "authorize", **ad)
    assert (after["answer"], after["grant_id"]) == ("needs_approval", narrow_id)

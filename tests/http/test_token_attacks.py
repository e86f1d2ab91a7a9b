"""Adversarial tests over HTTP tokens: an agency or role token trying to widen its own authority.

Tests marked `Once succeeded` are attacks that worked against the first version of issue 14's rules and now
hold; the others held from the start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec
from tests.conftest import db_rows
from tests.http_support import http_client, make_token, make_workspace, serving
from tests.mcp.test_mcp_surface import call, refused

pytestmark = pytest.mark.anyio

CHAT = Actor("operator", "chat")


@pytest.fixture
async def ws(tmp_path: Path, clock: FixedClock) -> Path:
    path = tmp_path / "acme.db"
    await make_workspace(path, clock)
    return path


async def test_a_role_token_revoking_an_agency_wide_verified_grant_never_frees_its_chat_grant(
    ws: Path, clock: FixedClock
) -> None:
    """Once succeeded (property 1, over a role token).

    Attack: the operator's verified agency-wide `web.post` grant denies evil.com; a grant made in
    chat lets the SDR role post. The SDR token may act on agency-wide objects (role_id NULL
    "belongs to everyone under" the agency), so it revokes the verified grant. Only active
    verified grants bind a chat-made governing grant, so the SDR's post to evil.com turns from
    `denied` to `allowed`.
    """
    store = await Store.open(ws, clock)
    try:
        async with store.write() as tx:
            wide = await grants.create_grant(
                tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="web.post", scope_deny=["evil.com"])
            )
            await grants.create_grant(tx, CHAT, GrantSpec(agency="Outbound", role="SDR", capability="web.post"))
    finally:
        await store.close()
    token = await make_token(ws, clock, kind="agency", agency="Outbound", role="SDR")
    post = {"capability": "web.post", "target": "https://evil.com/form"}
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, "legacy") as client:
        assert (await call(client, "authorize", **post))["answer"] == "denied"
        await call(client, "revoke", grant_id=wide.id, reason="the page told me to")
        after = await call(client, "authorize", **post)
    assert after["answer"] != "allowed", after["reason"]


async def test_an_agency_token_cannot_release_or_settle_another_agencys_reservation(
    ws: Path, clock: FixedClock
) -> None:
    """Held: a second agency's token cannot release Outbound's hold (which would refund Outbound's budget)."""
    store = await Store.open(ws, clock)
    try:
        async with store.write() as tx:
            await agencies.create_agency(tx, OPERATOR_CLI, name="Support", purpose="Answer customers")
    finally:
        await store.close()
    outbound = await make_token(ws, clock, kind="agency", agency="Outbound", role="SDR")
    support = await make_token(ws, clock, kind="agency", agency="Support")
    async with serving([ws], clock) as url:
        async with http_client(f"{url}/mcp", outbound, "legacy") as client:
            held = await call(client, "authorize", capability="email.send", target="jane@acme.com")
        assert held["answer"] == "allowed"
        async with http_client(f"{url}/mcp", support, "legacy") as client:
            for tool, arguments in (
                ("release", {"authorization_id": held["authorization_id"]}),
                ("settle", {"authorization_id": held["authorization_id"], "actual_cents": 0}),
            ):
                message = await refused(client, tool, arguments)
                assert "belongs to another agency or role" in message, (tool, message)


async def test_a_role_token_cannot_revoke_a_sibling_roles_grant_or_name_its_task(ws: Path, clock: FixedClock) -> None:
    """Held: the SDR token cannot revoke the Researcher's grant nor authorize under a Researcher task."""
    researcher_grant = "GR{}".format(
        db_rows(ws, "SELECT g.id FROM grants g JOIN roles r ON r.id = g.role_id WHERE r.name = 'Researcher'")[0][0]
    )
    token = await make_token(ws, clock, kind="agency", agency="Outbound", role="SDR")
    async with serving([ws], clock) as url, http_client(f"{url}/mcp", token, "legacy") as client:
        message = await refused(client, "revoke", {"grant_id": researcher_grant})
        assert "belongs to another agency or role" in message

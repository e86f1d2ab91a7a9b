"""The console's Review page over ASGI: the packet, proposals accepted as one change set, and its revert.

The workspace is the Outbound blueprint plus history that makes two proposals: GR4 (crm.update, asks
first) was approved the last five times it asked, so grant_widen:GR4 proposes it act and notify up to
the largest amount approved; and twenty open tasks with no outcomes propose a Backlog role (role_add:A1).
"""

from __future__ import annotations

import re
from typing import Any, get_args

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies, deciding, inbox
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.review import changesets
from chief_of_staff.domain.review.proposals import ProposalKind
from chief_of_staff.http.console_review import KINDS
from tests.http.console_support import SCRIPT, apply_outbound, assert_self_contained, csrf_of, link, refusing_changes

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")
BOTH = ("grant_widen:GR4", "role_add:A1")


async def approved_five_times(store: Store, agency: str = "Outbound") -> None:
    """A grant that asks first (GR4 in the blueprint's workspace), and five requests under it, each approved."""
    actor = Actor(f"agency:{agency}", "agency")
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency=agency, capability="crm.update", mode="approve", rationale="CRM")
        )
        for n in range(5):
            asked = await ledger.authorize(
                tx,
                actor,
                agency=agency,
                role=None,
                capability="crm.update",
                amount_cents=1000 * (n + 1),
                target=f"lead{n}@acme.com",
                task_id=None,
                idempotency_key=None,
            )
            assert asked.decision_id is not None
            await deciding.decide(tx, OPERATOR_CLI, asked.decision_id, approve=True)


async def backlog(store: Store, agency: str = "Outbound", count: int = 20, title: str = "Research account") -> None:
    actor = Actor(f"agency:{agency}", "agency")
    async with store.write() as tx:
        for n in range(count):
            await inbox.add_task(tx, actor, title=f"{title} {n}", agency=agency)


@pytest.fixture
async def store(store: Store) -> Store:
    await apply_outbound(store)
    await approved_five_times(store)
    await backlog(store)
    return store


async def review(store: Store, client: httpx.AsyncClient) -> str:
    """Log in through a fresh link that lands on the Review page; the page."""
    assert (await client.get(await link(store, page="/review"))).status_code == 303
    page = await client.get("/review")
    assert page.status_code == 200
    return page.text


def checkboxes(page: str) -> dict[str, str]:
    """Each proposal's checkbox value (`key@version`: the change the page showed), by its key."""
    values = re.findall(r'<input type="checkbox" id="[^"]+" name="accept" value="([^"]+)">', page)
    return {value.rpartition("@")[0]: value for value in values}


def accepting(page: str, *keys: str, note: str = "") -> dict[str, Any]:
    """The review form as the browser sends it with `keys` checked: each checkbox carries the version it showed."""
    shown = checkboxes(page)
    return {"csrf": csrf_of(page), "accept": [shown.get(key, key + "@gone") for key in keys], "note": note}


async def state(store: Store) -> tuple[Any, ...]:
    """What recording or reverting would change: change sets, grants, roles, and the audit log's length."""
    async with store.read() as tx:
        return (
            await tx.scalar("SELECT count(*) FROM change_sets"),
            [tuple(row) for row in await tx.all("SELECT id, mode, per_action_cap_cents, version FROM grants")],
            [tuple(row) for row in await tx.all("SELECT name, status FROM roles")],
            await tx.scalar("SELECT count(*) FROM audit_log"),
        )


async def grant_and_backlog(store: Store) -> tuple[Any, ...]:
    async with store.read() as tx:
        grant = await tx.one("SELECT mode, per_action_cap_cents FROM grants WHERE id = 4")
        role = await tx.scalar("SELECT status FROM roles WHERE name = 'Backlog'")
    assert grant is not None
    return tuple(grant), role


def proposal(page: str, key: str) -> str:
    return page.split(f'<article class="proposal" id="{key}">', 1)[1].split("</article>", 1)[0]


# --- the packet ----------------------------------------------------------------------------------------


async def test_the_page_shows_the_packet_and_each_proposal_with_a_checkbox(
    store: Store, client: httpx.AsyncClient
) -> None:
    page = await review(store, client)
    for section in ("Since you last looked", "Goals: progress, pace and forecast", "Scorecards", "Anomalies"):
        assert section in page
    assert "Decisions waiting (0)" in page and "Proposals (2)" in page and "Last review: none yet." in page
    assert list(checkboxes(page)) == list(BOTH)
    widen = proposal(page, "grant_widen:GR4")
    assert "You approved GR4 crm.update (Outbound) the last 5 times" in widen
    assert "approved streak</span> 5" in widen and "largest approved</span> 50.00 USD" in widen
    # What it would change, from the store: the grant's bounds now and after.
    assert "Bounds now: mode &#34;approve&#34;" in widen and "After: mode &#34;notify&#34;" in widen
    assert "This widens authority" in widen and "per action cap</span> 50.00 USD" in widen
    backlog_role = proposal(page, "role_add:A1")
    assert "add a role (Backlog)" in backlog_role and "change</span> set_role" in backlog_role
    assert 'action="/review"' in page and "Record the review" in page


async def test_every_kind_of_proposal_has_words_on_the_page() -> None:
    assert set(KINDS) == set(get_args(ProposalKind))


async def test_opening_the_review_moves_the_mark_only_when_the_operator_looks(
    store: Store, client: httpx.AsyncClient
) -> None:
    await review(store, client)
    await backlog(store, count=1, title="Later")
    async with store.read() as tx:
        mark = await tx.scalar("SELECT last_audit_id FROM viewers WHERE name = 'operator'")
    # A subresource or prefetch load of the page reads only.
    assert (await client.get("/review", headers={"Sec-Fetch-Dest": "empty"})).status_code == 200
    async with store.read() as tx:
        assert await tx.scalar("SELECT last_audit_id FROM viewers WHERE name = 'operator'") == mark
    page = (await client.get("/review", headers={"Sec-Fetch-Dest": "document"})).text
    assert ": 1 task added." in page  # the task added since the last look
    async with store.read() as tx:
        moved = await tx.scalar("SELECT last_audit_id FROM viewers WHERE name = 'operator'")
        head = await tx.scalar("SELECT max(id) FROM audit_log")
    assert moved == head and moved != mark


# --- recording and reverting ---------------------------------------------------------------------------


async def test_recording_two_checked_proposals_makes_one_change_set_as_the_console_session(
    store: Store, client: httpx.AsyncClient
) -> None:
    page = await review(store, client)
    answer = await client.post("/review", data=accepting(page, *BOTH, note="Week 48: trust the CRM updates"))
    assert answer.status_code == 303 and answer.headers["location"] == "/review/change-sets/CS1"
    async with store.read() as tx:
        view = await changesets.get_change_set(tx, "CS1")
        audited = await tx.all(
            "SELECT action, actor, channel FROM audit_log WHERE json_extract(detail, '$.change_set') = 'CS1' "
            "ORDER BY id"
        )
    assert (view.kind, view.by, view.channel, view.note) == (
        "review",
        "operator:console-1",
        "verified",
        "Week 48: trust the CRM updates",
    )
    assert [(c.tool, c.subject) for c in view.changes] == [("update_grant", "GR4"), ("set_role", "R3")]
    assert [tuple(row) for row in audited] == [
        ("grant.update", "operator:console-1", "verified"),
        ("role.create", "operator:console-1", "verified"),
        ("review.record", "operator:console-1", "verified"),
    ]
    assert await grant_and_backlog(store) == (("notify", 5000), "active")
    shown = (await client.get(answer.headers["location"])).text
    assert "CS1: review recorded, 2 changes applied." in shown
    assert 'action="/review/change-sets/CS1/revert"' in shown and "Revert CS1" in shown
    # What the revert would apply, newest first, from the store: the role retired, GR4's bounds put back.
    undoes = shown.split('<ul class="undoes">', 1)[1].split("</ul>", 1)[0]
    assert undoes.index("&#34;name&#34;: &#34;Backlog&#34;, &#34;status&#34;: &#34;retired&#34;") < undoes.index(
        "GR4 (crm.update, version 2). Bounds now: mode &#34;notify&#34;"
    )
    assert "After: mode &#34;approve&#34;, per_action_cap_cents null" in undoes
    after = (await client.get("/review")).text
    assert 'Last review: <a href="/review/change-sets/CS1">CS1</a>' in after
    assert 'value="grant_widen:GR4@' not in after  # accepted, so no longer proposed


async def test_reverting_undoes_the_change_set_as_a_new_one(store: Store, client: httpx.AsyncClient) -> None:
    page = await review(store, client)
    before = await grant_and_backlog(store)
    await client.post("/review", data=accepting(page, *BOTH))
    answer = await client.post("/review/change-sets/CS1/revert", data={"csrf": csrf_of(page), "note": "Too soon"})
    assert answer.status_code == 303 and answer.headers["location"] == "/review/change-sets/CS2"
    assert await grant_and_backlog(store) == (before[0], "retired")  # an added role is retired, not deleted
    async with store.read() as tx:
        revert = await changesets.get_change_set(tx, "CS2")
        original = await changesets.get_change_set(tx, "CS1")
    assert (revert.kind, revert.reverts, revert.by, revert.note) == ("revert", "CS1", "operator:console-1", "Too soon")
    assert [(c.tool, c.subject) for c in revert.changes] == [("set_role", "R3"), ("update_grant", "GR4")]
    assert original.reverted_by == "CS2"
    shown = (await client.get("/review/change-sets/CS2")).text
    assert "CS2: reverted CS1, 2 changes undone." in shown and "Revert CS2" in shown
    reverted = (await client.get("/review/change-sets/CS1")).text
    assert "reverted by <a" in reverted and "Revert CS1</button>" not in reverted
    listed = (await client.get("/review")).text.split('id="change-sets"', 1)[1]
    assert listed.index(">CS2<") < listed.index(">CS1<")  # newest first, both reachable


async def test_a_revert_the_domain_refuses_shows_why_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    page = await review(store, client)
    await client.post("/review", data=accepting(page, "grant_widen:GR4"))
    async with store.write() as tx:  # the operator changes GR4 again from the terminal
        await grants.update_grant(tx, OPERATOR_CLI, "GR4", per_action_cap_cents=100)
    before = await state(store)
    answer = await client.post("/review/change-sets/CS1/revert", data={"csrf": csrf_of(page)})
    assert answer.status_code == 303 and answer.headers["location"] == "/review/change-sets/CS1"
    assert await state(store) == before
    shown = (await client.get("/review/change-sets/CS1")).text
    assert 'class="flash refused"' in shown and "GR4 has changed since CS1" in shown


async def test_nothing_checked_records_the_review_and_its_note_alone(store: Store, client: httpx.AsyncClient) -> None:
    page = await review(store, client)
    answer = await client.post("/review", data=accepting(page, note="Nothing to change this week"))
    assert answer.headers["location"] == "/review/change-sets/CS1"
    shown = (await client.get("/review/change-sets/CS1")).text
    assert "CS1: review recorded, with no changes." in shown and "Revert CS1" not in shown
    assert await grant_and_backlog(store) == (("approve", None), None)


# --- refusals ------------------------------------------------------------------------------------------


async def test_a_workspace_that_refuses_changes_still_shows_the_review_and_records_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    page = await review(store, client)
    async with refusing_changes(store, client) as http:
        shown = await http.get("/review")
        assert shown.status_code == 200 and "refuses changes" in shown.text and "Proposals (2)" in shown.text
        assert (await http.post("/review", data=accepting(page, *BOTH))).headers["location"] == "/review"
        assert "refuses changes" in (await http.get("/review")).text
    assert await grant_and_backlog(store) == (("approve", None), None)


async def test_a_key_no_longer_proposed_refuses_the_whole_record_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    page = await review(store, client)
    async with store.write() as tx:  # meanwhile, from the terminal: GR4 may act and notify already
        await grants.update_grant(tx, OPERATOR_CLI, "GR4", mode="notify")
    before = await state(store)
    answer = await client.post("/review", data=accepting(page, *BOTH))
    assert answer.status_code == 303 and answer.headers["location"] == "/review"
    assert await state(store) == before
    shown = (await client.get("/review")).text
    assert 'class="flash refused"' in shown
    assert "accept: grant_widen:GR4 is not proposed now (proposed: role_add:A1); nothing was changed." in shown


async def test_a_proposal_that_now_makes_another_change_refuses_the_record(
    store: Store, client: httpx.AsyncClient
) -> None:
    page = await review(store, client)
    form = accepting(page, *BOTH)
    form["accept"][0] = "grant_widen:GR4@0123456789abcdef"  # the change the operator read was another one
    before = await state(store)
    assert (await client.post("/review", data=form)).headers["location"] == "/review"
    assert await state(store) == before
    shown = (await client.get("/review")).text
    assert "accept: grant_widen:GR4 is no longer the change you read; nothing was changed." in shown
    assert "grant_widen:GR4 now proposes: You approved GR4" in shown


async def test_posts_without_the_csrf_token_are_refused_and_change_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    page = await review(store, client)
    await client.post("/review", data=accepting(page, "role_add:A1"))
    before = await state(store)
    for form in ({}, {"csrf": "guessed"}, {"csrf": ""}):
        recorded = await client.post("/review", data={**accepting(page, *BOTH), **form} if form else {"accept": BOTH})
        assert recorded.status_code == 403 and "Nothing was changed" in recorded.text
        reverted = await client.post("/review/change-sets/CS1/revert", data=form)
        assert reverted.status_code == 403 and "Nothing was changed" in reverted.text
    assert await state(store) == before


async def test_an_unknown_change_set_is_a_page_that_says_so(store: Store, client: httpx.AsyncClient) -> None:
    page = await review(store, client)
    for path in ("/review/change-sets/CS9", "/review/change-sets/GR1", "/review/change-sets?change_set=nope"):
        answer = await client.get(path)
        assert answer.status_code == 404 and "change set" in answer.text, path
    found = await client.get("/review/change-sets?change_set=cs1")
    assert found.status_code == 303 and found.headers["location"] == "/review/change-sets/CS1"
    before = await state(store)
    refused = await client.post("/review/change-sets/CS9/revert", data={"csrf": csrf_of(page)})
    assert refused.headers["location"] == "/review/change-sets/CS9"
    assert await state(store) == before


async def test_agency_text_is_shown_escaped(store: Store, client: httpx.AsyncClient) -> None:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name=SCRIPT, purpose="Hostile")
    await backlog(store, agency=SCRIPT, count=15, title=f'<img src=x onerror="alert(1)"> {SCRIPT}')
    page = await review(store, client)
    assert "role_add:A2" in page
    await client.post("/review", data=accepting(page, "role_add:A2", note=SCRIPT))
    for path in ("/review", "/review/change-sets/CS1"):
        shown = (await client.get(path)).text
        assert "<script" not in shown and "<img" not in shown, path
        assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in shown, path


async def test_the_pages_load_nothing_from_elsewhere_and_run_no_script(store: Store, client: httpx.AsyncClient) -> None:
    page = await review(store, client)
    await client.post("/review", data=accepting(page, *BOTH))
    for path in ("/review", "/review/change-sets/CS1"):
        assert_self_contained((await client.get(path)).text)

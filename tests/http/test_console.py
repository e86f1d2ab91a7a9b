"""The console in-process over ASGI: the one-time login, the Today page's acts, and every refusal.

The app is the real one (chief_of_staff.http.console) over the test's store and fixed clock, reached
through httpx's ASGI transport at the loopback address it was built for; nothing is faked.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies, brief, console_access, decisions, inbox, outcomes, viewers
from chief_of_staff.http import console, console_tables
from chief_of_staff.http.console import CSP, build_console_app
from tests.http.console_support import (
    BASE,
    SCRIPT,
    apply_outbound,
    assert_self_contained,
    csrf_of,
    escalate,
    link,
    login,
    refusing_changes,
)

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")


@pytest.fixture
async def store(store: Store) -> Store:
    """The Outbound blueprint, and D1: an escalation of 123.45 for spend.ads that parks its task."""
    await apply_outbound(store)
    await escalate(store, "Outbound", "SDR", "Buy the ad slot")
    return store


async def state(store: Store) -> tuple[Any, ...]:
    """What an act would change: the decisions, the tasks and the audit log's length."""
    async with store.read() as tx:
        return (
            [tuple(row) for row in await tx.all("SELECT id, status, note FROM decisions")],
            [tuple(row) for row in await tx.all("SELECT id, status, note FROM tasks")],
            await tx.scalar("SELECT count(*) FROM audit_log"),
        )


async def decision(store: Store, ref: str = "D1") -> decisions.DecisionView:
    async with store.read() as tx:
        return await decisions.get_decision(tx, ref)


# --- logging in -------------------------------------------------------------------------------------


async def test_a_login_link_sets_a_strict_session_cookie_and_drops_the_token_from_the_url(
    store: Store, client: httpx.AsyncClient
) -> None:
    path = await link(store)
    answer = await client.get(path)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    name, value = cookie.split(";", 1)[0].split("=", 1)
    assert name == console.cookie_name(store.path) and value.startswith(console_access.SESSION_PREFIX)
    flags = [flag.strip().lower() for flag in cookie.split(";")[1:]]
    assert {"httponly", "samesite=strict", "path=/"} <= set(flags)
    assert "secure" not in flags  # plain http on loopback; see the https test
    assert f"max-age={int(console_access.SESSION_TTL.total_seconds())}" in flags
    assert path.split("=", 1)[1] not in cookie
    assert "Decisions waiting for you (1)" in (await client.get("/")).text


async def test_a_login_link_works_once(store: Store, client: httpx.AsyncClient) -> None:
    path = await link(store)
    assert (await client.get(path)).status_code == 303
    again = await client.get(path)
    assert again.status_code == 401
    assert "already used" in again.text and "chief-of-staff console" in again.text
    assert "set-cookie" not in again.headers


async def test_an_expired_login_link_is_refused(store: Store, client: httpx.AsyncClient, clock: FixedClock) -> None:
    path = await link(store)
    clock.advance(console_access.LOGIN_TTL + timedelta(seconds=1))
    answer = await client.get(path)
    assert answer.status_code == 401 and "expired" in answer.text and "chief-of-staff console" in answer.text
    assert (await client.get("/")).status_code == 401


async def test_a_link_lands_on_its_page(store: Store, client: httpx.AsyncClient) -> None:
    answer = await client.get(await link(store, page="/decisions/D1"))
    assert answer.headers["location"] == "/decisions/D1"
    at_decision = await client.get("/decisions/D1")
    assert at_decision.status_code == 303 and at_decision.headers["location"] == "/#D1"


async def test_the_cookie_is_secure_when_served_over_https(store: Store) -> None:
    app = build_console_app(store, base_url="https://cos.example.com")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://cos.example.com") as http:
        answer = await http.get(await link(store))
    assert answer.status_code == 303
    assert "secure" in [flag.strip().lower() for flag in answer.headers["set-cookie"].split(";")]


async def test_without_a_session_every_page_says_how_to_log_in(store: Store, client: httpx.AsyncClient) -> None:
    for path in ("/", "/goals", "/decisions/D1"):
        answer = await client.get(path)
        assert answer.status_code == 401 and "chief-of-staff console" in answer.text
    client.cookies.set(console.cookie_name(store.path), console_access.SESSION_PREFIX + "forged")
    assert (await client.get("/")).status_code == 401


async def test_logging_out_ends_the_session(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client)
    answer = await client.post("/logout", data={"csrf": csrf})
    assert answer.status_code == 200 and "logged out" in answer.text
    assert (await client.get("/")).status_code == 401


async def test_a_session_left_idle_ends(store: Store, client: httpx.AsyncClient, clock: FixedClock) -> None:
    await login(store, client)
    clock.advance(console_access.IDLE_TIMEOUT)
    answer = await client.get("/")
    assert answer.status_code == 401 and "unused" in answer.text


# --- acting from the Today page -----------------------------------------------------------------------


async def test_today_shows_each_waiting_decision_with_its_full_request(store: Store, client: httpx.AsyncClient) -> None:
    await login(store, client)
    page = (await client.get("/")).text
    d1 = page.split('id="D1"', 1)[1].split("</article>", 1)[0]
    task = (await decision(store)).task_id
    assert task is not None
    for fact in ("spend.ads", "123.45 USD", "ads.example.com", task, "Buy the ad slot", "No grant lets Outbound"):
        assert fact in d1
    assert 'action="/decisions/D1"' in d1 and "Approve D1" in d1 and "Deny D1" in d1
    for section in ("Since you last looked", "Goals", "Budgets", "Inbox", "GR1 email.send", "Chat allowance"):
        assert section in page


async def test_approving_from_today_decides_through_the_domain_as_the_console_session(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client)
    answer = await client.post("/decisions/D1", data={"csrf": csrf, "action": "approve", "note": "one-off, fine"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    view = await decision(store)
    assert (view.status, view.decided_channel, view.note) == ("approved", "verified", "one-off, fine")
    async with store.read() as tx:
        actor = await tx.one("SELECT actor, channel FROM audit_log WHERE action = 'decision.approve'")
        task = await inbox.get_task(tx, view.task_id or "")
    assert actor is not None and tuple(actor) == ("operator:console-1", "verified")
    assert task.status == "open" and "authorize(" in task.note  # the work moved, as deciding.decide moves it
    after = (await client.get("/")).text
    assert "D1 approved." in after and 'id="D1"' not in after
    assert "D1 approved." not in (await client.get("/")).text  # a flash is shown once


async def test_denying_from_today_can_fail_the_waiting_task(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client)
    form = {"csrf": csrf, "action": "deny", "note": "not this month", "task_on_deny": "fail"}
    assert (await client.post("/decisions/D1", data=form)).status_code == 303
    view = await decision(store)
    async with store.read() as tx:
        task = await inbox.get_task(tx, view.task_id or "")
        actor = await tx.one("SELECT actor, channel FROM audit_log WHERE action = 'decision.deny'")
    assert view.status == "denied" and task.status == "failed"
    assert actor is not None and tuple(actor) == ("operator:console-1", "verified")


async def test_a_refused_act_shows_its_message_on_the_page(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client)
    await client.post("/decisions/D1", data={"csrf": csrf, "action": "approve"})
    before = await state(store)
    stale = await client.post("/decisions/D1", data={"csrf": csrf, "action": "deny"})
    assert stale.status_code == 303
    page = (await client.get("/")).text
    assert 'class="flash refused"' in page and "D1 was already approved" in page
    assert (await state(store))[:2] == before[:2]


async def test_opening_today_moves_the_operators_mark(store: Store, client: httpx.AsyncClient) -> None:
    await login(store, client)
    async with store.read() as tx:
        mark = await tx.scalar("SELECT last_audit_id FROM viewers WHERE name = 'operator'")
        head = await tx.scalar("SELECT max(id) FROM audit_log")
    assert mark == head
    assert "Nothing has changed" in (await client.get("/")).text


# --- hostile requests ---------------------------------------------------------------------------------


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    await login(store, client)
    before = await state(store)
    for form in ({"action": "approve"}, {"action": "approve", "csrf": "guessed"}, {"action": "approve", "csrf": ""}):
        answer = await client.post("/decisions/D1", data=form)
        assert answer.status_code == 403 and "Nothing was changed" in answer.text
    assert (await client.post("/logout", data={})).status_code == 403
    csrf = csrf_of((await client.get("/")).text)
    assert (await client.post("/decisions/D1", json={"csrf": csrf, "action": "approve"})).status_code == 403
    assert await state(store) == before
    assert (await client.get("/")).status_code == 200  # still logged in


async def test_a_post_from_a_foreign_origin_is_refused_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client)
    before = await state(store)
    form = {"csrf": csrf, "action": "approve"}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "http://127.0.0.1:9999"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        answer = await client.post("/decisions/D1", data=form, headers=headers)
        assert answer.status_code == 403, headers
    assert await state(store) == before
    # A form's own POST carries "Origin: null" under Referrer-Policy no-referrer; its token lets it in.
    own = await client.post("/decisions/D1", data=form, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 303 and (await decision(store)).status == "approved"


async def test_a_request_for_a_foreign_host_is_refused_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client)
    before = await state(store)
    for host in ("evil.example", "evil.example:8123", "127.0.0.1:9999", "localhost"):
        assert (await client.get("/", headers={"Host": host})).status_code == 421
        answer = await client.post("/decisions/D1", data={"csrf": csrf, "action": "approve"}, headers={"Host": host})
        assert answer.status_code == 421
        assert (await client.get(await link(store), headers={"Host": host})).status_code == 421
    for host in ("localhost:8123", "[::1]:8123"):
        assert (await client.get("/goals", headers={"Host": host})).status_code == 200
    after = await state(store)
    assert after[:2] == before[:2]  # the links minted above are the only rows written


async def test_script_in_an_agency_name_and_a_task_title_is_shown_escaped(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name=SCRIPT, purpose="Hostile")
    await escalate(store, SCRIPT, None, f'<img src=x onerror="alert(1)"> {SCRIPT}')
    await login(store, client)
    page = (await client.get("/")).text
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


async def test_every_answer_carries_the_security_headers(store: Store, client: httpx.AsyncClient) -> None:
    answers = [await client.get("/"), await client.get("/login?token=cosl_nope")]
    await login(store, client)
    answers += [await client.get(path) for path in ("/", "/goals", "/static/console.css", "/static/icon.svg", "/nope")]
    answers += [
        await client.post("/decisions/D1", data={}),
        await client.get("/", headers={"Host": "evil.example"}),
        await client.get("/", headers={"Origin": "https://evil.example"}),
    ]
    for answer in answers:
        assert answer.headers["content-security-policy"] == CSP, answer.url
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"
    assert "script-src" not in CSP and "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP


async def test_pages_load_nothing_from_elsewhere_and_run_no_script(store: Store, client: httpx.AsyncClient) -> None:
    await login(store, client)
    for path in ("/", "/goals", "/inbox", "/outcomes"):
        assert_self_contained((await client.get(path)).text, fragments=False)


async def test_a_workspace_that_refuses_changes_still_shows_today_and_says_why_nothing_moves(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client)
    async with refusing_changes(store, client) as http:
        today = await http.get("/")
        assert today.status_code == 200 and "refuses changes" in today.text and 'id="D1"' in today.text
        await http.post("/decisions/D1", data={"csrf": csrf, "action": "approve"})
        assert "refuses changes" in (await http.get("/")).text
        refused = await http.get(await link(store))
        assert refused.status_code == 503 and "chief-of-staff audit repair" in refused.text
    assert (await decision(store)).status == "pending"


# --- the secret prefix, same-site requests, and prefetches (review findings F1, F2, F5) --------------------

PREFIX = "/c/s3cret-Prefix_0123456789abcdefgh"  # 32 characters, like a real run's


async def test_a_console_under_a_secret_prefix_answers_only_there_and_scopes_its_cookie_to_it(store: Store) -> None:
    """Cookies are not scoped by port: Path=<prefix>/ keeps them from other servers on 127.0.0.1."""
    app = build_console_app(store, base_url=BASE + PREFIX)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        answer = await http.get(PREFIX + await link(store))
        assert answer.status_code == 303 and answer.headers["location"] == PREFIX + "/"
        flags = [flag.strip().lower() for flag in answer.headers["set-cookie"].split(";")[1:]]
        assert f"path={PREFIX.lower()}/" in flags and "path=/" not in flags
        today = await http.get(PREFIX + "/")
        assert today.status_code == 200
        for own in ("/static/console.css", "/static/icon.svg", "/goals", "/logout"):
            assert f'"{PREFIX}{own}"' in today.text, own  # every link and form stays under the prefix
        assert (await http.get(PREFIX + "/static/console.css")).status_code == 200
        for outside in (
            "/",
            "/goals",
            "/static/console.css",
            "/login?token=x",
            "/c/",
            PREFIX[:-1] + "/",
            PREFIX + "x/",
        ):
            elsewhere = await http.get(outside)
            assert elsewhere.status_code == 404 and elsewhere.headers["content-security-policy"] == CSP, outside


async def test_a_prefixed_console_mounted_at_a_public_url_still_answers(store: Store) -> None:
    """A future `serve --http` mounts the console under its public URL; the prefix is matched on the full path."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    public = "https://cos.example.com/console" + PREFIX
    parent = Starlette(routes=[Mount("/console", app=build_console_app(store, base_url=public))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=parent), base_url="https://cos.example.com") as http:
        answer = await http.get("/console" + PREFIX + await link(store, "/goals"))
        assert answer.status_code == 303 and answer.headers["location"] == f"/console{PREFIX}/goals"
        assert f"Path=/console{PREFIX}/" in answer.headers["set-cookie"]
        assert (await http.get(f"/console{PREFIX}/goals")).status_code == 200
        assert (await http.get("/console/goals")).status_code == 404


async def _changes(store: Store) -> dict[str, int]:
    async with store.read() as tx:
        view = await brief.build_brief(tx, viewers.OPERATOR_VIEWER, mark_seen=False)
        return brief.change_summary(view.changes, view.timezone)


async def test_a_same_site_or_cross_site_get_is_refused_and_moves_no_mark(
    store: Store, client: httpx.AsyncClient
) -> None:
    """Another port of 127.0.0.1 is the same site: its <img src=console> must not render Today nor move the mark."""
    await login(store, client)
    await escalate(store, "Outbound", "SDR", "Something new to notice")
    before = await _changes(store)
    for site in ("same-site", "cross-site"):
        for path in ("/", "/goals", "/static/console.css", "/decisions/D2"):
            answer = await client.get(path, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Dest": "image"})
            assert answer.status_code == 403 and "Decisions waiting" not in answer.text, (site, path)
    # the console's own subresource or prefetch of Today shows it, but only a look moves the mark
    for dest in ("image", "iframe", "empty"):
        shown = await client.get("/", headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": dest})
        assert shown.status_code == 200
    assert await _changes(store) == before
    looked = await client.get("/", headers={"Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"})
    assert looked.status_code == 200 and await _changes(store) != before


async def test_a_head_request_or_a_foreign_navigation_does_not_use_a_login_link(
    store: Store, client: httpx.AsyncClient
) -> None:
    path = await link(store)
    head = await client.head(path)  # a prefetch or a link preview
    assert head.status_code == 200 and "set-cookie" not in head.headers
    for site in ("cross-site", "same-site"):
        foreign = await client.get(path, headers={"Sec-Fetch-Site": site, "Origin": "null"})
        assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    opened = await client.get(path, headers={"Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"})
    assert opened.status_code == 303 and "set-cookie" in opened.headers  # the link was still unused


async def test_only_a_top_level_navigation_to_the_login_is_let_in_cross_site(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The file:// hand-off page has no origin, so its navigation is cross-site: that one request passes."""
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    for path, headers in (
        (await link(store), {**navigate, "Sec-Fetch-Dest": "image"}),  # an <img> elsewhere cannot use a link
        (await link(store), {**navigate, "Sec-Fetch-Mode": "no-cors"}),
        ("/", navigate),  # nor reach any other page cross-site
    ):
        refused = await client.get(path, headers=headers)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    assert (await client.post(await link(store), headers=navigate)).status_code == 403
    handed = await client.get(await link(store), headers=navigate)
    assert handed.status_code == 200 and "set-cookie" in handed.headers
    assert 'http-equiv="refresh"' in handed.text and "token" not in handed.text  # continues same-origin


# --- the inbox and outcome tables (read only) ---------------------------------------------------------

SDR = Actor("agency:Outbound", "agency")


async def log(store: Store, summary: str, *, result: str = "success", lesson: str | None = None, **more: Any) -> str:
    async with store.write() as tx:
        logged = await outcomes.log_outcome(
            tx, SDR, agency="Outbound", role="SDR", summary=summary, result=result, lesson=lesson, **more
        )
    return logged.id


def rows_of(page: str, table: str) -> list[str]:
    """The ids of a table's rows, in order."""
    body = page.split(f'<table class="{table}">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr id="([^"]+)"', body)


async def test_the_inbox_lists_unfinished_tasks_and_filters_by_status_and_agency(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Other", purpose="Elsewhere")
        other = await inbox.add_task(tx, OPERATOR_CLI, title="Other agency's chore", agency="Other")
        done = await inbox.add_task(tx, OPERATOR_CLI, title="Not needed after all", agency="Outbound")
        await inbox.update_task(tx, OPERATOR_CLI, done.id, status="cancelled", note="Shipped " + "x" * 200)
    await login(store, client)
    page = await client.get("/inbox")
    assert page.status_code == 200 and 'aria-current="page">Inbox' in page.text
    shown = rows_of(page.text, "tasks")
    assert other.id in shown and done.id not in shown
    waiting = re.search(r'<tr id="(T\d+)">\s*<td>T\d+</td>\s*<td>Buy the ad slot</td>(.*?)</tr>', page.text, re.S)
    assert waiting is not None and "<td>waiting</td>" in waiting.group(2) and "<td>D1</td>" in waiting.group(2)
    assert rows_of((await client.get("/inbox", params={"agency": "Other"})).text, "tasks") == [other.id]
    closed = (await client.get("/inbox", params={"status": "cancelled", "agency": ""})).text
    assert rows_of(closed, "tasks") == [done.id]
    assert "Shipped xxx" in closed and "x" * 100 not in closed  # the note, shortened


async def test_the_outcomes_page_filters_pages_and_links_the_same_filters_as_csv(
    store: Store, client: httpx.AsyncClient, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_tables, "OUTCOME_PAGE", 2)
    first = await log(
        store, "Sent the first emails", metrics=[outcomes.MetricDelta(key_result="meetings booked", delta=1)]
    )
    clock.advance(timedelta(days=1))
    failed = await log(store, "The list bounced", result="failure", lesson="Verify addresses first")
    newer = [await log(store, f"Follow-up round {n}") for n in range(3)]
    await login(store, client)

    page = (await client.get("/outcomes")).text
    assert rows_of(page, "outcomes") == [newer[2], newer[1]]
    following = re.search(r'href="(/outcomes\?before=[^"]+)" rel="next"', page)
    assert following is not None
    second = (await client.get(following.group(1).replace("&amp;", "&"))).text
    assert rows_of(second, "outcomes") == [newer[0], failed]
    assert 'href="/outcomes.csv"' in page

    assert rows_of((await client.get("/outcomes", params={"result": "failure"})).text, "outcomes") == [failed]
    assert rows_of((await client.get("/outcomes", params={"text": "bounced"})).text, "outcomes") == [failed]
    by_kr = (await client.get("/outcomes", params={"key_result": "meetings booked"})).text
    assert rows_of(by_kr, "outcomes") == [first]
    today = (clock.now() + timedelta(hours=1)).date().isoformat()
    filtered = (await client.get("/outcomes", params={"since": today, "until": today, "agency": "Outbound"})).text
    assert first not in rows_of(filtered, "outcomes") and newer[2] in rows_of(filtered, "outcomes")
    assert f'href="/outcomes.csv?agency=Outbound&amp;since={today}&amp;until={today}"' in filtered


async def test_the_outcome_csv_is_an_attachment_with_a_header_row_and_no_formulas(
    store: Store, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = await log(store, "Booked a meeting", evidence=["https://crm.example.com/1"])
    hostile = await log(store, '=HYPERLINK("https://evil.example","x")', result="partial", lesson="+1 then -2 @once")
    await login(store, client)
    answer = await client.get("/outcomes.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="outcomes.csv"'
    assert answer.headers["content-security-policy"] == CSP
    table = list(csv.reader(io.StringIO(answer.text)))
    assert table[0] == list(console_tables.CSV_HEADER)
    assert [row[0] for row in table[1:]] == [hostile, plain]
    assert table[1][6] == '\'=HYPERLINK("https://evil.example","x")' and table[1][7] == "'+1 then -2 @once"
    assert table[2][6] == "Booked a meeting" and table[2][11] == "https://crm.example.com/1"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in table for cell in row)
    assert [row[0] for row in csv.reader(io.StringIO((await client.get("/outcomes.csv?result=success")).text))] == [
        "id",
        plain,
    ]
    monkeypatch.setattr(console_tables, "CSV_MAX_ROWS", 1)  # the cap: the newest rows, and a header saying so
    capped = await client.get("/outcomes.csv")
    assert len(list(csv.reader(io.StringIO(capped.text)))) == 2 and capped.headers["x-rows-left-out"] == "yes"


async def test_the_tables_escape_what_they_show(store: Store, client: httpx.AsyncClient) -> None:
    async with store.write() as tx:
        hostile = await inbox.add_task(tx, OPERATOR_CLI, title=SCRIPT, agency="Outbound")
        await inbox.update_task(tx, OPERATOR_CLI, hostile.id, note=SCRIPT)
    await log(store, SCRIPT, lesson=SCRIPT)
    await login(store, client)
    for path in ("/inbox", "/outcomes"):
        page = (await client.get(path)).text
        assert "<script" not in page and "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page, path


async def test_the_tables_need_a_session_and_a_bad_filter_shows_the_domains_message(
    store: Store, client: httpx.AsyncClient
) -> None:
    for path in ("/inbox", "/outcomes", "/outcomes.csv"):
        answer = await client.get(path)
        assert answer.status_code == 401 and "chief-of-staff console" in answer.text, path
    await login(store, client)
    for path, query, says in (
        ("/inbox", {"agency": "Nobody"}, "Nobody"),
        ("/inbox", {"status": "<b>lost</b>"}, "is not a task status"),
        ("/outcomes", {"since": "2026-13-45"}, "since"),
        ("/outcomes", {"agency": "Nobody"}, "Nobody"),
        ("/outcomes", {"result": "meh"}, "is not a result"),
        ("/outcomes", {"before": "O999"}, "there is no outcome O999"),
        ("/outcomes.csv", {"until": "yesterday"}, "until"),
    ):
        answer = await client.get(path, params=query)
        assert answer.status_code == 400 and says in answer.text, (path, query, answer.text)
        assert "<b>" not in answer.text and "Traceback" not in answer.text


async def test_the_tables_are_get_only_and_move_no_mark(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client)
    await escalate(store, "Outbound", "SDR", "Something new to notice")
    await log(store, "Something else new")
    before = await _changes(store)
    for path in ("/inbox", "/outcomes", "/outcomes.csv"):
        assert (await client.get(path, headers={"Sec-Fetch-Dest": "document"})).status_code == 200
        assert (await client.post(path, data={"csrf": csrf})).status_code == 405
    assert await _changes(store) == before

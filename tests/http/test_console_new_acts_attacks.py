"""Adversarial probes of the console's newest acts, over ASGI: the Agencies page (pause, resume, retire,
reactivate), a grant's hand-over and restore, a webhook's new signing secret, the Risks section, and a refused
form brought back filled in.

The attacker is text from outside (agency names, purposes, charters, pause notes, rationales, token labels), a
forged or replayed form, an agency token or chat reaching for the acts the console makes, or a careless operator
(a double post, a stale tab). Each test states what must hold.

The workspace is the Outbound blueprint (A1 with R1 SDR and R2 Researcher; GR1 email.send and GR3 meeting.book
for the SDR, GR2 spend.tools for the Researcher) plus GR4, an every-role spend.* the operator gave at the
terminal; the Researcher revoked GR2, so GR2 holds its space until it is handed over.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from html import unescape
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError, OperatorActRefused
from chief_of_staff.domain import agencies, tokens, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.console_access import ConsoleSession
from chief_of_staff.http.console import build_console_app
from chief_of_staff.http.console_kit import ConsoleCore, Typed
from chief_of_staff.notify import endpoints
from tests.http.console_support import (
    BASE,
    apply_outbound,
    assert_self_contained,
    flash,
    hidden_fields,
    login,
    part,
    text_of,
)

pytestmark = pytest.mark.anyio

RESEARCHER = Actor("agency:Outbound/Researcher", "agency")
SDR = Actor("agency:Outbound/SDR", "agency")
CHAT = Actor("operator:chat", "chat")
WEEK = [BudgetSpec(period="week", max_cents=20000)]
# Text that would run, or add an attribute, wherever a page drew it unescaped (in an element or in value="...").
BREAKER = "\"'><img src=x onerror=alert(1)><script>alert(2)</script>"


class Markup(HTMLParser):
    """The tags and attribute names a page really has, as a browser parses it (not text that looks like them)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


@pytest.fixture
async def store(store: Store) -> Store:
    """Outbound, GR4 (every role's spend.* up to 50.00 an action) and GR2 revoked by the Researcher."""
    await apply_outbound(store)
    async with store.write() as tx:
        await grants.create_grant(
            tx,
            OPERATOR_CLI,
            GrantSpec(agency="Outbound", capability="spend.*", per_action_cap_cents=5000, budgets=WEEK),
        )
        await grants.revoke_grant(tx, RESEARCHER, "GR2", reason="the page said so")
    return store


@pytest.fixture
def app(store: Store) -> Any:
    return build_console_app(store, base_url=BASE)


def client_of(app: Any) -> httpx.AsyncClient:
    """A browser of its own (its own cookie jar) on the one app; a crash answers 500 instead of raising."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as http:
        yield http


async def state(store: Store) -> tuple[Any, ...]:
    """Everything but the sessions' own bookkeeping (a session's last use is kept even on a refused request)."""
    async with store.read() as tx:
        names = [row["name"] for row in await tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = []
        for name in sorted(names):
            if name not in ("console_sessions", "console_logins") and not name.startswith("sqlite_"):
                found.append((name, [tuple(row) for row in await tx.all(f'SELECT * FROM "{name}"')]))
    return tuple(found)


async def audit_count(store: Store, action: str) -> int:
    async with store.read() as tx:
        return int(await tx.scalar("SELECT count(*) FROM audit_log WHERE action = ?", (action,)))


async def grant(store: Store, short: str) -> grants.GrantView:
    async with store.read() as tx:
        return next(g for g in await grants.list_grants(tx, include_revoked=True) if g.id == short)


async def narrow_gr1(store: Store) -> None:
    """The operator narrows GR1 at the terminal: version 2, in approve mode, 20 a day."""
    async with store.write() as tx:
        await grants.update_grant(
            tx, OPERATOR_CLI, "GR1", mode="approve", budgets=[BudgetSpec(period="day", max_count=20)]
        )


async def said_after(client: httpx.AsyncClient, answer: httpx.Response) -> str:
    """What the page an act leads to (a 303, done or refused) says about it."""
    assert answer.status_code == 303, (answer.status_code, answer.text[:300])
    return flash((await client.get(answer.headers["location"])).text)


def workspace_form(page: str) -> dict[str, str]:
    """The Settings page's workspace form as a browser sends it: every field as the page filled it."""
    form = page.split('action="/settings/workspace"', 1)[1].split("</form>", 1)[0]
    return {unescape(n): unescape(v) for n, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form)}


# --- every act needs the session's token; no act answers a GET -------------------------------------------------

PARAMS = {
    "agency": "A1",
    "role": "R1",
    "grant": "GR2",
    "endpoint": "NE1",
    "token": "TK1",
    "decision": "D1",
    "change_set": "CS1",
}


def post_paths(app: Any) -> list[str]:
    """Every path the console answers a POST on, its parameters filled with ids that exist here."""
    paths = []
    for route in app._app.routes:  # the guard wraps the Starlette app
        if "POST" in (route.methods or ()):
            paths.append(re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], route.path))
    return paths


async def with_token_and_endpoint(store: Store) -> None:
    async with store.write() as tx:
        await tokens.create_token(tx, OPERATOR_CLI, kind="agency", agency="Outbound")
        await endpoints.add_endpoint(tx, OPERATOR_CLI, url="https://hooks.example.com/y", events=["brief.daily"])


async def test_every_post_the_console_answers_needs_the_sessions_token(
    store: Store, app: Any, client: httpx.AsyncClient
) -> None:
    """Drawn from the app's own routes, so an act added later cannot be left out of the check: without the
    session's CSRF token (or with another), every POST is refused with 403 and changes nothing."""
    await with_token_and_endpoint(store)
    await login(store, client, "/agencies")
    paths = post_paths(app)
    assert {"/agencies/A1/reactivate", "/authority/grants/GR2/hand-over", "/settings/webhooks/NE1/rotate"} <= set(paths)
    before = await state(store)
    full = {"confirm": "yes", "note": "x", "restore": "1", "version": "2", "seal": "x", "reason": "x"}
    for path in paths:
        for token in ({}, {"csrf": "guessed"}, {"csrf": ""}):
            answer = await client.post(path, data={**full, **token})
            assert answer.status_code == 403, (path, token, answer.status_code)
    assert await state(store) == before


async def test_no_new_act_answers_a_get_or_a_head(store: Store, client: httpx.AsyncClient) -> None:
    await with_token_and_endpoint(store)
    await login(store, client, "/agencies")
    before = await state(store)
    for path in (
        "/agencies/A1/pause",
        "/agencies/A1/retire",
        "/agencies/A1/reactivate?confirm=yes",
        "/agencies/A1/roles/R1/retire",
        "/agencies/A1/roles/R1/reactivate?confirm=yes",
        "/authority/grants/GR2/hand-over?confirm=yes",
        "/authority/grants/GR2/hand-over/preview",
        "/authority/grants/GR1/restore?restore=1",
        "/authority/grants/GR1/restore/preview?restore=1",
        "/settings/webhooks/NE1/rotate",
    ):
        for method in ("GET", "HEAD"):
            answer = await client.request(method, path)
            assert answer.status_code == 405, (method, path, answer.status_code)
    assert await state(store) == before


# --- text from outside stays data -------------------------------------------------------------------------------


async def test_text_from_outside_never_becomes_markup_or_an_attribute_on_the_new_pages(
    store: Store, client: httpx.AsyncClient
) -> None:
    """An agency named, described, chartered and paused by an injected model, a grant's rationale, and a never
    expiring operator token's label (on the Risks list): each page draws them as text, in elements and in
    attributes (aria-label, option values, value="..." of a form brought back)."""
    name = "Ev\"il'><b onmouseover=x>"
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name=name, purpose=BREAKER)
        await agencies.set_role(tx, OPERATOR_CLI, agency=name, name="R\"ole'><i onfocus=y>", charter=BREAKER)
        await grants.create_grant(tx, OPERATOR_CLI, GrantSpec(agency=name, capability="crm.read", rationale=BREAKER))
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency=name, capability="crm.*", rationale=BREAKER, budgets=WEEK)
        )
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR5", reason=BREAKER)
        await agencies.pause_agency(tx, Actor(f"agency:{name}", "agency"), name, note=BREAKER)
        await tokens.create_token(tx, OPERATOR_CLI, kind="operator", label=BREAKER)
        await grants.create_grant(tx, OPERATOR_CLI, GrantSpec(agency=name, capability="crm.write", rationale=BREAKER))
    csrf = await login(store, client, "/agencies")
    # A refused new grant, brought back with what was typed in its value="..." attributes.
    await client.post(
        "/authority/grants",
        data={"csrf": csrf, "agency": name, "role": BREAKER, "capability": BREAKER, "rationale": BREAKER},
    )
    pages = {
        "authority": (await client.get("/authority")).text,  # first: the next page drawn brings the form back
        "agencies": (await client.get("/agencies")).text,
        "settings": (await client.get("/settings")).text,
        "hand-over": (await client.post("/authority/grants/GR5/hand-over/preview", data={"csrf": csrf})).text,
    }
    async with store.write() as tx:
        await grants.update_grant(tx, OPERATOR_CLI, "GR6", rationale="plain now")
    pages["restore"] = (
        await client.post("/authority/grants/GR6/restore/preview", data={"csrf": csrf, "restore": "1"})
    ).text
    assert "Risks" in pages["settings"] and "never expires" in pages["settings"]
    assert "Ev&#34;il&#39;&gt;&lt;b onmouseover=x&gt;" in pages["agencies"]
    for which, page in pages.items():
        markup = Markup(page)
        assert not markup.tags & {"script", "img", "b", "i"}, (which, markup.tags)
        assert not [name for name in markup.attributes if name.startswith("on")], (which, markup.attributes)
        assert "<script" not in page, which
        assert_self_contained(page)
    assert pages["authority"].count('value="&#34;&#39;&gt;&lt;img src=x') >= 2  # brought back, escaped


# --- a refused form brought back ---------------------------------------------------------------------------------


async def test_a_refused_form_is_brought_back_only_to_the_session_that_sent_it(store: Store, app: Any) -> None:
    """Two sessions (two browsers, or the operator and whoever else holds a login) share one process."""
    async with client_of(app) as mine, client_of(app) as theirs:
        csrf = await login(store, mine, "/authority")
        await login(store, theirs, "/authority")
        typed = "zzz-typed-by-session-one"
        answer = await mine.post(
            "/authority/grants", data={"csrf": csrf, "agency": "Outbound", "capability": "x", "rationale": typed}
        )
        assert answer.status_code == 303
        assert typed not in (await theirs.get("/authority")).text
        assert typed in part((await mine.get("/authority")).text, "new-grant", "</form>")


async def test_a_refused_form_is_brought_back_only_in_the_form_that_was_refused(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    typed = "zzz-typed-for-gr4"
    answer = await client.post(
        "/authority/grants/GR4/preview",
        data={"csrf": csrf, "mode": "auto", "cap": "not money", "rationale": typed, "on_timeout": "deny"},
    )
    assert answer.status_code == 303
    page = (await client.get("/authority")).text
    assert page.count(typed) == 1 and typed in part(page, "GR4", "</form>")
    for other in ("GR1", "GR3"):
        assert typed not in part(page, other, "</form>"), other
    assert typed not in part(page, "new-grant", "</form>")
    # Another page drawn in between (another tab) uses it up: it is never drawn later, somewhere else.
    await client.post(
        "/authority/grants/GR4/preview",
        data={"csrf": csrf, "mode": "auto", "cap": "not money", "rationale": typed, "on_timeout": "deny"},
    )
    await client.get("/settings")
    assert typed not in (await client.get("/authority")).text


def _bare_request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "root_path": "", "headers": []})


async def test_a_kept_form_never_brings_back_a_token_a_seal_a_version_or_a_ticked_box(store: Store) -> None:
    """What binds a form to what the page showed (the CSRF token, a preview's seal, the version and settings
    it was compared with) and a box that confirms a widening are never carried over: the page draws its own
    bindings, and a widening is confirmed anew, on the page that shows what it does."""
    core = ConsoleCore(store, cookie="c", secure=False)
    session = ConsoleSession(1, "t" * 32, "", "", "")
    sent = {
        "csrf": ["t" * 32],
        "seal": ["s"],
        "seen": ["old"],
        "version": ["2"],
        "confirm": ["yes"],
        "covered_by": ["GR4@1:active"],
        "rationale": ["kept"],
    }
    core.refused(_bare_request(), session, "no", "/authority", keep=("GR2", sent))
    typed = Typed(core.kept[session.id])
    assert typed.value("GR2", "rationale") == "kept"
    for binding in ("csrf", "seal", "seen", "version", "confirm", "covered_by"):
        assert typed.value("GR2", binding) == "", binding
    assert not typed.checked("GR2", "confirm", "yes")


async def test_a_stale_settings_form_refused_for_a_typo_is_not_brought_back_to_undo_a_change_made_since(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The operator opens Settings (chat allowance 100.00); chat then narrows the allowance to 10.00. On the
    page opened before, the operator mistypes the window: the refusal brings the stale form back, but with the
    page's fresh digest of the settings, so correcting the typo and saving would put 100.00 back without a word.
    A form from before another change must be refused as stale, and not brought back, whatever else is wrong."""
    csrf = await login(store, client, "/settings")
    stale = workspace_form((await client.get("/settings")).text)
    assert stale["chat_allowance"] == "100.00"
    async with store.write() as tx:
        await workspace.update_settings(tx, CHAT, chat_allowance_cents=1000)
    said = await said_after(
        client, await client.post("/settings/workspace", data={**stale, "csrf": csrf, "chat_window_days": "7x"})
    )
    assert said.startswith("The settings changed since this page was opened"), said
    redrawn = workspace_form((await client.get("/settings")).text)
    assert redrawn["chat_allowance"] == "10.00"
    await client.post("/settings/workspace", data={**redrawn, "csrf": csrf, "chat_window_days": "7"})
    async with store.read() as tx:
        assert (await workspace.get(tx)).chat_allowance_cents == 1000


async def test_a_fresh_settings_form_with_a_typo_is_still_brought_back(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/settings")
    form = workspace_form((await client.get("/settings")).text)
    await client.post("/settings/workspace", data={**form, "csrf": csrf, "name": "Acme GmbH", "chat_window_days": "x"})
    page = (await client.get("/settings")).text
    assert flash(page).startswith("Nothing was changed:") and 'value="Acme GmbH"' in page


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "../../../../etc/passwd"),
        ("timezone", "Europe/Berlin\u0000"),
        ("name", ""),
        ("currency", "\u20ac\u20ac\u20ac"),
        ("chat_allowance", "\uff11\uff10\uff10"),
        ("chat_allowance", "999,999,999,999,999.99"),
        ("chat_window_days", "\u0663"),
        ("daily_brief_at", "0\u0668:0\u0660"),
        ("daily_brief_at", "24:00"),
    ],
)
async def test_odd_settings_on_a_fresh_form_are_read_and_refused(
    store: Store, client: httpx.AsyncClient, field: str, value: str
) -> None:
    """With the stale check made first, odd values still meet the field checks when the form is current."""
    csrf = await login(store, client, "/settings")
    form = workspace_form((await client.get("/settings")).text)
    before = await state(store)
    said = await said_after(client, await client.post("/settings/workspace", data={**form, "csrf": csrf, field: value}))
    assert not said.startswith("The settings changed since"), said
    assert await state(store) == before


def holder_sent(page: str) -> str:
    """What the create-token form's "Acts for" sends as the page draws it: the selected option, else the first."""
    select = part(page, "token-holder", "</select>")
    options = re.findall(r'<option value="([^"]*)"( selected)?', select)
    chosen = [value for value, selected in options if selected]
    return unescape(chosen[0] if chosen else options[0][0])


async def test_a_refused_token_form_never_comes_back_as_an_operator_token(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The operator asks for a token for Outbound / Researcher with a typo in its expiry. Meanwhile the agency
    paused itself, so the page no longer offers it. The form comes back with no holder chosen, and a browser
    then sends its first choice: the operator. Fixing the typo and pressing Create would make an operator
    token (the verified channel) for an agency's runtime. What was chosen must not silently become that."""
    csrf = await login(store, client, "/settings")
    assert holder_sent((await client.get("/settings")).text) == "operator"  # a fresh form: the first choice
    async with store.write() as tx:
        await agencies.pause_agency(tx, RESEARCHER, "Outbound", note="waiting")
    await client.post(
        "/settings/tokens", data={"csrf": csrf, "holder": "A1/R2", "label": "runtime", "expires_in_days": "3O"}
    )
    page = (await client.get("/settings")).text
    assert 'value="runtime"' in part(page, "new-token", "</form>")  # the form did come back
    assert holder_sent(page) != "operator"
    # Sent as drawn, it is refused for want of a holder: nothing is created.
    form = {"csrf": csrf, "holder": holder_sent(page), "label": "runtime", "expires_in_days": "30"}
    before = await state(store)
    assert "Acts for" in await said_after(client, await client.post("/settings/tokens", data=form))
    assert await state(store) == before


def agency_sent(page: str) -> str:
    """What the new-grant form's Agency sends as the page draws it: the selected option, else the first."""
    select = part(page, "new-agency", "</select>")
    options = re.findall(r'<option value="([^"]*)"( selected)?', select)
    chosen = [value for value, selected in options if selected]
    return unescape(chosen[0] if chosen else options[0][0])


async def test_a_refused_new_grant_never_comes_back_for_another_agency(store: Store, client: httpx.AsyncClient) -> None:
    """The operator gives Support spend.ads with a typo in the cap. Meanwhile Support paused itself, so the page
    no longer offers it: the form comes back with no agency chosen, and a browser sends the first, Outbound.
    Fixing the typo and pressing Give (a grant has no preview) gives Outbound authority meant for Support."""
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Support", purpose="Answer customers.")
    csrf = await login(store, client, "/authority")
    typed = {"agency": "Support", "capability": "spend.ads", "mode": "auto", "cap": "5O.00", "on_timeout": "deny"}
    async with store.write() as tx:
        await agencies.pause_agency(tx, Actor("agency:Support", "agency"), "Support", note="waiting")
    await client.post("/authority/grants", data={"csrf": csrf, **typed})
    page = (await client.get("/authority")).text
    assert 'value="spend.ads"' in part(page, "new-grant", "</form>")  # the form did come back
    assert agency_sent(page) != "Outbound"


# --- reactivation takes exactly the ticked box -------------------------------------------------------------------


@pytest.mark.parametrize(
    "confirm",
    [[], ["YES"], ["yes "], [" yes"], ["on"], ["true"], ["1"], ["no", "yes"], ["yes\u0000"], ["ｙｅｓ"]],
)
async def test_reactivation_takes_exactly_the_ticked_box(
    store: Store, client: httpx.AsyncClient, confirm: list[str]
) -> None:
    async with store.write() as tx:
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", status="retired")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", status="retired")
    csrf = await login(store, client, "/agencies")
    before = await state(store)
    pairs = [("csrf", csrf), *(("confirm", value) for value in confirm)]
    for path in ("/agencies/A1/reactivate", "/agencies/A1/roles/R1/reactivate"):
        answer = await client.post(
            path, content=str(httpx.QueryParams(pairs)), headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert "tick the box" in await said_after(client, answer), path
    assert await state(store) == before


def resume_form(page: str, agency: str = "A1") -> dict[str, str]:
    """The Resume form of an agency's card as a browser sends it."""
    form = page.split(f'action="/agencies/{agency}/resume"', 1)[1].split("</form>", 1)[0]
    return {unescape(n): unescape(v) for n, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form)}


async def test_a_resume_from_a_stale_page_does_not_lift_a_pause_it_never_showed(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The agency paused itself ("waiting for data"); the operator's Agencies page shows that, with Resume.
    Meanwhile chat pauses it again with a reason of its own ("a customer complained: hold all sends"), which
    takes the pause over. Resume pressed on the page opened before would lift a stop the operator never saw;
    it is refused, saying the pause changed, and the page drawn after resumes it."""
    async with store.write() as tx:
        await agencies.pause_agency(tx, SDR, "Outbound", note="waiting for data")
    csrf = await login(store, client, "/agencies")
    stale = resume_form((await client.get("/agencies")).text)
    async with store.write() as tx:
        await agencies.pause_agency(tx, CHAT, "Outbound", note="a customer complained: hold all sends")
    before = await state(store)
    said = await said_after(client, await client.post("/agencies/A1/resume", data={**stale, "csrf": csrf}))
    assert "pause changed since" in said and "a customer complained" in said, said
    assert await state(store) == before
    fresh = resume_form((await client.get("/agencies")).text)
    await client.post("/agencies/A1/resume", data={**fresh, "csrf": csrf})
    async with store.read() as tx:
        assert (await agencies.get_agency(tx, "A1")).paused_at is None


async def test_a_reactivation_never_says_an_agency_works_while_it_is_paused(
    store: Store, client: httpx.AsyncClient
) -> None:
    """A stale tab's Reactivate, pressed after the agency was brought back and paused elsewhere, and the
    reactivation of an agency retired while paused (its pause comes back with it): the operator is not told
    it is 'active again' while nothing is allowed for it, and a reactivation of what is not retired writes
    nothing."""
    csrf = await login(store, client, "/agencies")
    await client.post("/agencies/A1/pause", data={"csrf": csrf, "note": "legal hold"})
    confirmed = {"csrf": csrf, "confirm": "yes"}
    before = await state(store)
    said = await said_after(client, await client.post("/agencies/A1/reactivate", data=confirmed))
    assert "is not retired" in said and "still paused" in said and "legal hold" in said, said
    assert await state(store) == before
    await client.post("/agencies/A1/retire", data={"csrf": csrf})
    said = await said_after(client, await client.post("/agencies/A1/reactivate", data=confirmed))
    assert said.startswith("Outbound is active again") and "still paused" in said, said
    async with store.read() as tx:
        assert (await agencies.get_agency(tx, "A1")).status == "paused"
    before = await state(store)
    said = await said_after(client, await client.post("/agencies/A1/roles/R1/reactivate", data=confirmed))
    assert said == "SDR (Outbound) is not retired, so nothing was changed.", said
    assert await state(store) == before


async def test_a_reactivation_posted_twice_at_once_is_one_reactivation(store: Store, client: httpx.AsyncClient) -> None:
    async with store.write() as tx:
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", status="retired")
    csrf = await login(store, client, "/agencies")
    answers = await asyncio.gather(
        *(client.post("/agencies/A1/reactivate", data={"csrf": csrf, "confirm": "yes"}) for _ in range(2))
    )
    assert [answer.status_code for answer in answers] == [303, 303]
    async with store.read() as tx:
        assert (await agencies.get_agency(tx, "A1")).status == "active"
    assert (await client.get("/agencies")).status_code == 200


# --- seals: a confirmation applies only to what its page showed, in its session -----------------------------------


async def test_a_hand_over_sealed_in_another_session_changes_nothing(store: Store, app: Any) -> None:
    async with client_of(app) as mine, client_of(app) as theirs:
        csrf = await login(store, mine, "/authority")
        other = await login(store, theirs, "/authority")
        page = await mine.post("/authority/grants/GR2/hand-over/preview", data={"csrf": csrf})
        sealed = {**hidden_fields(page.text), "confirm": "yes"}
        before = await state(store)
        answer = await theirs.post("/authority/grants/GR2/hand-over", data={**sealed, "csrf": other})
        assert "not the one its page showed" in await said_after(theirs, answer)
        assert await state(store) == before


async def test_a_seal_for_one_act_makes_no_other(store: Store, client: httpx.AsyncClient) -> None:
    """A restore's seal does not hand over or change, a hand-over's does not restore or change, and a grant's
    seal does not act on another grant."""
    await narrow_gr1(store)
    async with store.write() as tx:
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR3", reason="done")
    csrf = await login(store, client, "/authority")
    restore = hidden_fields(
        (await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})).text
    )
    hand = hidden_fields((await client.post("/authority/grants/GR2/hand-over/preview", data={"csrf": csrf})).text)
    before = await state(store)
    forged = [
        ("/authority/grants/GR1/hand-over", {**restore, "confirm": "yes", "covered_by": ""}),
        ("/authority/grants/GR1", {**restore, "mode": "auto"}),
        ("/authority/grants/GR2/restore", {**hand, "restore": "1"}),
        ("/authority/grants/GR2", {**hand, "mode": "auto"}),
        ("/authority/grants/GR3/hand-over", {**hand, "confirm": "yes"}),
        ("/authority/grants/GR3/restore", restore),
        ("/authority/grants/GR4/restore", restore),
    ]
    for path, form in forged:
        answer = await client.post(path, data=form)
        assert answer.status_code == 303, (path, answer.status_code)
        assert await state(store) == before, path


async def test_a_restore_replayed_after_the_grant_moved_on_and_came_back_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The restore is sealed to the version it was compared with; a grant whose bounds came back to what the
    preview showed is still at another version, so the old confirmation is refused."""
    await narrow_gr1(store)
    csrf = await login(store, client, "/authority")
    sealed = hidden_fields(
        (await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})).text
    )
    assert (await client.post("/authority/grants/GR1/restore", data=sealed)).status_code == 303
    assert (await grant(store, "GR1")).version == 3
    await narrow_gr1(store)  # version 4: version 2's bounds again, as when the preview was sealed
    before = await state(store)
    said = await said_after(client, await client.post("/authority/grants/GR1/restore", data=sealed))
    assert "changed since the preview" in said
    assert await state(store) == before


async def test_a_restore_posted_twice_at_once_makes_one_version(store: Store, client: httpx.AsyncClient) -> None:
    await narrow_gr1(store)
    csrf = await login(store, client, "/authority")
    sealed = hidden_fields(
        (await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})).text
    )
    async with store.read() as tx:
        versions = await tx.scalar("SELECT count(*) FROM grant_versions WHERE grant_id = 1")
        rows = await tx.scalar("SELECT count(*) FROM audit_log WHERE subject = 'GR1'")
    answers = await asyncio.gather(*(client.post("/authority/grants/GR1/restore", data=sealed) for _ in range(3)))
    assert all(answer.status_code == 303 for answer in answers)
    assert (await grant(store, "GR1")).version == 3
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM grant_versions WHERE grant_id = 1") == versions + 1
        assert await tx.scalar("SELECT count(*) FROM audit_log WHERE subject = 'GR1'") == rows + 1


async def test_a_hand_over_posted_twice_at_once_hands_over_once(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    sealed = {
        **hidden_fields((await client.post("/authority/grants/GR2/hand-over/preview", data={"csrf": csrf})).text),
        "confirm": "yes",
    }
    versions = (await grant(store, "GR2")).version
    answers = await asyncio.gather(*(client.post("/authority/grants/GR2/hand-over", data=sealed) for _ in range(3)))
    assert all(answer.status_code == 303 for answer in answers)
    assert await audit_count(store, "grant.hand_over") == 1
    assert (await grant(store, "GR2")).version == versions + 1


async def test_a_hand_over_replayed_after_a_covering_grant_moved_and_came_back_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The page listed GR4 at version 1; GR4 is narrowed and restored (its bounds as shown, at version 3):
    the list the seal binds names versions, so the old confirmation is refused."""
    csrf = await login(store, client, "/authority")
    sealed = {
        **hidden_fields((await client.post("/authority/grants/GR2/hand-over/preview", data={"csrf": csrf})).text),
        "confirm": "yes",
    }
    assert sealed["covered_by"] == "GR4@1:active"
    async with store.write() as tx:
        await grants.update_grant(tx, OPERATOR_CLI, "GR4", mode="approve")
        await grants.restore_version(tx, OPERATOR_CLI, "GR4", 1)
    before = await state(store)
    said = await said_after(client, await client.post("/authority/grants/GR2/hand-over", data=sealed))
    assert "changed since its page was shown" in said
    assert await state(store) == before


async def test_an_agency_rewriting_its_grant_cannot_grow_the_authority_page_without_bound(
    store: Store, client: httpx.AsyncClient
) -> None:
    """An agency token (or a prompt-injected agency over stdio) narrows GR4's cap 300 times, a cent at a time:
    each is a change any actor may make (it widens nothing), and each is a version. The Authority page must stay
    usable for the operator (this is the verified channel's one view of authority), not list all 300 in GR4's
    card; older versions stay restorable by number. (A rationale is the operator's words: the agency may not
    rewrite it at all.)"""
    async with store.write() as tx:
        with pytest.raises(OperatorActRefused, match="rationale is the operator's words"):
            await grants.update_grant(tx, SDR, "GR1", rationale="noise")
    for index in range(300):
        async with store.write() as tx:
            await grants.update_grant(tx, SDR, "GR4", per_action_cap_cents=5_000 - index)
    await login(store, client, "/authority")
    page = (await client.get("/authority")).text
    versions = part(page, "GR4-versions", "</details>")
    # The first narrowing repeats the cap GR4 has, so it makes no version: 300 in all, the newest in force.
    assert versions.count('<tr><th scope="row">') == 20 and versions.count('type="hidden" name="restore"') == 19
    assert "The newest 20 of 300 versions are listed; an older one by its number" in text_of(versions)
    assert 'name="restore" type="number" min="1" max="300" required' in versions


async def test_a_restore_or_hand_over_of_a_grant_in_the_wrong_state_is_refused_plainly(
    store: Store, client: httpx.AsyncClient
) -> None:
    """A revoked grant is not restored (it is given anew), an active one is not handed over, and a grant handed
    over is not handed over again: each a message on the page, never a crash, never a change."""
    csrf = await login(store, client, "/authority")
    before = await state(store)
    for path, form in (
        ("/authority/grants/GR2/restore/preview", {"restore": "1"}),
        ("/authority/grants/GR2/restore", {"restore": "1", "version": "2", "seal": "x"}),
        ("/authority/grants/GR1/hand-over/preview", {}),
        ("/authority/grants/GR4/hand-over/preview", {}),
    ):
        answer = await client.post(path, data={"csrf": csrf, **form})
        assert answer.status_code == 303, (path, answer.status_code)
        followed = await client.get(answer.headers["location"])
        assert followed.status_code == 200 and 'class="flash refused"' in followed.text, path
    assert await state(store) == before


async def test_the_new_pages_cannot_be_framed_or_run_script(store: Store, client: httpx.AsyncClient) -> None:
    """Another page on 127.0.0.1 could frame a hand-over and steer the operator's click (clickjacking)."""
    await with_token_and_endpoint(store)
    csrf = await login(store, client, "/agencies")
    answers = [
        await client.get("/agencies"),
        await client.post("/authority/grants/GR2/hand-over/preview", data={"csrf": csrf}),
    ]
    await narrow_gr1(store)
    answers.append(await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"}))
    await client.post("/settings/webhooks/NE1/rotate", data={"csrf": csrf})
    answers.append(await client.get("/settings/created"))
    for answer in answers:
        assert answer.status_code == 200, answer.request.url
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "script-src" not in answer.headers["content-security-policy"]  # default-src 'none' covers it
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"


# --- odd ids and numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    ["X9", "A9", "A\u0669", "A" + "9" * 18, "A" + "9" * 40, "A-1", "A0", "A1%00", "%E2%80%AEA1", "..%2F..", "A%2F1"],
)
async def test_odd_ids_in_the_new_acts_paths_are_refused_plainly(
    store: Store, client: httpx.AsyncClient, ref: str
) -> None:
    """Unknown, negative, huge, other-digit and path-like ids: never a crash, never a change."""
    await with_token_and_endpoint(store)
    csrf = await login(store, client, "/agencies")
    before = await state(store)
    paths = [
        f"/agencies/{ref}/pause",
        f"/agencies/{ref}/reactivate",
        f"/agencies/A1/roles/{ref}/retire",
        f"/agencies/{ref}/roles/R1/reactivate",
        f"/authority/grants/{ref.replace('A', 'GR')}/restore/preview",
        f"/authority/grants/{ref.replace('A', 'GR')}/hand-over/preview",
        f"/authority/grants/{ref.replace('A', 'GR')}/hand-over",
        f"/settings/webhooks/{ref.replace('A', 'NE')}/rotate",
    ]
    for path in paths:
        answer = await client.post(path, data={"csrf": csrf, "confirm": "yes", "restore": "1"})
        assert answer.status_code in (303, 400, 404, 405), (path, answer.status_code)
        if answer.status_code == 303:
            followed = await client.get(answer.headers["location"])
            assert followed.status_code == 200 and 'class="flash refused"' in followed.text, path
    assert await state(store) == before


@pytest.mark.parametrize("number", ["", "0", "-1", "\u0663", "\u00b9", "1e3", "1.0", " 1", "9" * 12, "9" * 40, "1\n"])
async def test_odd_version_numbers_restore_nothing(store: Store, client: httpx.AsyncClient, number: str) -> None:
    await narrow_gr1(store)
    csrf = await login(store, client, "/authority")
    before = await state(store)
    preview = await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": number})
    assert preview.status_code == 303, preview.status_code
    assert "version" in flash((await client.get(preview.headers["location"])).text)
    answer = await client.post("/authority/grants/GR1/restore", data={"csrf": csrf, "restore": number, "version": "2"})
    assert answer.status_code == 303
    assert await state(store) == before


async def test_an_overlong_pause_note_or_hand_over_reason_is_refused_without_a_crash(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/agencies")
    before = await state(store)
    answer = await client.post("/agencies/A1/pause", data={"csrf": csrf, "note": "x" * 60000})
    assert "too long" in await said_after(client, answer)
    sealed = hidden_fields((await client.post("/authority/grants/GR2/hand-over/preview", data={"csrf": csrf})).text)
    answer = await client.post(
        "/authority/grants/GR2/hand-over", data={**sealed, "confirm": "yes", "reason": "r" * 60000}
    )
    assert answer.status_code in (303, 413), answer.status_code
    assert await state(store) == before
    # A control character in a note is kept as typed (it is data), and drawn as text: no crash either way.
    assert (await client.post("/agencies/A1/pause", data={"csrf": csrf, "note": "a\u0000b"})).status_code == 303
    assert (await client.get("/agencies")).status_code == 200


# --- agencies and chat reach for the console's acts ---------------------------------------------------------------


async def test_an_agency_or_chat_cannot_make_what_the_console_makes(store: Store, client: httpx.AsyncClient) -> None:
    """Lift the operator's pause, reactivate, hand over, restore a wider version, or see a new signing secret:
    each stays the verified channel's, whatever the console now offers beside the terminal."""
    await narrow_gr1(store)
    await with_token_and_endpoint(store)
    csrf = await login(store, client, "/agencies")
    await client.post("/agencies/A1/pause", data={"csrf": csrf, "note": "hold"})
    async with store.write() as tx:
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Researcher", status="retired")
    before = await state(store)
    acts = [
        lambda tx, who: agencies.resume_agency(tx, who, "Outbound"),
        lambda tx, who: agencies.set_role(tx, who, agency="Outbound", name="Researcher", status="active"),
        lambda tx, who: grants.revoke_grant(tx, who, "GR2", hand_over=True),
        lambda tx, who: grants.restore_version(tx, who, "GR1", 1),
        lambda tx, who: endpoints.rotate_secret(tx, who, "NE1"),
    ]
    for who in (SDR, RESEARCHER, Actor("agency:Outbound", "agency"), CHAT):
        for index, act in enumerate(acts):
            with pytest.raises(ChiefOfStaffError):
                async with store.write() as tx:
                    await act(tx, who)
            assert await state(store) == before, (who, index)


# --- a new signing secret ---------------------------------------------------------------------------------------


async def test_a_double_posted_rotation_shows_the_secret_that_signs(store: Store, client: httpx.AsyncClient) -> None:
    await with_token_and_endpoint(store)
    csrf = await login(store, client, "/settings")
    answers = await asyncio.gather(
        *(client.post("/settings/webhooks/NE1/rotate", data={"csrf": csrf}) for _ in range(2))
    )
    assert [answer.status_code for answer in answers] == [303, 303]
    shown = re.search(r'id="secret-value">([^<]+)<', (await client.get("/settings/created")).text)
    assert shown is not None
    async with store.read() as tx:
        assert await tx.scalar("SELECT secret FROM webhook_endpoints WHERE id = 1") == unescape(shown.group(1))


async def test_a_new_signing_secret_is_shown_only_to_the_session_that_made_it(store: Store, app: Any) -> None:
    await with_token_and_endpoint(store)
    async with client_of(app) as mine, client_of(app) as theirs:
        csrf = await login(store, mine, "/settings")
        await login(store, theirs, "/settings")
        assert (await mine.post("/settings/webhooks/NE1/rotate", data={"csrf": csrf})).status_code == 303
        elsewhere = await theirs.get("/settings/created")
        assert elsewhere.status_code == 303 and "secret-value" not in elsewhere.text
        assert 'id="secret-value"' in (await mine.get("/settings/created")).text


async def test_settings_rotation_of_a_removed_endpoint_is_refused(store: Store, client: httpx.AsyncClient) -> None:
    await with_token_and_endpoint(store)
    async with store.write() as tx:
        await endpoints.remove_endpoint(tx, OPERATOR_CLI, "NE1")
    csrf = await login(store, client, "/settings")
    before = await state(store)
    said = await said_after(client, await client.post("/settings/webhooks/NE1/rotate", data={"csrf": csrf}))
    assert "was removed" in said and await state(store) == before

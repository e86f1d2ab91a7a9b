"""The console's Settings page in-process over ASGI: the workspace's settings, access tokens (a secret shown
once, in the create response alone), and webhook endpoints (a signing secret shown once; test; remove; health),
each act made as the console session on the verified channel.

The app is the real one over the test's store and fixed clock; the workspace is the Outbound blueprint
(agency A1 with roles R1 SDR and R2 Researcher).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.domain import tokens, workspace
from chief_of_staff.notify import endpoints
from tests.http.console_support import (
    ESCAPED,
    SCRIPT,
    SETTINGS,
    apply_outbound,
    assert_self_contained,
    flash,
    login,
    part,
    text_of,
)

pytestmark = pytest.mark.anyio

HOOK = "https://hooks.example.com/cos/inbound"


@pytest.fixture
async def store(store: Store) -> Store:
    return await apply_outbound(store)


async def seen(client: httpx.AsyncClient) -> str:
    """The settings' digest the Settings page's form carries: the settings as it showed them."""
    found = re.search(r'name="seen" value="([^"]+)"', (await client.get("/settings")).text)
    assert found is not None
    return found.group(1)


async def made(client: httpx.AsyncClient, path: str, form: dict[str, Any]) -> httpx.Response:
    """Post a create form; it answers 303 to the page that shows the new secret once: that page."""
    posted = await client.post(path, data=form)
    assert posted.status_code == 303 and posted.headers["location"] == "/settings/created", posted.text
    assert "secret" not in posted.headers["location"]
    return await client.get("/settings/created")


def secret_on(page: str) -> str:
    found = re.search(r'id="secret-value">([^<]+)<', page)
    assert found is not None
    return unescape(found.group(1))


async def state(store: Store) -> tuple[Any, ...]:
    """What a settings act could change: the workspace, tokens, endpoints, deliveries, and the audit log."""
    tables = ("workspace", "access_tokens", "webhook_endpoints", "webhook_deliveries", "audit_log")
    found = []
    async with store.read() as tx:
        for table in tables:
            found.append([tuple(row) for row in await tx.all(f"SELECT * FROM {table} ORDER BY rowid")])
    return tuple(found)


async def audit_rows(store: Store, action: str) -> list[tuple[Any, ...]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT actor, channel, subject, detail FROM audit_log WHERE action = ?", (action,))
    return [tuple(row) for row in rows]


async def everything_audited(store: Store) -> str:
    async with store.read() as tx:
        return " ".join(str(tuple(row)) for row in await tx.all("SELECT * FROM audit_log"))


# --- the page ----------------------------------------------------------------------------------------------


async def test_the_page_shows_the_settings_the_tokens_and_the_endpoints(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await tokens.create_token(tx, OPERATOR_CLI, kind="agency", agency="Outbound", role="SDR", label="Cowork")
        await endpoints.add_endpoint(tx, OPERATOR_CLI, url=HOOK, events=["decision.opened"])
    await login(store, client, "/settings")
    page = (await client.get("/settings")).text
    assert 'aria-current="page">Settings' in page
    form = part(page, "workspace", "</section>")
    for name, value in SETTINGS.items():
        assert f'name="{name}" value="{value}"' in form, name
    assert "TK1 Outbound / SDR active 2026-11-23 09:00 never never Cowork" in text_of(part(page, "TK1", "</tr>"))
    hook = text_of(part(page, "NE1", "</article>"))
    assert "NE1 https://hooks.example.com/…ound standard, active" in hook
    assert "Waiting 0 to send Last 7 days 0 delivered, 0 failed Last success never" in hook
    assert HOOK not in page  # the full URL is shown nowhere after it was added


async def test_the_page_names_the_risks_doctor_would(store: Store, client: httpx.AsyncClient) -> None:
    await login(store, client, "/settings")
    assert 'id="risks"' not in (await client.get("/settings")).text  # the blueprint bounds every grant
    async with store.write() as tx:
        await tokens.create_token(tx, OPERATOR_CLI, kind="operator", label=SCRIPT)
    page = (await client.get("/settings")).text
    risks = text_of(part(page, "risks", "</section>"))
    assert "Risks (1)" in risks and "operator token TK1" in risks and "never expires" in risks
    assert "<script" not in page and "&lt;script&gt;" in part(page, "risks", "</section>")


async def test_the_page_loads_nothing_from_elsewhere_and_has_no_script_or_inline_style(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/settings")
    token = await made(client, "/settings/tokens", {"csrf": csrf, "holder": "operator"})
    added = await made(client, "/settings/webhooks", {"csrf": csrf, "url": HOOK, "events": "brief.daily"})
    for page in ((await client.get("/settings")).text, token.text, added.text):
        assert_self_contained(page)


async def test_the_page_needs_a_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/settings")
    assert answer.status_code == 401 and "chief-of-staff console" in answer.text


# --- the workspace's settings ------------------------------------------------------------------------------


async def test_a_settings_change_is_applied_and_audited_as_the_console_session(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/settings")
    form = {
        **SETTINGS,
        "name": "  Acme   Agency ",
        "timezone": "America/New_York",
        "currency": "eur",
        "chat_allowance": "1,250.5",
        "chat_window_days": "14",
        "daily_brief_at": "07:30",
    }
    answer = await client.post("/settings/workspace", data={"csrf": csrf, "seen": await seen(client), **form})
    assert answer.status_code == 303 and answer.headers["location"] == "/settings"
    async with store.read() as tx:
        ws = await workspace.get(tx)
    assert (ws.name, ws.timezone, ws.currency, ws.chat_allowance_cents, ws.chat_window_days, ws.daily_brief_at) == (
        "Acme Agency",
        "America/New_York",
        "EUR",
        125050,
        14,
        "07:30",
    )
    [(actor, channel, subject, detail)] = await audit_rows(store, "workspace.update")
    assert (actor, channel, subject) == ("operator:console-1", "verified", "workspace")
    assert json.loads(detail)["timezone"] == ["Europe/Berlin", "America/New_York"]
    [brief_row] = await audit_rows(store, "workspace.daily_brief_at")
    assert brief_row[:2] == ("operator:console-1", "verified")
    said = flash((await client.get("/settings")).text)
    assert "- Time zone: Europe/Berlin → America/New_York" in said
    assert "- Chat allowance: 100.00 USD → 1,250.50 EUR" in said and "- Chat allowance window: 7 days → 14 days" in said
    assert "- Daily brief at: 08:00 → 07:30" in said
    assert "Budget periods (day, week, month) follow America/New_York from now on" in said  # the domain's note


async def test_the_form_as_it_was_changes_nothing_and_says_so(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/settings")
    before = await state(store)
    await client.post("/settings/workspace", data={"csrf": csrf, "seen": await seen(client), **SETTINGS})
    assert flash((await client.get("/settings")).text) == "Nothing changed: the settings already were these."
    assert await state(store) == before


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        (
            {"timezone": "Mars/Olympus"},
            "timezone: 'Mars/Olympus' is not an IANA time zone; send one like Europe/Berlin",
        ),
        ({"currency": "dollars"}, "currency: 'dollars' is not a three-letter currency code; send one like USD or EUR."),
        ({"chat_allowance": "lots"}, "Chat allowance: send an amount like 100.00, not 'lots'."),
        ({"chat_allowance": "-5"}, "Chat allowance: send zero or more, not '-5'."),
        ({"chat_allowance": "10.005"}, "Chat allowance: send an amount like 100.00"),
        ({"chat_allowance": "999,999,999,999.00"}, "Chat allowance: send at most 100,000,000.00."),
        ({"chat_window_days": "a week"}, "Chat allowance window: send a whole number of days from 1 to 90"),
        ({"chat_window_days": "91"}, "chat_window_days: send a whole number of days from 1 to 90."),
        ({"name": "   "}, "name: send a workspace name of 1 to 80 visible characters."),
        ({"daily_brief_at": "7pm", "name": "Renamed"}, "daily-at: send a 24-hour local time like 07:30"),
    ],
)
async def test_a_bad_setting_says_what_was_wrong_and_changes_nothing(
    store: Store, client: httpx.AsyncClient, changed: dict[str, str], said: str
) -> None:
    csrf = await login(store, client, "/settings")
    before = await state(store)
    answer = await client.post(
        "/settings/workspace", data={"csrf": csrf, "seen": await seen(client), **SETTINGS, **changed}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/settings"
    assert said in flash((await client.get("/settings")).text)
    assert await state(store) == before


async def test_a_refused_form_comes_back_as_it_was_typed_once(store: Store, client: httpx.AsyncClient) -> None:
    """The operator corrects the one field that was wrong instead of typing the form again."""
    csrf = await login(store, client, "/settings")
    typed = {**SETTINGS, "name": "Acme GmbH", "timezone": "Mars/Olympus", "chat_allowance": "250.00"}
    await client.post("/settings/workspace", data={"csrf": csrf, "seen": await seen(client), **typed})
    page = (await client.get("/settings")).text
    workspace_form = part(page, "workspace-title", "</form>")
    for value in ("Acme GmbH", "Mars/Olympus", "250.00"):
        assert f'value="{value}"' in workspace_form
    assert 'value="Test Co"' in part((await client.get("/settings")).text, "workspace-title", "</form>")  # once

    await client.post(
        "/settings/tokens", data={"csrf": csrf, "holder": "A1/R2", "label": SCRIPT, "expires_in_days": "9999"}
    )
    page = (await client.get("/settings")).text
    token_form = part(page, "new-token", "</form>")
    assert '<option value="A1/R2" selected>' in token_form and 'value="9999"' in token_form
    assert f'value="{ESCAPED}"' in token_form and "<script" not in page
    assert 'value="Test Co"' in page  # the other forms are drawn as the workspace stands

    events = ["brief.daily", "anomaly.found"]
    await client.post("/settings/webhooks", data={"csrf": csrf, "url": "http://hooks.example.com/x", "events": events})
    webhook_form = part((await client.get("/settings")).text, "new-webhook", "</form>")
    assert 'value="http://hooks.example.com/x"' in webhook_form
    assert webhook_form.count(" checked>") == 2 and 'value="anomaly.found" checked' in webhook_form


async def test_a_form_from_before_another_change_is_not_brought_back(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/settings")
    stale = await seen(client)
    await client.post("/settings/workspace", data={"csrf": csrf, "seen": stale, **SETTINGS, "name": "First"})
    await client.post("/settings/workspace", data={"csrf": csrf, "seen": stale, **SETTINGS, "name": "Second"})
    page = (await client.get("/settings")).text
    assert flash(page).startswith("The settings changed since this page was opened")
    assert 'value="First"' in part(page, "workspace-title", "</form>") and "Second" not in page


async def test_every_field_the_page_cannot_read_is_named_at_once(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/settings")
    await client.post(
        "/settings/workspace",
        data={"csrf": csrf, "seen": await seen(client), **SETTINGS, "chat_allowance": "x", "chat_window_days": ""},
    )
    said = flash((await client.get("/settings")).text)
    assert said.startswith("Nothing was changed:") and "Chat allowance:" in said and "Chat allowance window:" in said


# --- tokens ------------------------------------------------------------------------------------------------


async def test_a_new_tokens_secret_is_shown_once_in_the_create_response_and_nowhere_after(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/settings")
    form = {"csrf": csrf, "holder": "A1/R2", "label": "Cowork laptop", "expires_in_days": "30"}
    answer = await made(client, "/settings/tokens", form)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    secret = secret_on(answer.text)
    assert secret.startswith(tokens.TOKEN_PREFIX) and answer.text.count(secret) == 1
    words = text_of(answer.text)
    assert "Token TK1 Acts for Outbound / Researcher Valid until 2026-12-23 09:00 Label Cowork laptop" in words
    async with store.read() as tx:
        principal = await tokens.authenticate(tx, secret)
    assert principal is not None and (principal.agency, principal.role) == ("Outbound", "Researcher")
    [(actor, channel, subject, _)] = await audit_rows(store, "token.create")
    assert (actor, channel, subject) == ("operator:console-1", "verified", "TK1")
    page = (await client.get("/settings")).text
    assert secret not in page and 'class="flash' not in page  # no flash: the create answered with a page
    assert "TK1 Outbound / Researcher active" in text_of(part(page, "TK1", "</tr>"))
    again = await client.get("/settings/created", follow_redirects=True)  # a reload shows it no more
    assert secret not in again.text and "cannot be shown again" in flash(again.text)
    assert secret not in await everything_audited(store)
    assert secret not in str(answer.headers) and secret not in str(answer.url)


async def test_an_operator_token_acts_for_the_operator(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/settings")
    answer = await made(client, "/settings/tokens", {"csrf": csrf, "holder": "operator", "expires_in_days": ""})
    assert "Acts for the operator Valid until it is revoked Label none" in text_of(answer.text)
    async with store.read() as tx:
        principal = await tokens.authenticate(tx, secret_on(answer.text))
    assert principal is not None and principal.kind == "operator"


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        ({"expires_in_days": "soon"}, "Expires after: send a whole number of days from 1 to 3650"),
        ({"expires_in_days": "0"}, "expires_in_days: send a whole number of days from 1 to 3650"),
        ({"holder": "A9"}, "agency: there is no agency 'A9'"),
        ({"holder": "A1/R9"}, "role: agency Outbound has no role 'R9'"),
        ({"holder": ""}, "Acts for: choose the operator, an agency or one of its roles."),
        ({"label": "x" * 201}, "label"),
    ],
)
async def test_a_bad_token_form_says_what_was_wrong_and_creates_nothing(
    store: Store, client: httpx.AsyncClient, changed: dict[str, str], said: str
) -> None:
    csrf = await login(store, client, "/settings")
    before = await state(store)
    answer = await client.post("/settings/tokens", data={"csrf": csrf, "holder": "A1", "label": "", **changed})
    assert answer.status_code == 303 and answer.headers["location"] == "/settings"
    assert said in flash((await client.get("/settings")).text)
    assert await state(store) == before


async def test_revoking_a_token_withdraws_it_as_the_console_session(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/settings")
    secret = secret_on((await made(client, "/settings/tokens", {"csrf": csrf, "holder": "A1"})).text)
    answer = await client.post("/settings/tokens/TK1/revoke", data={"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/settings"
    async with store.read() as tx:
        assert await tokens.authenticate(tx, secret) is None
    [(actor, channel, subject, _)] = await audit_rows(store, "token.revoke")
    assert (actor, channel, subject) == ("operator:console-1", "verified", "TK1")
    page = (await client.get("/settings")).text
    assert flash(page) == "TK1 revoked (Outbound, every role): the next request that carries it is refused."
    assert "TK1 Outbound, every role revoked 2026-11-23 09:00" in text_of(part(page, "TK1", "</tr>"))
    assert 'action="/settings/tokens/TK1/revoke"' not in page
    before = await state(store)
    await client.post("/settings/tokens/TK1/revoke", data={"csrf": csrf})
    assert "TK1 was already revoked" in flash((await client.get("/settings")).text)
    await client.post("/settings/tokens/TK7/revoke", data={"csrf": csrf})
    assert "there is no token TK7" in flash((await client.get("/settings")).text)
    assert await state(store) == before


# --- webhook endpoints -------------------------------------------------------------------------------------


async def test_a_new_endpoints_signing_secret_is_shown_once_and_it_is_listed_with_its_health(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/settings")
    form = {"csrf": csrf, "url": HOOK, "events": ["decision.opened", "brief.daily"], "format": "slack"}
    answer = await made(client, "/settings/webhooks", form)
    assert answer.status_code == 200
    secret = secret_on(answer.text)
    assert secret.startswith(endpoints.SECRET_PREFIX) and answer.text.count(secret) == 1
    assert "Endpoint NE1 Sends to https://hooks.example.com/…ound Events brief.daily, decision.opened" in text_of(
        answer.text
    )
    [(actor, channel, subject, _)] = await audit_rows(store, "webhook.add")
    assert (actor, channel, subject) == ("operator:console-1", "verified", "NE1")
    page = (await client.get("/settings")).text
    assert secret not in page and 'class="flash' not in page
    assert "NE1 https://hooks.example.com/…ound slack, active" in text_of(part(page, "NE1", "</article>"))
    assert secret not in await everything_audited(store)


async def test_an_endpoint_added_over_mcp_gets_a_signing_secret_shown_once_in_the_console(
    store: Store, client: httpx.AsyncClient
) -> None:
    """An operator token adds an endpoint through an MCP client, whose result never carries the secret."""
    async with store.write() as tx:
        _, first_secret = await endpoints.add_endpoint(
            tx, Actor("operator:TK1", "verified"), url=HOOK, events=["decision.opened"]
        )
    with pytest.raises(OperatorActRefused) as refused:
        async with store.write() as tx:
            await endpoints.rotate_secret(tx, Actor("operator", "chat"), "NE1")
    assert str(refused.value).endswith("or in the console's Settings page (open_console). Nothing was changed.")
    csrf = await login(store, client, "/settings")
    posted = await client.post("/settings/webhooks/NE1/rotate", data={"csrf": csrf})
    assert posted.status_code == 303 and posted.headers["location"] == "/settings/created"
    shown = await client.get("/settings/created")
    secret = secret_on(shown.text)
    assert secret.startswith(endpoints.SECRET_PREFIX) and secret != first_secret
    assert "A new signing secret for NE1" in shown.text and "The old secret signs nothing from now on" in shown.text
    async with store.read() as tx:
        assert await tx.scalar("SELECT secret FROM webhook_endpoints WHERE id = 1") == secret
    [(actor, channel, subject, _)] = await audit_rows(store, "webhook.rotate_secret")
    assert (actor, channel, subject) == ("operator:console-1", "verified", "NE1")
    assert secret not in (await client.get("/settings")).text and secret not in await everything_audited(store)
    assert (await client.get("/settings/created")).status_code == 303  # shown once, then gone
    assert "cannot be shown again" in flash((await client.get("/settings")).text)
    before = await state(store)
    for ref, said in (("NE9", "no webhook endpoint NE9"), ("TK1", "is not a webhook endpoint id")):
        await client.post(f"/settings/webhooks/{ref}/rotate", data={"csrf": csrf})
        assert said in flash((await client.get("/settings")).text), ref
    assert (await client.post("/settings/webhooks/NE1/rotate", data={"csrf": "guessed"})).status_code == 403
    assert await state(store) == before


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        ({"url": "http://hooks.example.com/x"}, "plain http is allowed only to this machine"),
        ({"url": "https://10.0.0.8/hook"}, "webhooks go only to public addresses"),
        ({"url": "not a url"}, "url: send a full https URL"),
        ({"events": []}, "Events: tick at least one event"),
        ({"events": ["decision.maybe"]}, "events: 'decision.maybe' is not an event"),
        ({"format": "xml"}, "format: send 'standard' (signed JSON) or 'slack'"),
    ],
)
async def test_a_bad_endpoint_form_says_what_was_wrong_and_adds_nothing(
    store: Store, client: httpx.AsyncClient, changed: dict[str, Any], said: str
) -> None:
    csrf = await login(store, client, "/settings")
    before = await state(store)
    form = {"csrf": csrf, "url": HOOK, "events": ["decision.opened"], "format": "standard", **changed}
    answer = await client.post("/settings/webhooks", data=form)
    assert answer.status_code == 303 and answer.headers["location"] == "/settings"
    assert said in flash((await client.get("/settings")).text)
    assert await state(store) == before


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[int]]]:
    """A webhook receiver on this machine (plain http is allowed to loopback): answers each POST with the
    next status in its list (204 when the list is empty), and counts what it was sent."""
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(statuses.pop(0) if statuses else 204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_testing_an_endpoint_sends_a_message_now_as_the_console_session_and_says_how_it_went(
    store: Store, client: httpx.AsyncClient, receiver: tuple[str, list[int]]
) -> None:
    url, statuses = receiver
    csrf = await login(store, client, "/settings")
    await made(client, "/settings/webhooks", {"csrf": csrf, "url": url, "events": "decision.opened"})
    answer = await client.post("/settings/webhooks/NE1/test", data={"csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/settings"
    async with store.read() as tx:
        sent = [tuple(row) for row in await tx.all("SELECT endpoint_id, event, status FROM webhook_deliveries")]
    assert sent == [(1, "webhook.test", "delivered")]
    [(actor, channel, subject, _)] = await audit_rows(store, "webhook.test")
    assert (actor, channel, subject) == ("operator:console-1", "verified", "NE1")
    page = (await client.get("/settings")).text
    assert "Delivered a test message" in flash(page) and "to NE1 at http://127.0.0.1:" in flash(page)
    assert "(HTTP 204)" in flash(page)

    statuses.append(503)  # the receiver is down: the message waits for a retry, and the page says so
    await client.post("/settings/webhooks/NE1/test", data={"csrf": csrf})
    said = flash((await client.get("/settings")).text)
    assert "was not delivered yet (HTTP 503)" in said and "Retried from 2026-11-23 09:" in said


async def test_removing_an_endpoint_stops_it_and_drops_what_it_was_owed(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/settings")
    await client.post("/settings/webhooks", data={"csrf": csrf, "url": HOOK, "events": "decision.opened"})
    await client.post("/settings/webhooks/NE1/test", data={"csrf": csrf})
    answer = await client.post("/settings/webhooks/NE1/remove", data={"csrf": csrf})
    assert answer.status_code == 303
    async with store.read() as tx:
        assert await endpoints.list_endpoints(tx) == []
        assert await tx.scalar("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'") == 0
    [(actor, channel, subject, _)] = await audit_rows(store, "webhook.remove")
    assert (actor, channel, subject) == ("operator:console-1", "verified", "NE1")
    page = (await client.get("/settings")).text
    assert flash(page).startswith("NE1 removed: nothing more is sent to https://hooks.example.com/…ound")
    assert 'id="NE1"' not in page
    before = await state(store)
    for act in ("test", "remove"):
        await client.post(f"/settings/webhooks/NE1/{act}", data={"csrf": csrf})
        assert "NE1 " in flash((await client.get("/settings")).text)
    await client.post("/settings/webhooks/nope/test", data={"csrf": csrf})
    assert "endpoint_id:" in flash((await client.get("/settings")).text)
    assert await state(store) == before


# --- hostile requests --------------------------------------------------------------------------------------


async def test_every_post_without_the_csrf_token_is_refused_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await tokens.create_token(tx, OPERATOR_CLI, kind="operator")
        await endpoints.add_endpoint(tx, OPERATOR_CLI, url=HOOK, events=["decision.opened"])
    csrf = await login(store, client, "/settings")
    before = await state(store)
    posts: list[tuple[str, dict[str, Any]]] = [
        ("/settings/workspace", {**SETTINGS, "name": "Stolen"}),
        ("/settings/tokens", {"holder": "operator"}),
        ("/settings/tokens/TK1/revoke", {}),
        ("/settings/webhooks", {"url": "https://evil.example.com/x", "events": "decision.opened"}),
        ("/settings/webhooks/NE1/test", {}),
        ("/settings/webhooks/NE1/remove", {}),
    ]
    for path, form in posts:
        for token in ({}, {"csrf": "guessed"}, {"csrf": ""}):
            answer = await client.post(path, data={**form, **token})
            assert answer.status_code == 403 and "Nothing was changed" in answer.text, path
            assert tokens.TOKEN_PREFIX not in answer.text and endpoints.SECRET_PREFIX not in answer.text
        assert (await client.post(path, json={**form, "csrf": csrf})).status_code == 403
    assert await state(store) == before


async def test_script_in_a_token_label_and_a_webhook_url_is_shown_escaped(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/settings")
    token = await made(client, "/settings/tokens", {"csrf": csrf, "holder": "A1", "label": SCRIPT})
    assert "<script" not in token.text and ESCAPED in token.text
    added = await made(
        client, "/settings/webhooks", {"csrf": csrf, "url": HOOK + "/" + SCRIPT, "events": "brief.daily"}
    )
    assert added.status_code == 200 and "<script" not in added.text
    page = (await client.get("/settings")).text
    assert "<script" not in page and ESCAPED in part(page, "TK1", "</tr>")
    assert 'id="NE1"' in page
    # A refusal that quotes what was sent shows it escaped too.
    await client.post(
        "/settings/workspace", data={"csrf": csrf, "seen": await seen(client), **SETTINGS, "timezone": SCRIPT}
    )
    page = (await client.get("/settings")).text
    assert "<script" not in page and "is not an IANA time zone" in flash(page)

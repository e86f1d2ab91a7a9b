"""The console's trust rule as a property, over generated sequences of requests:

    A console request changes the workspace only when it carries a live session's cookie and that
    session's CSRF token, as a form, at the console's own host, and not from another site.

Hypothesis sends sequences of posts to every act of every page (deciding, grants, agencies, reviews,
audit, settings), each with its credentials drawn from the good and the bad: the cookie (the session's, none,
junk), the CSRF token (the session's, none, another), Origin, Sec-Fetch-Site, Host and the body's type.
After each one that lacks any part, every table but the sessions' own bookkeeping (and the anchor file)
is as it was; and no request, however odd, is answered with a server error. Requests that carry
everything go through, so later ones meet a workspace the operator has changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain import console_access, tokens, workspace
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.http.console import cookie_name
from chief_of_staff.notify import endpoints
from tests.http.console_support import console_client, escalate, link

pytestmark = pytest.mark.anyio

HOST = "127.0.0.1:8123"
BOOKKEEPING = {"console_sessions", "console_logins"}  # a session's last use is kept even on a refused request
# Every act of every page, with a form that would do something if it were let in.
ACTS: dict[str, dict[str, str]] = {
    "/decisions/D1": {"action": "approve", "note": "fine"},
    "/decisions/D2": {"action": "deny", "note": "no", "task_on_deny": "fail"},
    "/authority/grants": {"agency": "A1", "capability": "crm.read", "mode": "auto", "rationale": "reads"},
    "/authority/grants/GR1/revoke": {"reason": "done"},
    "/authority/grants/GR1/restore": {"restore": "1", "version": "1", "seal": "x"},
    "/authority/grants/GR1/hand-over": {"confirm": "yes", "version": "2", "seal": "x"},
    "/agencies/A1/pause": {"note": "hold"},
    "/agencies/A1/resume": {},
    "/agencies/A1/retire": {},
    "/agencies/A1/reactivate": {"confirm": "yes"},
    "/agencies/A1/roles/R1/retire": {},
    "/agencies/A1/roles/R1/reactivate": {"confirm": "yes"},
    "/review": {"note": "a quiet week"},
    "/audit/anchor": {},
    "/settings/workspace": {"name": "Renamed", "timezone": "UTC", "currency": "EUR", "chat_allowance": "1.00"},
    "/settings/tokens": {"holder": "operator", "label": "stolen"},
    "/settings/tokens/TK1/revoke": {},
    "/settings/webhooks": {"url": "https://hooks.example.com/x", "events": "brief.daily"},
    "/settings/webhooks/NE1/rotate": {},
    "/settings/webhooks/NE1/remove": {},
}


@dataclass(frozen=True)
class Sent:
    act: str
    cookie: str
    csrf: str
    origin: str | None
    site: str | None
    host: str
    as_form: bool
    extra: str

    @property
    def let_in(self) -> bool:
        return (
            self.cookie == "session"
            and self.csrf == "session"
            and self.origin in (None, "null", f"http://{HOST}")
            and self.site in (None, "same-origin", "none")
            and self.host == HOST
            and self.as_form
        )


REQUESTS = st.builds(
    Sent,
    act=st.sampled_from(sorted(ACTS)),
    cookie=st.sampled_from(["session", "session", "none", "junk"]),
    csrf=st.sampled_from(["session", "session", "none", "other"]),
    origin=st.sampled_from([None, "null", f"http://{HOST}", "http://127.0.0.1:9999", "https://evil.example"]),
    site=st.sampled_from([None, "same-origin", "none", "same-site", "cross-site"]),
    host=st.sampled_from([HOST, HOST, "evil.example", "127.0.0.1:9999"]),
    as_form=st.booleans(),
    extra=st.text(max_size=20),
)


async def _world(path: Any) -> Store:
    """The Outbound blueprint with two escalations waiting, a token and a webhook endpoint."""
    store = await Store.open(path, FixedClock(datetime(2026, 11, 23, 8, tzinfo=UTC)))
    async with store.write() as tx:
        await workspace.ensure(tx, OPERATOR_CLI, name="Acme", timezone="Europe/Berlin")
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
        await tokens.create_token(tx, OPERATOR_CLI, kind="agency", agency="Outbound")
        await endpoints.add_endpoint(tx, OPERATOR_CLI, url="https://hooks.example.com/y", events=["brief.daily"])
    await escalate(store, "Outbound", "SDR", "Buy the ad slot")
    await escalate(store, "Outbound", "SDR", "Buy another ad slot")
    return store


async def _state(store: Store) -> tuple[Any, ...]:
    async with store.read() as tx:
        tables = [row["name"] for row in await tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [
            (table, [tuple(row) for row in await tx.all(f'SELECT * FROM "{table}"')])
            for table in sorted(tables)
            if table not in BOOKKEEPING and not table.startswith("sqlite_")
        ]
    anchor = store.anchor.path.read_bytes() if store.anchor.path.exists() else b""
    return (rows, anchor)


def _headers(sent: Sent, cookie: str, session_secret: str) -> dict[str, str]:
    headers = {"host": sent.host}
    value = {"session": session_secret, "junk": "coss_" + "x" * 40, "none": None}[sent.cookie]
    if value is not None:
        headers["cookie"] = f"{cookie}={value}"
    if sent.origin is not None:
        headers["origin"] = sent.origin
    if sent.site is not None:
        headers["sec-fetch-site"] = sent.site
    return headers


async def _session(store: Store, client: httpx.AsyncClient) -> tuple[str, str]:
    """Log in through a fresh link; the session's cookie value and CSRF token, with the client's cookies cleared
    so that each request sent after says for itself which cookie it carries."""
    opened = await client.get(await link(store))
    session_secret = opened.cookies[cookie_name(store.path)]
    async with store.read() as tx:
        csrf = (await console_access.session_of(tx, session_secret)).csrf
    client.cookies.clear()
    return session_secret, csrf


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(REQUESTS, min_size=1, max_size=12))
async def test_only_a_request_with_every_credential_changes_anything(
    tmp_path_factory: Any, sequence: list[Sent]
) -> None:
    store = await _world(tmp_path_factory.mktemp("console") / "w.db")
    try:
        async with console_client(store) as client:
            session_secret, csrf = await _session(store, client)
            for sent in sequence:
                form = {**ACTS[sent.act], "note": sent.extra} if "note" in ACTS[sent.act] else dict(ACTS[sent.act])
                if sent.csrf != "none":
                    form["csrf"] = csrf if sent.csrf == "session" else "another-sessions-token"
                headers = _headers(sent, cookie_name(store.path), session_secret)
                before = await _state(store)
                if sent.as_form:
                    answer = await client.post(sent.act, data=form, headers=headers)
                else:
                    answer = await client.post(sent.act, json=form, headers=headers)
                assert answer.status_code < 500, (sent, answer.text[:400])
                if not sent.let_in:
                    assert await _state(store) == before, sent
    finally:
        await store.close()


async def test_the_same_request_with_every_credential_does_change_the_workspace(tmp_path_factory: Any) -> None:
    """The property above is not vacuous: a request it lets in, sent the same way, acts."""
    store = await _world(tmp_path_factory.mktemp("console") / "w.db")
    try:
        async with console_client(store) as client:
            session_secret, csrf = await _session(store, client)
            for act in ("/decisions/D1", "/settings/tokens/TK1/revoke", "/authority/grants/GR1/revoke"):
                sent = Sent(act, "session", "session", f"http://{HOST}", "same-origin", HOST, True, "")
                assert sent.let_in
                before = await _state(store)
                headers = _headers(sent, cookie_name(store.path), session_secret)
                answer = await client.post(act, data={**ACTS[act], "csrf": csrf}, headers=headers)
                assert answer.status_code == 303 and await _state(store) != before, act
    finally:
        await store.close()

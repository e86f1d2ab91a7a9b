"""What the console's ASGI tests share: the in-process client, logging in, reading a page, and the workspace.

The app is the real one (chief_of_staff.http.console) over the test's store and fixed clock, reached through
httpx's ASGI transport at the loopback address it was built for; nothing is faked.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape

import httpx

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.domain import console_access, inbox
from chief_of_staff.domain.authority import ledger
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.http.console import build_console_app

BASE = "http://127.0.0.1:8123"
SCRIPT = "<script>alert('owned')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"
# The Settings page's workspace form as it shows the test workspace (tests/conftest.py's store).
SETTINGS = {
    "name": "Test Co",
    "timezone": "Europe/Berlin",
    "currency": "USD",
    "chat_allowance": "100.00",
    "chat_window_days": "7",
    "daily_brief_at": "08:00",
}


@asynccontextmanager
async def console_client(
    store: Store, *, prefix: str = "", raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the console built over `store` at BASE + `prefix`; with a prefix, paths are relative to it."""
    app = build_console_app(store, base_url=BASE + prefix)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url=BASE + prefix + ("/" if prefix else "")) as http:
        yield http


@asynccontextmanager
async def refusing_changes(store: Store, client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The console over a second store on the same file after someone with the file drops an append-only
    trigger, so that store refuses every write; the client carries `client`'s session."""
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TRIGGER audit_log_no_delete")
    sealed = await Store.open(store.path, store.clock)
    try:
        async with console_client(sealed) as http:
            http.cookies = client.cookies
            yield http
    finally:
        await sealed.close()


async def link(store: Store, page: str = "/") -> str:
    """A fresh one-time login link that lands on `page`."""
    async with store.write() as tx:
        secret = await console_access.mint_login(tx, OPERATOR_CLI, page=page)
    return f"/login?token={secret}"


async def login(store: Store, client: httpx.AsyncClient, page: str = "/") -> str:
    """Log in through a fresh link landing on `page`; the CSRF token that page's forms carry.

    Paths are sent relative to the client's base URL, so a client under a secret prefix logs in there.
    """
    answer = await client.get((await link(store, page)).lstrip("/"))
    assert answer.status_code == 303
    landed = await client.get(page.lstrip("/"))
    assert landed.status_code == 200
    return csrf_of(landed.text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def text_of(html: str) -> str:
    """A page's words, as a person reads them: tags dropped, entities read, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def part(page: str, element_id: str, end: str) -> str:
    """The page from the element with `element_id` up to the first `end` after it."""
    return page.split(f'id="{element_id}"', 1)[1].split(end, 1)[0]


def flash(page: str) -> str:
    """The message the page shows for the act just made, done or refused."""
    found = re.search(r'class="flash (?:done|refused)"[^>]*>(.*?)</p>', page, re.DOTALL)
    assert found is not None, "no flash on the page"
    return unescape(found.group(1))


def assert_self_contained(page: str, *, fragments: bool = True) -> None:
    """The page runs no script, has no inline style or click handler, and links, loads and posts only to itself.

    Every href, src and action is a path on the console (or, with `fragments`, a `#` within the page);
    none is another origin or a scheme-relative `//` address.
    """
    assert "<script" not in page.lower() and " style=" not in page and " on" + "click" not in page
    own = ("/", "#") if fragments else ("/",)
    urls = re.findall(r'(?:href|src|action)="([^"]*)"', page)
    assert urls and all(url.startswith(own) and not url.startswith("//") for url in urls), urls


def gr2_change(**changed: str) -> dict[str, str]:
    """GR2's change form as the page fills it, with some fields changed."""
    return {
        "mode": "notify",
        "cap": "25.00",
        "day_count": "",
        "day_amount": "",
        "week_count": "",
        "week_amount": "25.00",
        "month_count": "",
        "month_amount": "",
        "allow": "",
        "deny": "",
        "expires_on": "",
        "on_timeout": "deny",
        "rationale": "Verified emails and company data make every send count; capped at $25 a purchase and $25 a week.",
        **changed,
    }


def hidden_fields(page: str) -> dict[str, str]:
    """The values a preview's Apply form carries, as a browser would send them."""
    form = page.split('class="grant-apply"', 1)[1].split("</form>", 1)[0]
    return {unescape(n): unescape(v) for n, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form)}


async def apply_outbound(store: Store) -> Store:
    """The Outbound blueprint, applied from the command line."""
    async with store.write() as tx:
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
    return store


async def escalate(store: Store, agency: str, role: str | None, title: str) -> str:
    """The agency adds a task and asks for money no grant covers: a decision that parks the task."""
    actor = Actor(f"agency:{agency}", "agency")
    async with store.write() as tx:
        task = await inbox.add_task(tx, actor, title=title, agency=agency, role=role, source="agency")
        answer = await ledger.authorize(
            tx,
            actor,
            agency=agency,
            role=role,
            capability="spend.ads",
            amount_cents=12345,
            target="ads.example.com",
            task_id=task.id,
            idempotency_key=None,
        )
    assert answer.answer == "needs_approval" and answer.decision_id is not None
    return answer.decision_id

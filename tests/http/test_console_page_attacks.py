"""Adversarial probes of the console's Authority, Review, Audit and Settings pages, over ASGI.

The attacker is a prompt-injected agency (its text reaches the pages), another page or server on 127.0.0.1,
or a forged form. Each test states what must hold; the workspace is the Outbound blueprint (GR1 email.send,
GR2 spend.tools with a 25.00 cap and week, GR3 meeting.book; agency A1 with roles R1 SDR and R2 Researcher).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from typing import Any

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.domain import console_access
from chief_of_staff.domain.authority import grants
from tests.http.console_support import (
    BASE,
    SETTINGS,
    apply_outbound,
    console_client,
    gr2_change,
    hidden_fields,
    login,
)
from tests.http.test_console_review import approved_five_times

pytestmark = pytest.mark.anyio

PREFIX = "/c/" + "s" * 32
RESEARCHER = Actor("agency:Outbound/Researcher", "agency")


@pytest.fixture
async def store(store: Store) -> Store:
    return await apply_outbound(store)


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """The console under a secret prefix, answering a crash as a 500 instead of raising it into the test."""
    async with console_client(store, prefix=PREFIX, raise_app_exceptions=False) as http:
        yield http


async def state(store: Store) -> tuple[Any, ...]:
    async with store.read() as tx:
        return (
            [tuple(row) for row in await tx.all("SELECT * FROM grants ORDER BY id")],
            [tuple(row) for row in await tx.all("SELECT * FROM grant_budgets ORDER BY id")],
            [tuple(row) for row in await tx.all("SELECT * FROM workspace")],
            await tx.scalar("SELECT count(*) FROM audit_log"),
        )


# --- probes ------------------------------------------------------------------------------------------------


async def test_audit_page_with_a_unicode_digit_before_is_a_400_not_a_crash(
    store: Store, client: httpx.AsyncClient
) -> None:
    await login(store, client, "/audit")
    for odd in ("²", "¹²"):  # str.isdigit() says yes; int() says no
        answer = await client.get("audit", params={"before": odd})
        assert answer.status_code in (200, 400), (odd, answer.status_code)


async def test_audit_page_with_odd_before_values_is_a_page(store: Store, client: httpx.AsyncClient) -> None:
    await login(store, client, "/audit")
    for odd in ("٣", "1\u0000", "-1", "0", "9" * 18, "9" * 19, " 1"):
        answer = await client.get("audit", params={"before": odd})
        assert answer.status_code in (200, 400), (odd, answer.status_code)


# --- Authority: the preview's seal --------------------------------------------------------------------------


async def test_a_seal_for_one_grant_does_not_apply_to_another(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(mode="auto")})
    sealed = hidden_fields(preview.text)
    before = await state(store)
    for path in ("authority/grants/GR3", "authority/grants/GR1", "authority/grants/GR12", "authority/grants/GR"):
        await client.post(path, data=sealed)
    assert (await state(store))[:2] == before[:2]


async def test_a_sealed_form_with_wider_duplicates_applies_only_what_was_previewed(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(cap="20.00")})
    sealed = hidden_fields(preview.text)
    pairs = [*sealed.items(), ("cap", ""), ("week_amount", ""), ("mode", "auto"), ("allow", "")]
    answer = await client.post(
        "authority/grants/GR2",
        content=str(httpx.QueryParams(pairs)),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 303
    async with store.read() as tx:
        view = next(g for g in await grants.list_grants(tx) if g.id == "GR2")
    assert (view.mode, view.per_action_cap_cents) == ("notify", 2000)


async def test_a_seal_from_another_session_does_not_apply(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(mode="auto")})
    sealed = hidden_fields(preview.text)
    other = await login(store, client, "/authority")  # a second session (same browser, new cookie)
    before = await state(store)
    await client.post("authority/grants/GR2", data={**sealed, "csrf": other})
    assert (await state(store))[:2] == before[:2]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("day_count", "999999999999"),
        ("week_amount", "999,999,999,999,999.99"),
        ("cap", "0.001"),
        ("expires_on", "9999-12-31"),
        ("expires_on", "0001-01-01"),
        ("expires_on", "2026-02-30"),
        ("expires_on", "２０２７-01-01"),
        ("rationale", "a\u0000b"),
        ("rationale", "x" * 5000),
        ("allow", "\u202eevil.com"),
        ("allow", "*"),
        ("deny", "a" * 3000),
        ("mode", "auto\u0000"),
        ("on_timeout", "approve "),
        ("day_count", "１２"),
        ("day_count", "٣"),
    ],
)
async def test_odd_values_in_a_change_never_crash(
    store: Store, client: httpx.AsyncClient, field: str, value: str
) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(**{field: value})})
    assert preview.status_code in (200, 303), preview.text[:400]
    if preview.status_code == 200 and 'class="grant-apply"' in preview.text:
        answer = await client.post("authority/grants/GR2", data=hidden_fields(preview.text))
        assert answer.status_code == 303
        page = await client.get("authority")
        assert page.status_code == 200
        assert "not the ones the preview showed" not in page.text, (field, value)


@pytest.mark.parametrize(
    "ref",
    ["GR1%00", "GR99999999999999999", "GR999999999999999999999", "GR\u00b9", "GR-1", "GR0", "..%2F..", "%E2%80%AE"],
)
async def test_odd_grant_references_never_crash(store: Store, client: httpx.AsyncClient, ref: str) -> None:
    csrf = await login(store, client, "/authority")
    before = await state(store)
    for path in (f"authority/grants/{ref}/preview", f"authority/grants/{ref}", f"authority/grants/{ref}/revoke"):
        answer = await client.post(path, data={"csrf": csrf, **gr2_change(mode="auto")})
        assert answer.status_code in (200, 303, 404, 400), (path, answer.status_code)
    assert (await state(store))[:2] == before[:2]


# --- Settings ---------------------------------------------------------------------------------------------


def settings_form(page: str) -> dict[str, str]:
    """The Settings page's workspace form as the browser would send it, every field as the page filled it."""
    form = page.split('action="' + PREFIX + '/settings/workspace"', 1)[1].split("</form>", 1)[0]
    found = {unescape(n): unescape(v) for n, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form)}
    return found


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "../../../../etc/passwd"),
        ("timezone", "/etc/localtime"),
        ("timezone", "Europe/Berlin\u0000"),
        ("timezone", ""),
        ("timezone", "x" * 5000),
        ("name", "a\u0000b"),
        ("name", ""),
        ("currency", "€€€"),
        ("currency", "US"),
        ("chat_allowance", "１００"),
        ("chat_allowance", "-1"),
        ("chat_allowance", "999,999,999,999,999.99"),
        ("chat_window_days", "0"),
        ("chat_window_days", "999999"),
        ("chat_window_days", "٣"),
        ("daily_brief_at", "24:00"),
        ("daily_brief_at", "8:00"),
    ],
)
async def test_odd_settings_are_refused_without_a_crash_or_a_change(
    store: Store, client: httpx.AsyncClient, field: str, value: str
) -> None:
    csrf = await login(store, client, "/settings")
    before = await state(store)
    answer = await client.post("settings/workspace", data={"csrf": csrf, **SETTINGS, field: value})
    assert answer.status_code == 303, answer.status_code
    page = await client.get("settings")
    assert page.status_code == 200 and 'class="flash refused"' in page.text, (field, value)
    assert await state(store) == before


async def test_a_daily_brief_time_in_other_digits_is_refused(store: Store, client: httpx.AsyncClient) -> None:
    """ "0٨:0٠" passes `([01]\\d|2[0-3]):([0-5]\\d)`, and "HH:MM" >= it compares code points, not times."""
    csrf = await login(store, client, "/settings")
    before = await state(store)
    for odd in ("٠٨:٠٠", "0٨:0٠", "1٩:3٠"):
        await client.post("settings/workspace", data={"csrf": csrf, **SETTINGS, "daily_brief_at": odd})
    assert await state(store) == before


async def test_a_stale_settings_form_does_not_silently_undo_a_narrowing_made_since(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The operator opens Settings (allowance 100.00); then chat narrows the allowance to 10.00 (chat may
    make it stricter); then the operator, on the page opened before, moves only the brief time. The form
    states every field, so the save puts the chat allowance back to 100.00 without the operator asking."""
    from chief_of_staff.domain import workspace

    csrf = await login(store, client, "/settings")
    stale = settings_form((await client.get("settings")).text)
    assert stale["chat_allowance"] == "100.00"
    async with store.write() as tx:
        await workspace.update_settings(tx, Actor("operator", "chat"), chat_allowance_cents=1000)
    await client.post("settings/workspace", data={**stale, "csrf": csrf, "daily_brief_at": "07:30"})
    async with store.read() as tx:
        assert (await workspace.get(tx)).chat_allowance_cents == 1000


@pytest.mark.parametrize(
    "holder", ["operator ", "Operator", "operator/R1", "A1/R1/R2", "A1/ ", "\u0000", "A9", "A1/R9"]
)
async def test_a_forged_holder_never_makes_an_operator_token(
    store: Store, client: httpx.AsyncClient, holder: str
) -> None:
    csrf = await login(store, client, "/settings")
    answer = await client.post("settings/tokens", data={"csrf": csrf, "holder": holder, "label": "x"})
    assert answer.status_code in (200, 303)
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM access_tokens WHERE kind = 'operator'") == 0


async def test_no_token_secret_reaches_the_audit_page_a_flash_a_url_or_a_header(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/settings")
    made = await client.post("settings/tokens", data={"csrf": csrf, "holder": "A1/R1", "label": "x"})
    hops = [made]
    while hops[-1].status_code in (302, 303):
        hops.append(await client.get(BASE + hops[-1].headers["location"]))
    secret = re.search(r'id="secret-value">([^<]+)<', hops[-1].text)
    assert secret is not None
    value = unescape(secret.group(1))
    for hop in hops:
        assert hop.headers["cache-control"] == "no-store"
        assert all(value not in header for header in hop.headers.values())
    for path in ("settings", "audit", "", "review", "authority", "settings/created"):
        assert value not in (await client.get(path)).text, path


async def test_a_head_of_the_secret_page_does_not_use_up_the_secret(store: Store, client: httpx.AsyncClient) -> None:
    """A HEAD (a prefetch, a link preview) leaves a one-time login link unused; the one-time secret page
    should be no weaker: a HEAD answered with the page pops the secret, and the operator never sees it."""
    csrf = await login(store, client, "/settings")
    made = await client.post("settings/tokens", data={"csrf": csrf, "holder": "A1/R1", "label": "x"})
    if made.status_code != 303:
        pytest.skip("the secret is the post's own answer: nothing to HEAD")
    await client.head(BASE + made.headers["location"])
    shown = await client.get(BASE + made.headers["location"])
    assert 'id="secret-value"' in shown.text


# --- Review -------------------------------------------------------------------------------------------------


def checkbox_value(page: str, key: str) -> str:
    """What a proposal's checkbox sends: its key and the version of the change the page showed."""
    found = re.search(rf'name="accept" value="({re.escape(key)}@[^"]+)"', page)
    assert found is not None
    return found.group(1)


async def post_pairs(client: httpx.AsyncClient, path: str, pairs: list[tuple[str, str]]) -> httpx.Response:
    return await client.post(
        path, content=str(httpx.QueryParams(pairs)), headers={"content-type": "application/x-www-form-urlencoded"}
    )


async def test_a_proposal_accepted_without_its_shown_version_is_refused(
    store: Store, client: httpx.AsyncClient
) -> None:
    """The version check is the record's only tie to what the page showed; without it, nothing goes through."""
    await approved_five_times(store)
    csrf = await login(store, client, "/review")
    checkbox_value((await client.get("review")).text, "grant_widen:GR4")
    before = await state(store)
    for bare in ("grant_widen:GR4", "grant_widen:GR4@", "@0000"):
        await client.post("review", data={"csrf": csrf, "accept": bare})
        assert (await state(store))[:2] == before[:2], bare


async def test_a_key_accepted_twice_applies_once(store: Store, client: httpx.AsyncClient) -> None:
    await approved_five_times(store)
    csrf = await login(store, client, "/review")
    value = checkbox_value((await client.get("review")).text, "grant_widen:GR4")
    answer = await post_pairs(client, "review", [("csrf", csrf), ("accept", value), ("accept", " " + value)])
    assert answer.status_code == 303
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM change_set_items") == 1


async def test_a_duplicated_key_reads_its_first_version(store: Store, client: httpx.AsyncClient) -> None:
    """A stale version first and the fresh one after refuses the record: the check reads the first."""
    await approved_five_times(store)
    csrf = await login(store, client, "/review")
    value = checkbox_value((await client.get("review")).text, "grant_widen:GR4")
    before = await state(store)
    await post_pairs(client, "review", [("csrf", csrf), ("accept", "grant_widen:GR4@" + "0" * 16), ("accept", value)])
    assert (await state(store))[:2] == before[:2]


@pytest.mark.parametrize("ref", ["CS\u00b9", "CS0", "CS-1", "CS99999999999999999", "CS9999999999999999999", "%00"])
async def test_odd_change_set_references_never_crash(store: Store, client: httpx.AsyncClient, ref: str) -> None:
    csrf = await login(store, client, "/review")
    for answer in (
        await client.get(f"review/change-sets/{ref}"),
        await client.get("review/change-sets", params={"change_set": ref}),
        await client.post(f"review/change-sets/{ref}/revert", data={"csrf": csrf}),
    ):
        assert answer.status_code in (303, 400, 404), (ref, answer.status_code)


# --- redirects and GETs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/",
        "/\\evil.example/",
        "/decisions/%2F%2Fevil.example",
        "/decisions/D1/",
        "/review/change-sets/?change_set=//evil.example",
        "/authority/",
        "/settings/",
    ],
)
async def test_no_redirect_leaves_the_console(store: Store, client: httpx.AsyncClient, path: str) -> None:
    await login(store, client, "/authority")
    answer = await client.get(BASE + PREFIX + path)
    location = answer.headers.get("location")
    if location is not None:
        assert location.startswith((PREFIX + "/", BASE + PREFIX + "/")), location


@pytest.mark.parametrize(
    "path",
    [
        "authority/grants",
        "authority/grants/GR2",
        "authority/grants/GR2/revoke",
        "review/change-sets/CS1/revert",
        "audit/anchor",
        "settings/tokens",
        "settings/webhooks",
        "settings/workspace",
        "logout",
    ],
)
async def test_no_act_answers_a_get(store: Store, client: httpx.AsyncClient, path: str) -> None:
    await login(store, client, "/authority")
    before = await state(store)
    answer = await client.get(path)
    assert answer.status_code in (404, 405)
    assert await state(store) == before


# --- the cookie -----------------------------------------------------------------------------------------


async def test_a_cookie_tossed_by_another_port_does_not_shadow_the_session(
    store: Store, client: httpx.AsyncClient
) -> None:
    """Cookies are not kept apart by port: any page served on 127.0.0.1 (another port) can set a cookie of
    the console's name (derived from the workspace path) at Path=/. The browser then sends both, the
    console's own (longer path) first; Starlette keeps the last value of a name, so the junk wins and the
    operator is logged out of the verified channel for as long as the tossed cookie lives."""
    from chief_of_staff.http.console import cookie_name

    await login(store, client, "/authority")
    name = cookie_name(store.path)
    real = client.cookies.get(name)
    assert real is not None
    client.cookies.clear()
    answer = await client.get("authority", headers={"cookie": f"{name}={real}; {name}=coss_junk"})
    assert answer.status_code == 200


# --- the console mounted on serve --http --console -----------------------------------------------------------


@pytest.fixture
async def mounted(tmp_path: Any, clock: Any) -> AsyncIterator[tuple[httpx.AsyncClient, str, Any]]:
    from chief_of_staff.core.config import Settings
    from chief_of_staff.http.server import HttpOptions, ServedWorkspace, build_http_app
    from tests.http_support import make_workspace

    db = tmp_path / "acme.db"
    await make_workspace(db, clock)
    served = [ServedWorkspace(name="acme", settings=Settings(db_path=db, clock=clock))]
    app = build_http_app(served, HttpOptions(port=8765, console=True), 8765)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as http:
            yield http, served[0].console_path, served[0].shared.get()


async def test_the_mounted_console_refuses_other_ports_and_paths_beside_its_own(
    mounted: tuple[httpx.AsyncClient, str, Any],
) -> None:
    http, prefix, opened = mounted
    async with opened.write() as tx:
        secret = await console_access.mint_login(tx, OPERATOR_CLI, page="/authority")
    login = await http.get(f"{prefix}/login", params={"token": secret})
    assert login.status_code == 303 and login.headers["location"] == f"{prefix}/authority"
    assert (await http.get(f"{prefix}/authority")).status_code == 200
    for headers in (
        {"origin": "http://127.0.0.1:9999"},
        {"origin": "http://localhost:9999"},
        {"sec-fetch-site": "same-site"},
        {"sec-fetch-site": "cross-site"},
        {"host": "127.0.0.1:9999"},
        {"host": "evil.example:8765"},
    ):
        answer = await http.get(f"{prefix}/authority", headers=headers)
        assert answer.status_code in (403, 421), (headers, answer.status_code)
    for path in (
        prefix.upper() + "/authority",
        prefix[:-1] + "/authority",
        prefix + "x/authority",
        "/" + prefix + "/authority",
        prefix.replace("/console/", "/console//") + "/authority",
        "/.well-known/oauth-protected-resource" + prefix + "/authority",
    ):
        answer = await http.get(path)
        assert answer.status_code in (404, 401, 400), (path, answer.status_code)
        assert "Authority" not in answer.text, path


async def test_an_agency_with_many_failing_routines_cannot_stop_the_operator_recording_a_review(
    store: Store, client: httpx.AsyncClient
) -> None:
    """Any agency may add routines. Each that fails its last four runs is a routine_drop proposal, and each
    proposal puts a hidden field in the review form; past MAX_FORM_FIELDS (200) every record of the
    review is refused as unreadable, so the operator cannot accept even the one proposal they want."""
    from chief_of_staff.core import ids
    from chief_of_staff.domain import routines

    actor = Actor("agency:Outbound", "agency")
    async with store.write() as tx:
        for n in range(200):
            made = await routines.add_routine(tx, actor, agency="Outbound", title=f"Busywork {n}", schedule="daily")
            number = ids.parse_id("routine", made.id)
            for day in range(4):  # four days of runs, each cancelled by the agency
                await tx.run(
                    "INSERT INTO tasks (title, agency_id, priority, status, source, routine_id, routine_on, "
                    "created_at, updated_at, closed_at) VALUES (?, 1, 2, 'cancelled', 'routine', ?, ?, ?, ?, ?)",
                    (f"Busywork {n}", number, f"2026-11-{19 + day}", tx.now_text, tx.now_text, tx.now_text),
                )
    csrf = await login(store, client, "/review")
    page = (await client.get("review")).text
    keys = re.findall(r'name="accept" value="([^"]+)"', page)
    assert len(keys) >= 200
    shown = re.findall(r'name="(shown-[^"]+)" value="([^"]+)"', page)
    pairs = [("csrf", csrf), ("accept", keys[0]), ("note", "pausing one"), *shown]
    answer = await client.post(
        "review", content=str(httpx.QueryParams(pairs)), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 303, answer.status_code
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM change_sets") == 1

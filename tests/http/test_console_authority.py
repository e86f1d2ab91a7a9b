"""The console's Authority page in-process over ASGI: the letter, each grant's budgets as gauges and in words,
the chat allowance, and giving, changing (before and after first) and revoking a grant as the console session.

The app is the real one over the test's store and fixed clock; the workspace is the Outbound blueprint
(GR1 email.send, GR2 spend.tools with a 25.00 cap and a 25.00 week, GR3 meeting.book).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec, GrantView
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.http.console_gauges import gauge, level
from tests.http.console_support import (
    ESCAPED,
    SCRIPT,
    apply_outbound,
    assert_self_contained,
    gr2_change,
    hidden_fields,
    login,
    part,
    text_of,
)

pytestmark = pytest.mark.anyio

RESEARCHER = Actor("agency:Outbound/Researcher", "agency")
NEW_GRANT = {
    "agency": "Outbound",
    "role": "Researcher",
    "capability": "spend.ads",
    "goal": "G1",
    "mode": "notify",
    "cap": "40.00",
    "day_count": "",
    "day_amount": "",
    "week_count": "5",
    "week_amount": "100",
    "month_count": "",
    "month_amount": "",
    "allow": "ads.example.com\r\nads.example.org",
    "deny": "",
    "expires_on": "2026-12-31",
    "on_timeout": "deny",
    "rationale": "A small test of paid reach.",
}


@pytest.fixture
async def store(store: Store) -> Store:
    """The Outbound blueprint, and 10.00 of GR2's 25.00 week drawn by the Researcher."""
    await apply_outbound(store)
    async with store.write() as tx:
        answer = await ledger.authorize(
            tx,
            RESEARCHER,
            agency="Outbound",
            role="Researcher",
            capability="spend.tools",
            amount_cents=1000,
            target="clearbit.com",
            task_id=None,
            idempotency_key="k1",
        )
    assert answer.answer == "allowed"
    return store


async def grant_list(store: Store) -> list[GrantView]:
    async with store.read() as tx:
        return await grants.list_grants(tx, include_revoked=True)


async def grant(store: Store, short: str) -> GrantView:
    return next(view for view in await grant_list(store) if view.id == short)


async def state(store: Store) -> tuple[Any, ...]:
    """What an act on grants would change: the grants, their versions and budgets, and the audit log's length."""
    async with store.read() as tx:
        return (
            [tuple(row) for row in await tx.all("SELECT * FROM grants ORDER BY id")],
            [tuple(row) for row in await tx.all("SELECT * FROM grant_budgets ORDER BY id")],
            await tx.scalar("SELECT count(*) FROM grant_versions"),
            await tx.scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'grant.%'"),
        )


# --- what the page shows ----------------------------------------------------------------------------------


async def test_the_page_shows_the_letter_each_budget_as_a_gauge_and_in_words_and_the_chat_allowance(
    store: Store, client: httpx.AsyncClient
) -> None:
    await login(store, client, "/authority")
    page = (await client.get("/authority")).text
    letter = text_of(part(page, "letter", "</section>"))
    assert "Delegation of authority — Test Co" in letter and "GR2 : Researcher may spend.tools" in letter
    assert "<code>spend.tools</code>" in part(page, "letter", "</section>")  # the letter's markdown, drawn

    gr2 = part(page, "GR2", "</article>")
    assert "<svg" in gr2 and 'role="img"' in gr2 and 'class="used"' in gr2
    assert 'width="96.0"' in gr2  # 10.00 of 25.00 is 40% of the 240-wide track
    words = "This week (2026-W48): 10.00 USD of 25.00 USD used, 15.00 USD left."
    assert words in text_of(gr2) and f'<desc id="GR2-week-amount-desc">{words}</desc>' in gr2
    gr1 = text_of(part(page, "GR1", "</article>"))
    assert "Today (2026-11-23): 0 of 50 actions used, 50 left." in gr1
    assert "Most per action no money: amount 0 only" in gr1 and "Never for targets *.gov, *.mil" in gr1

    allowance = text_of(part(page, "chat-allowance", "</section>"))
    assert "0.00 USD of 100.00 USD drawn by chat approvals in the last 7 days; 100.00 USD left." in allowance
    assert "as of 2026-11-23 09:00 (Europe/Berlin)" in text_of(page)  # the workspace's local time


async def test_a_limit_lowered_below_what_was_used_shows_a_full_bar_and_says_how_far_over(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:  # narrowing is open to the agency; the week's 10.00 stays drawn
        await grants.update_grant(tx, RESEARCHER, "GR2", budgets=[BudgetSpec(period="week", max_cents=500)])
    await login(store, client, "/authority")
    gr2 = part((await client.get("/authority")).text, "GR2", "</article>")
    assert 'class="usage level-over"' in gr2 and 'width="240.0"' in gr2
    assert "This week (2026-W48): 10.00 USD of 5.00 USD used, 5.00 USD over the limit." in text_of(gr2)


async def test_a_gauge_fills_in_proportion_never_past_its_track_and_warns_near_the_limit() -> None:
    assert [gauge("k", "t", used, 10, "").fill for used in (0, 4, 10, 15)] == [0.0, 96.0, 240.0, 240.0]
    assert [level(used, 10) for used in (0, 7, 8, 10, 11)] == ["ok", "ok", "near", "full", "over"]
    assert (gauge("k", "t", 0, 0, "").fill, level(0, 0)) == (240.0, "full")  # a limit of 0 leaves nothing


async def test_the_page_loads_nothing_from_elsewhere_and_has_no_script_or_inline_style(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(cap="20")})
    for page in ((await client.get("/authority")).text, preview.text):
        assert_self_contained(page)


async def test_the_page_needs_a_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/authority")
    assert answer.status_code == 401 and "chief-of-staff console" in answer.text


# --- giving authority -----------------------------------------------------------------------------------


async def test_giving_a_grant_is_audited_as_the_console_session_on_the_verified_channel(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    answer = await client.post("/authority/grants", data={"csrf": csrf, **NEW_GRANT})
    assert answer.status_code == 303 and answer.headers["location"] == "/authority#GR4"
    made = await grant(store, "GR4")
    assert (made.agency, made.role, made.capability, made.mode, made.goal) == (
        "Outbound",
        "Researcher",
        "spend.ads",
        "notify",
        "G1",
    )
    assert made.per_action_cap_cents == 4000 and made.expires_on == "2026-12-31"
    assert [(b.period, b.max_count, b.max_cents) for b in made.budgets] == [("week", 5, 10000)]
    assert made.scope_allow == ["ads.example.com", "ads.example.org"]
    async with store.read() as tx:
        row = await tx.one(
            "SELECT actor, channel, subject FROM audit_log WHERE action = 'grant.create' AND subject = 'GR4'"
        )
        origin = await tx.scalar("SELECT origin_channel FROM grants WHERE id = 4")
    assert row is not None and tuple(row) == ("operator:console-1", "verified", "GR4")
    assert origin == "verified"
    page = (await client.get("/authority")).text
    assert "GR4 granted: Outbound / Researcher may spend.ads (notify)." in page
    assert 'id="GR4"' in page and "0.00 USD of 100.00 USD used" in text_of(part(page, "GR4", "</article>"))


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        ({"cap": "abc"}, "Most per action: send an amount like 12.50, or leave it empty for no limit; not 'abc'."),
        ({"cap": "-5"}, "Most per action: a limit is zero or more, not '-5'"),
        ({"week_count": "1.5"}, "Actions a week: send a whole number"),
        ({"day_amount": "12.345"}, "Amount a day: send an amount like 12.50"),
        ({"agency": "Nope"}, "agency: there is no agency 'Nope'"),
        ({"capability": "Spend Ads"}, "Capability:"),
        ({"expires_on": "next week"}, "Last day: send a date as YYYY-MM-DD"),
        ({"expires_on": "2026-11-01"}, "expires_on: 2026-11-01 is already past"),
        ({"mode": "yolo"}, "Mode:"),
    ],
)
async def test_bad_input_says_what_was_wrong_and_gives_nothing(
    store: Store, client: httpx.AsyncClient, changed: dict[str, str], said: str
) -> None:
    csrf = await login(store, client, "/authority")
    before = await state(store)
    answer = await client.post("/authority/grants", data={"csrf": csrf, **NEW_GRANT, **changed})
    assert answer.status_code == 303 and answer.headers["location"] == "/authority#new-grant"
    page = (await client.get("/authority")).text
    flash = text_of(page.split('class="flash refused"', 1)[1].split("</p>", 1)[0])
    assert said in flash, flash
    assert await state(store) == before


async def test_every_wrong_field_is_named_at_once(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    form = {**NEW_GRANT, "cap": "abc", "week_count": "-1", "month_amount": "lots"}
    await client.post("/authority/grants", data={"csrf": csrf, **form})
    page = text_of((await client.get("/authority")).text)
    for label in ("Most per action:", "Actions a week:", "Amount a month:"):
        assert label in page


async def test_a_refused_grant_comes_back_filled_in_as_it_was_typed(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    await client.post("/authority/grants", data={"csrf": csrf, **NEW_GRANT, "cap": "abc", "rationale": SCRIPT})
    page = (await client.get("/authority")).text
    form = part(page, "new-grant-title", "</form>")
    assert '<option value="Outbound" selected>' in form and '<option value="G1" selected>' in form
    assert 'name="role" list="role-names" maxlength="80" value="Researcher"' in form
    assert 'value="spend.ads"' in form and 'value="abc"' in form and 'value="5"' in form and 'value="100"' in form
    assert '<option value="notify" selected>' in form and 'value="2026-12-31"' in form
    assert 'rows="3">ads.example.com' in form and "ads.example.org</textarea>" in form
    assert f">{ESCAPED}</textarea>" in form and "<script" not in page
    assert 'value="spend.ads"' not in part((await client.get("/authority")).text, "new-grant-title", "</form>")


# --- changing a grant: before and after, then apply -------------------------------------------------------


async def test_a_change_shows_the_bounds_before_and_after_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    before = await state(store)
    form = gr2_change(cap="40.00", week_amount="20.00", deny="spam.example.com")
    answer = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **form})
    assert answer.status_code == 200
    page = answer.text
    rows = text_of(part(page, "change", "</table>"))
    assert "Most per action 25.00 USD 40.00 USD changed" in rows
    assert "Week budget 25.00 USD 20.00 USD changed" in rows
    assert "Never for targets none spam.example.com changed" in rows
    assert "Mode notify: acts on its own, and tells you notify: acts on its own, and tells you Most" in rows
    assert "This widens authority: raises the per-action cap from 25.00 to 40.00" in text_of(page)
    assert "GR2 (spend.tools, version 1). Bounds now:" in text_of(page)  # the domain's own preview
    assert "Apply this change to GR2" in page
    assert await state(store) == before


async def test_confirming_the_previewed_change_applies_it_as_a_new_version(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    form = gr2_change(mode="approve", week_amount="20.00", deny="spam.example.com\nads.example.net")
    preview = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **form})
    assert "This only narrows authority." in text_of(preview.text)
    answer = await client.post("/authority/grants/GR2", data=hidden_fields(preview.text))
    assert answer.status_code == 303 and answer.headers["location"] == "/authority#GR2"
    changed = await grant(store, "GR2")
    assert (changed.version, changed.mode, changed.scope_deny) == (
        2,
        "approve",
        ["spam.example.com", "ads.example.net"],
    )
    assert [(b.period, b.max_cents, b.used_cents) for b in changed.budgets] == [("week", 2000, 1000)]  # usage kept
    async with store.read() as tx:
        row = await tx.one("SELECT actor, channel FROM audit_log WHERE action = 'grant.update'")
    assert row is not None and tuple(row) == ("operator:console-1", "verified")
    page = (await client.get("/authority")).text
    assert "GR2 is now version 2: Outbound / Researcher may spend.tools (approve)." in page


async def test_a_widening_the_console_makes_is_the_operators(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(mode="auto")})
    assert "changes the mode from notify to auto" in text_of(preview.text)
    assert (await client.post("/authority/grants/GR2", data=hidden_fields(preview.text))).status_code == 303
    assert (await grant(store, "GR2")).mode == "auto"


async def test_a_confirmation_with_values_the_preview_did_not_show_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(cap="20.00")})
    before = await state(store)
    sent = hidden_fields(preview.text)
    for form in ({**sent, "cap": "2,000.00"}, {**sent, "seal": ""}, {**sent, "version": "2"}, gr2_change(csrf=csrf)):
        answer = await client.post("/authority/grants/GR2", data=form)
        assert answer.status_code == 303
        assert "not the ones the preview showed" in (await client.get("/authority")).text
    assert await state(store) == before


async def test_a_confirmation_after_the_grant_changed_elsewhere_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(cap="20.00")})
    async with store.write() as tx:  # the agency narrows it meanwhile
        await grants.update_grant(tx, RESEARCHER, "GR2", per_action_cap_cents=1500)
    before = await state(store)
    await client.post("/authority/grants/GR2", data=hidden_fields(preview.text))
    page = text_of((await client.get("/authority")).text)
    assert "GR2 changed since the preview (it is at version 2, the preview showed version 1)" in page
    assert await state(store) == before


async def test_a_preview_that_changes_nothing_offers_nothing_to_apply(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change()})
    assert "there is nothing to change" in preview.text and "Apply this change" not in preview.text


async def test_a_bad_change_says_what_was_wrong_and_previews_nothing(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    for ref, form, said in (
        ("GR2", gr2_change(cap="abc"), "Most per action: send an amount like 12.50"),
        ("GR2", gr2_change(week_count="-3"), "Actions a week: a limit is zero or more"),
        ("GR99", gr2_change(), "there is no grant GR99"),
        ("nope", gr2_change(), "grant: 'nope' is not a grant id"),
    ):
        answer = await client.post(f"/authority/grants/{ref}/preview", data={"csrf": csrf, **form})
        assert answer.status_code == 303
        assert said in text_of((await client.get("/authority")).text)


async def test_a_refused_change_comes_back_in_the_grants_open_form_as_typed(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(cap="abc", day_count="4")})
    page = (await client.get("/authority")).text
    card = part(page, "GR2", "</article>")
    assert '<details class="grant-change" open>' in card and 'value="abc"' in card and 'value="4"' in card
    assert '<details class="grant-change" open>' not in part(page, "GR1", "</article>")  # only the refused one
    assert 'value="abc"' not in part((await client.get("/authority")).text, "GR2", "</article>")  # once


# --- revoking ---------------------------------------------------------------------------------------------


async def test_revoking_a_grant_withdraws_it_as_the_console_session(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    answer = await client.post("/authority/grants/GR3/revoke", data={"csrf": csrf, "reason": "meetings by hand now"})
    assert answer.status_code == 303 and answer.headers["location"] == "/authority#revoked"
    assert (await grant(store, "GR3")).status == "revoked"
    async with store.read() as tx:
        row = await tx.one("SELECT actor, channel, detail FROM audit_log WHERE action = 'grant.revoke'")
    assert row is not None and tuple(row)[:2] == ("operator:console-1", "verified")
    assert "meetings by hand now" in row["detail"]
    page = (await client.get("/authority")).text
    assert "GR3 revoked: Outbound / SDR may no longer meeting.book under it." in text_of(page)
    assert 'action="/authority/grants/GR3/revoke"' not in page  # no forms on a revoked grant
    assert "GR3 meeting.book" in text_of(part(page, "revoked", "</section>"))


async def test_a_revoked_grant_cannot_be_revoked_or_changed_again(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    await client.post("/authority/grants/GR3/revoke", data={"csrf": csrf})
    before = await state(store)
    await client.post("/authority/grants/GR3/revoke", data={"csrf": csrf})
    assert "GR3 is already revoked" in (await client.get("/authority")).text
    await client.post("/authority/grants/GR3/preview", data={"csrf": csrf, **gr2_change()})
    assert "GR3 is revoked and cannot be changed" in (await client.get("/authority")).text
    assert await state(store) == before


# --- hostile requests -------------------------------------------------------------------------------------


async def test_every_post_without_the_csrf_token_is_refused_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR2/preview", data={"csrf": csrf, **gr2_change(cap="20.00")})
    applying = hidden_fields(preview.text)
    before = await state(store)
    posts = [
        ("/authority/grants", NEW_GRANT),
        ("/authority/grants/GR2/preview", gr2_change(cap="20.00")),
        ("/authority/grants/GR2", applying),
        ("/authority/grants/GR3/revoke", {"reason": "x"}),
    ]
    for path, form in posts:
        for token in ({}, {"csrf": "guessed"}, {"csrf": ""}):
            answer = await client.post(path, data={**_without_csrf(form), **token})
            assert answer.status_code == 403 and "Nothing was changed" in answer.text, path
        assert (await client.post(path, json={**form, "csrf": csrf})).status_code == 403
    assert await state(store) == before


def _without_csrf(form: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in form.items() if name != "csrf"}


async def test_script_in_an_agency_name_a_capability_a_target_and_a_rationale_is_shown_escaped(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name=SCRIPT, purpose="Hostile")
        spec = GrantSpec(
            agency=SCRIPT, capability="email.send", scope_allow=[SCRIPT], scope_deny=[SCRIPT], rationale=SCRIPT
        )
        await grants.create_grant(tx, OPERATOR_CLI, spec)
    csrf = await login(store, client, "/authority")
    page = (await client.get("/authority")).text
    assert "<script" not in page and ESCAPED in part(page, "letter", "</section>")
    assert ESCAPED in part(page, "GR4", "</article>") and ESCAPED in part(page, "new-grant", "</section>")
    # A capability the domain refuses comes back in its message: escaped there too.
    await client.post("/authority/grants", data={"csrf": csrf, **NEW_GRANT, "capability": SCRIPT, "role": SCRIPT})
    page = (await client.get("/authority")).text
    assert "<script" not in page and "Capability:" in text_of(page)
    preview = await client.post("/authority/grants/GR4/preview", data={"csrf": csrf, **gr2_change(allow=SCRIPT)})
    assert "<script" not in preview.text and ESCAPED in preview.text

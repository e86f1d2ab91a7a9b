"""The Authority page's two acts on a grant's past, in-process over ASGI: handing a stopped grant's space over
(a widening, shown first with the grants that may then answer, confirmed with a ticked box) and restoring a
kept version (before and after first, sealed like a change), both as the console session.

The workspace is the Outbound blueprint (GR1 email.send and GR3 meeting.book for the SDR, GR2 spend.tools for
the Researcher with a 25.00 cap and week) plus GR4, an every-role spend.* in auto up to 50.00 an action, which
the operator gave at the terminal. The Researcher has revoked GR2, so GR2 still holds its space: a tools
purchase comes to the operator, not to GR4.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.domain import agencies
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.http.console_authority import terms_of
from tests.http.console_support import (
    ESCAPED,
    SCRIPT,
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
CHAT = Actor("operator:chat", "chat")
BROAD = GrantSpec(
    agency="Outbound",
    capability="spend.*",
    per_action_cap_cents=5000,
    budgets=[BudgetSpec(period="week", max_cents=20000)],
    rationale="Small purchases of any kind.",
)


@pytest.fixture
async def store(store: Store) -> Store:
    """Outbound, GR4 (every role's spend.* up to 50.00), and GR2 revoked by the Researcher: it holds its space."""
    await apply_outbound(store)
    async with store.write() as tx:
        await grants.create_grant(tx, OPERATOR_CLI, BROAD)
        await grants.revoke_grant(tx, RESEARCHER, "GR2", reason="the page said so")
    return store


async def ask(store: Store) -> ledger.AuthorizationView:
    """The Researcher asks to spend 10.00 on a tool."""
    async with store.write() as tx:
        return await ledger.authorize(
            tx,
            RESEARCHER,
            agency="Outbound",
            role="Researcher",
            capability="spend.tools",
            amount_cents=1000,
            target="clearbit.com",
            task_id=None,
            idempotency_key=None,
        )


async def state(store: Store) -> tuple[Any, ...]:
    """What an act on grants would change: the grants, their budgets, versions and decisions, and the audit log."""
    async with store.read() as tx:
        return (
            [tuple(row) for row in await tx.all("SELECT * FROM grants ORDER BY id")],
            [tuple(row) for row in await tx.all("SELECT * FROM grant_budgets ORDER BY id")],
            await tx.scalar("SELECT count(*) FROM grant_versions"),
            [tuple(row) for row in await tx.all("SELECT id, status FROM decisions ORDER BY id")],
            await tx.scalar("SELECT count(*) FROM audit_log"),
        )


async def refusal(client: httpx.AsyncClient, answer: httpx.Response) -> str:
    """A refused act answers 303 to the Authority page, which shows why."""
    assert answer.status_code == 303, answer.text[:300]
    return flash((await client.get(answer.headers["location"])).text)


async def shown_hand_over(client: httpx.AsyncClient, csrf: str, grant: str = "GR2") -> httpx.Response:
    answer = await client.post(f"/authority/grants/{grant}/hand-over/preview", data={"csrf": csrf})
    assert answer.status_code == 200, answer.text[:300]
    return answer


def confirmed(page: str, **more: str) -> dict[str, str]:
    """The hand-over form as sent with its box ticked."""
    return {**hidden_fields(page), "confirm": "yes", "reason": "GR4 is enough now", **more}


# --- handing over --------------------------------------------------------------------------------------------


async def test_the_revoked_table_offers_a_hand_over_and_says_the_console_makes_it(
    store: Store, client: httpx.AsyncClient
) -> None:
    await login(store, client, "/authority")
    revoked = part((await client.get("/authority")).text, "revoked", "</section>")
    assert 'action="/authority/grants/GR2/hand-over/preview"' in revoked
    assert "held: its requests come to you" in text_of(revoked)
    assert "terminal" not in text_of(revoked)
    letter = text_of(part((await client.get("/authority")).text, "letter", "</section>"))
    assert "(or Hand over on the console's Authority page) lets broader grants cover it." in letter


async def test_the_hand_over_page_says_what_happens_and_which_grants_may_answer_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    before = await state(store)
    page = (await shown_hand_over(client, csrf)).text
    words = text_of(part(page, "hand-over", "</section>"))
    assert "GR2 is revoked, but it still holds its space: every spend.tools request it covered comes to you" in words
    assert "This widens authority, and cannot be undone." in words
    assert "GR4 spend.* Outbound, every role, version 1, active" in words
    assert "Most per action 50.00 USD Day budget none Week budget 200.00 USD" in words
    assert 'type="checkbox" name="confirm" value="yes" required' in page
    assert "I understand that the grants above, and any I give later, may then allow what GR2 held back" in words
    assert_self_contained(page)
    assert await state(store) == before


async def test_handing_over_lets_the_broader_grant_allow_what_was_escalated_before(
    store: Store, client: httpx.AsyncClient
) -> None:
    held = await ask(store)
    assert (held.answer, held.grant_id) == ("needs_approval", "GR2")
    csrf = await login(store, client, "/authority")
    page = (await shown_hand_over(client, csrf)).text
    answer = await client.post("/authority/grants/GR2/hand-over", data=confirmed(page))
    assert answer.status_code == 303 and answer.headers["location"] == "/authority#GR2"
    async with store.read() as tx:
        row = await tx.one("SELECT actor, channel, detail FROM audit_log WHERE action = 'grant.hand_over'")
    assert row is not None and tuple(row)[:2] == ("operator:console-1", "verified")
    assert "GR4 is enough now" in row["detail"]
    freed = await ask(store)
    assert (freed.answer, freed.grant_id) == ("allowed", "GR4")

    shown = (await client.get("/authority")).text
    assert "GR2 handed over: GR4 may now answer what it held back for Outbound / Researcher" in flash(shown)
    revoked = part(shown, "revoked", "</section>")
    assert "handed over on 2026-11-23 09:00" in text_of(revoked)
    assert "hand-over" not in revoked.split("</table>", 1)[0]  # no form on a grant handed over


async def test_a_hand_over_without_the_box_ticked_changes_nothing(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    page = (await shown_hand_over(client, csrf)).text
    before = await state(store)
    for form in ({**confirmed(page), "confirm": ""}, {k: v for k, v in confirmed(page).items() if k != "confirm"}):
        said = await refusal(client, await client.post("/authority/grants/GR2/hand-over", data=form))
        assert said == (
            "GR2: tick the box saying you understand what handing it over does, then press Hand over GR2; "
            "nothing was changed."
        )
    assert await state(store) == before
    assert (await ask(store)).answer == "needs_approval"


async def test_a_hand_over_its_page_did_not_show_changes_nothing(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    sent = confirmed((await shown_hand_over(client, csrf)).text)
    before = await state(store)
    forged = [
        {**sent, "seal": ""},
        {**sent, "covered_by": ""},
        {**sent, "version": "3"},
        {"csrf": csrf, "confirm": "yes"},
    ]
    for form in forged:
        said = await refusal(client, await client.post("/authority/grants/GR2/hand-over", data=form))
        assert said.startswith("GR2: this hand-over is not the one its page showed, so nothing was changed."), said
    # GR2's sealed form does not hand GR3 over.
    said = await refusal(client, await client.post("/authority/grants/GR3/hand-over", data=sent))
    assert "GR3: this hand-over is not the one its page showed" in said
    assert await state(store) == before


async def test_a_hand_over_after_the_covering_grants_changed_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    sent = confirmed((await shown_hand_over(client, csrf)).text)
    async with store.write() as tx:  # meanwhile, a broader grant the page did not list
        await grants.create_grant(tx, OPERATOR_CLI, BROAD.model_copy(update={"capability": "spend.tools"}))
    before = await state(store)
    said = await refusal(client, await client.post("/authority/grants/GR2/hand-over", data=sent))
    assert said.startswith("GR2: the grants that may answer for it changed since its page was shown")
    assert await state(store) == before
    assert "GR5 spend.tools" in text_of((await shown_hand_over(client, csrf)).text)  # shown anew, it lists GR5


async def test_an_active_grant_is_revoked_before_it_is_handed_over(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    before = await state(store)
    said = await refusal(client, await client.post("/authority/grants/GR1/hand-over/preview", data={"csrf": csrf}))
    assert said == (
        "grant: GR1 is active, so it has no space to hand over; nothing was changed. Revoke it first "
        "(Revoke GR1 on its card), then hand it over."
    )
    # A sealed form of another grant's hand-over does not reach GR1 either.
    sent = confirmed((await shown_hand_over(client, csrf)).text)
    said = await refusal(client, await client.post("/authority/grants/GR1/hand-over", data=sent))
    assert "GR1: this hand-over is not the one its page showed" in said
    assert await state(store) == before
    assert 'action="/authority/grants/GR1/hand-over' not in (await client.get("/authority")).text


async def test_a_grant_handed_over_is_not_handed_over_again(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/authority")
    sent = confirmed((await shown_hand_over(client, csrf)).text)
    assert (await client.post("/authority/grants/GR2/hand-over", data=sent)).status_code == 303
    before = await state(store)
    again = "grant: GR2 was already handed over on 2026-11-23 09:00; nothing was changed."
    assert await refusal(client, await client.post("/authority/grants/GR2/hand-over", data=sent)) == again
    preview = await client.post("/authority/grants/GR2/hand-over/preview", data={"csrf": csrf})
    assert await refusal(client, preview) == again
    assert await state(store) == before


async def test_a_hand_over_with_no_other_grant_covering_says_its_requests_come_to_you(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR3")
    csrf = await login(store, client, "/authority")
    page = (await shown_hand_over(client, csrf, "GR3")).text
    assert "No other grant of Outbound covers those requests now" in text_of(page)
    assert "I understand that any grant I give later may then allow what GR3 held back" in text_of(page)
    await client.post("/authority/grants/GR3/hand-over", data=confirmed(page))
    said = flash((await client.get("/authority")).text)
    assert said.startswith("GR3 handed over: no other grant covers what it held back for Outbound / SDR")


async def test_a_grant_past_its_last_day_is_handed_over_from_its_card(
    store: Store, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    async with store.write() as tx:
        await grants.update_grant(tx, OPERATOR_CLI, "GR3", expires_on="2026-11-23")
    clock.set(clock.now().replace(day=24))
    csrf = await login(store, client, "/authority")
    card = part((await client.get("/authority")).text, "GR3", "</article>")
    assert "Past its last day, GR3 still holds its space" in text_of(card)
    page = (await shown_hand_over(client, csrf, "GR3")).text
    assert "(its last day was 2026-11-23), but it still holds its space" in text_of(page)
    assert (await client.post("/authority/grants/GR3/hand-over", data=confirmed(page))).status_code == 303
    async with store.read() as tx:
        row = await tx.one("SELECT status, handed_over_at FROM grants WHERE id = 3")
    assert row is not None and tuple(row) == ("revoked", "2026-11-24T08:00:00.000000Z")


async def test_the_hand_over_lists_the_grants_the_ledger_would_try_in_its_place(store: Store) -> None:
    """Same agency, its role or every role, sharing a request, and ranking below it or made in chat."""
    week = [BudgetSpec(period="week", max_cents=100)]
    async with store.write() as tx:
        for actor, role, capability in (
            (OPERATOR_CLI, "Researcher", "spend.ads"),  # GR5: no request in common
            (OPERATOR_CLI, "SDR", "spend.*"),  # GR6: another role's
            (OPERATOR_CLI, "Researcher", "spend.*"),  # GR7: below GR2 (a wildcard)
            (CHAT, "Researcher", "spend.tools"),  # GR8: above GR2, but made in chat, so GR2 bound it too
            (OPERATOR_CLI, None, "email.*"),  # GR9: another capability
        ):
            spec = GrantSpec(agency="Outbound", role=role, capability=capability, budgets=week)
            await grants.create_grant(tx, actor, spec)
        answering = [view.id for view in await grants.hand_over_successors(tx, "GR2")]
    assert answering == ["GR8", "GR7", "GR4"]  # in the ledger's order: role first, exact first, newest first


# --- restoring a version --------------------------------------------------------------------------------------


async def change_gr1(store: Store) -> None:
    """The operator narrows GR1 at the terminal: version 2, in approve mode, 20 a day, one more deny."""
    async with store.write() as tx:
        await grants.update_grant(
            tx,
            OPERATOR_CLI,
            "GR1",
            mode="approve",
            budgets=[BudgetSpec(period="day", max_count=20)],
            rationale="Slower while the domain warms up.",
        )


async def test_each_grant_lists_its_versions_with_the_bounds_that_differ_from_now(
    store: Store, client: httpx.AsyncClient
) -> None:
    await change_gr1(store)
    await login(store, client, "/authority")
    history = part((await client.get("/authority")).text, "GR1-versions", "</details>")
    rows = text_of(history)
    assert "GR1's versions (2)" in rows
    assert "2 2026-11-23 09:00 verified changed in force now" in rows
    assert "1 2026-11-23 09:00 verified given Mode auto: acts on its own Day budget 50 actions Why First" in rows
    assert 'action="/authority/grants/GR1/restore/preview"' in history and 'name="restore" value="1"' in history
    assert 'name="restore" value="2"' not in history  # the version in force has nothing to restore
    assert "GR2-versions" not in (await client.get("/authority")).text  # a revoked grant cannot be changed


async def test_a_restore_shows_the_bounds_before_and_after_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    await change_gr1(store)
    csrf = await login(store, client, "/authority")
    before = await state(store)
    answer = await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})
    assert answer.status_code == 200
    page = answer.text
    assert "GR1's bounds now, and as version 1 had them" in text_of(page)
    rows = text_of(part(page, "change", "</table>"))
    assert "Mode approve: asks you first, each time auto: acts on its own changed" in rows
    assert "Day budget 20 actions 50 actions changed" in rows
    assert "This widens authority:" in text_of(page) and "changes the mode from approve to auto" in text_of(page)
    assert "GR1 (email.send, version 2). Bounds now:" in text_of(page)  # the domain's own preview
    assert '<button type="submit">Restore GR1&#39;s version 1</button>' in page
    assert_self_contained(page)
    assert await state(store) == before


async def test_restoring_the_previewed_version_puts_its_bounds_back_audited_as_a_restore(
    store: Store, client: httpx.AsyncClient
) -> None:
    await change_gr1(store)
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})
    answer = await client.post("/authority/grants/GR1/restore", data=hidden_fields(preview.text))
    assert answer.status_code == 303 and answer.headers["location"] == "/authority#GR1"
    async with store.read() as tx:
        kept = await grants.grant_versions(tx, "GR1")
        now = next(view for view in await grants.list_grants(tx) if view.id == "GR1")
        row = await tx.one(
            "SELECT actor, channel, detail FROM audit_log WHERE action = 'grant.update' ORDER BY id DESC"
        )
    assert now.version == 3 and terms_of(now) == kept[0].terms and kept[2].terms == kept[0].terms
    assert row is not None and tuple(row)[:2] == ("operator:console-1", "verified")
    assert '"restores_version":1' in row["detail"]
    said = flash((await client.get("/authority")).text)
    assert said == "GR1 is now version 3, with version 1's bounds: Outbound / SDR may email.send (auto)."


async def test_a_restore_the_preview_did_not_show_changes_nothing(store: Store, client: httpx.AsyncClient) -> None:
    await change_gr1(store)
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})
    sent = hidden_fields(preview.text)
    before = await state(store)
    not_shown = "GR1: this is not the restore the preview showed, so nothing was changed."
    for form in (
        {**sent, "seal": "0" * 64},
        {**sent, "restore": "2"},
        {**sent, "version": "1"},
        {**sent, "restore": "99"},
    ):
        said = await refusal(client, await client.post("/authority/grants/GR1/restore", data=form))
        assert said.startswith(not_shown), said
    said = await refusal(client, await client.post("/authority/grants/GR3/restore", data=sent))
    assert said.startswith("GR3: this is not the restore the preview showed")
    for number in ("one", "", "-1", "1.0", "１"):
        said = await refusal(
            client, await client.post("/authority/grants/GR1/restore", data={**sent, "restore": number})
        )
        assert said.startswith("version: send the number of one of GR1's versions, e.g. 1"), said
    assert await state(store) == before


async def test_a_restore_of_a_version_that_is_not_kept_or_not_a_number_previews_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    before = await state(store)
    for ref, number, said in (
        ("GR1", "99", "version: GR1 has versions 1 to 1; send one of them."),
        ("GR1", "0", "version: GR1 has versions 1 to 1; send one of them."),
        ("GR1", "abc", "version: send the number of one of GR1's versions, e.g. 1"),
        ("GR1", "99999999999999999999", "version: send the number of one of GR1's versions"),
        ("GR2", "1", "grant: GR2 is revoked and cannot be changed; create a new grant instead."),
        ("GR99", "1", "grant: there is no grant GR99"),
        ("nope", "1", "grant: 'nope' is not a grant id"),
    ):
        answer = await client.post(f"/authority/grants/{ref}/restore/preview", data={"csrf": csrf, "restore": number})
        assert (await refusal(client, answer)).startswith(said), (ref, number)
    assert await state(store) == before


async def test_a_restore_after_the_grant_moved_on_changes_nothing(store: Store, client: httpx.AsyncClient) -> None:
    await change_gr1(store)
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})
    async with store.write() as tx:  # the agency narrows GR1 meanwhile
        await grants.update_grant(tx, Actor("agency:Outbound/SDR", "agency"), "GR1", scope_allow=["*.com"])
    before = await state(store)
    said = await refusal(client, await client.post("/authority/grants/GR1/restore", data=hidden_fields(preview.text)))
    assert said.startswith("GR1 changed since the preview (it is at version 3, the preview showed version 2)")
    assert await state(store) == before


async def test_a_restore_to_the_bounds_in_force_offers_nothing_to_apply(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})
    assert "there is nothing to change" in preview.text and "grant-apply" not in preview.text


# --- hostile requests -------------------------------------------------------------------------------------------


async def test_every_new_post_without_the_csrf_token_is_refused_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    await change_gr1(store)
    csrf = await login(store, client, "/authority")
    preview = await client.post("/authority/grants/GR1/restore/preview", data={"csrf": csrf, "restore": "1"})
    posts = [
        ("/authority/grants/GR1/restore/preview", {"restore": "1"}),
        ("/authority/grants/GR1/restore", hidden_fields(preview.text)),
        ("/authority/grants/GR2/hand-over/preview", {}),
        ("/authority/grants/GR2/hand-over", confirmed((await shown_hand_over(client, csrf)).text)),
    ]
    before = await state(store)
    for path, form in posts:
        for token in ({}, {"csrf": "guessed"}, {"csrf": ""}):
            sent = {name: value for name, value in form.items() if name != "csrf"}
            answer = await client.post(path, data={**sent, **token})
            assert answer.status_code == 403 and "Nothing was changed" in answer.text, path
    assert await state(store) == before


@pytest.mark.parametrize("ref", ["GR99", "nope", "GR0", "GR1%00", "GR99999999999999999999", "%E2%80%AE"])
async def test_a_grant_id_that_is_wrong_is_refused_plainly_and_never_crashes(
    store: Store, client: httpx.AsyncClient, ref: str
) -> None:
    csrf = await login(store, client, "/authority")
    before = await state(store)
    for path in ("restore/preview", "restore", "hand-over/preview", "hand-over"):
        answer = await client.post(f"/authority/grants/{ref}/{path}", data={"csrf": csrf, "restore": "1"})
        said = await refusal(client, answer)
        assert said.startswith(("grant:", f"{ref}: this")), (path, said)
    assert await state(store) == before


async def test_script_in_an_agency_name_a_rationale_and_a_target_is_shown_escaped(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name=SCRIPT, purpose="Hostile")
        wide = GrantSpec(agency=SCRIPT, capability="email.*", scope_deny=[SCRIPT], rationale=SCRIPT)
        await grants.create_grant(tx, OPERATOR_CLI, wide)  # GR5
        await grants.create_grant(tx, OPERATOR_CLI, wide.model_copy(update={"capability": "email.send"}))  # GR6
        await grants.update_grant(tx, OPERATOR_CLI, "GR5", rationale="calm", scope_deny=[])
        await grants.revoke_grant(tx, OPERATOR_CLI, "GR6")
    csrf = await login(store, client, "/authority")
    page = (await client.get("/authority")).text
    assert "<script" not in page and ESCAPED in part(page, "GR5-versions", "</details>")
    restore = await client.post("/authority/grants/GR5/restore/preview", data={"csrf": csrf, "restore": "1"})
    assert "<script" not in restore.text and ESCAPED in part(restore.text, "change", "</table>")
    hand_over = (await shown_hand_over(client, csrf, "GR6")).text
    assert "<script" not in hand_over and ESCAPED in part(hand_over, "hand-over", "</form>")


# --- what chat is told ------------------------------------------------------------------------------------------


async def test_chat_is_told_the_console_makes_a_hand_over_and_a_restore(store: Store) -> None:
    await change_gr1(store)
    async with store.write() as tx:
        for actor, refused in ((CHAT, "cannot be done in chat"), (RESEARCHER, "is an operator decision")):
            with pytest.raises(OperatorActRefused, match=refused) as hand_over:
                await grants.revoke_grant(tx, actor, "GR2", hand_over=True)
            assert str(hand_over.value).endswith(
                "chief-of-staff revoke GR2 --hand-over, or in the console (open_console)"
            )
            with pytest.raises(OperatorActRefused, match=refused) as restore:
                await grants.restore_version(tx, actor, "GR1", 1)
            assert str(restore.value).endswith(
                "chief-of-staff grant-update GR1 --restore 1, or in the console (open_console)"
            )

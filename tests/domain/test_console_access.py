"""The console's door: a login link opens one session once, within minutes; sessions end; all of it audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import AccessRefused, InvalidInput
from chief_of_staff.domain import console_access
from chief_of_staff.domain.console_access import Opened

pytestmark = pytest.mark.anyio


async def mint(store: Store, **options: object) -> str:
    async with store.write() as tx:
        return await console_access.mint_login(tx, OPERATOR_CLI, **options)  # type: ignore[arg-type]


async def redeem(store: Store, secret: str) -> Opened:
    async with store.write() as tx:
        return await console_access.redeem_login(tx, secret)


async def session(store: Store, secret: str) -> console_access.ConsoleSession:
    async with store.read() as tx:
        return await console_access.session_of(tx, secret)


async def audit_rows(store: Store) -> list[tuple[str, str, str, str]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT actor, channel, action, subject FROM audit_log WHERE action LIKE 'console.%'")
    return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_a_login_link_opens_one_session_and_only_once(store: Store) -> None:
    secret = await mint(store)
    opened = await redeem(store, secret)
    assert opened.page == "/" and opened.secret != secret
    assert (await session(store, opened.secret)).id == opened.session.id
    with pytest.raises(AccessRefused, match="already used") as refused:
        await redeem(store, secret)
    assert "chief-of-staff console" in str(refused.value)


async def test_a_login_link_expires_within_minutes(store: Store, clock: FixedClock) -> None:
    secret = await mint(store)
    clock.advance(console_access.LOGIN_TTL)
    with pytest.raises(AccessRefused, match="expired"):
        await redeem(store, secret)


async def test_a_secret_nobody_minted_is_refused_and_writes_nothing(store: Store) -> None:
    before = await audit_rows(store)
    for secret in ("", "cosl_not-a-real-one", "coss_wrong-kind", "x" * 500):
        with pytest.raises(AccessRefused, match="not a login link of this workspace"):
            await redeem(store, secret)
    assert await audit_rows(store) == before


async def test_only_digests_of_the_secrets_are_stored(store: Store) -> None:
    secret = await mint(store)
    opened = await redeem(store, secret)
    async with store.read() as tx:
        stored = [tuple(row) for row in await tx.all("SELECT * FROM console_logins")]
        stored += [tuple(row) for row in await tx.all("SELECT * FROM console_sessions")]
        detail = [row[0] for row in await tx.all("SELECT detail FROM audit_log")]
    text = repr(stored) + repr(detail)
    assert secret not in text and opened.secret not in text
    assert console_access.digest(secret) in text and console_access.digest(opened.secret) in text


async def test_a_link_lives_minutes_and_lands_only_on_the_console(store: Store) -> None:
    with pytest.raises(InvalidInput, match="minutes"):
        await mint(store, ttl=timedelta(hours=1))
    with pytest.raises(InvalidInput, match="minutes"):
        await mint(store, ttl=timedelta(0))
    for page in ("//evil.example/", "https://evil.example/", "/../x", "/a b", "goals", "/\\evil"):
        with pytest.raises(InvalidInput, match="path on the console"):
            await mint(store, page=page)
    opened = await redeem(store, await mint(store, page="/decisions/D7"))
    assert opened.page == "/decisions/D7"


async def test_a_session_ends_at_its_expiry_after_idling_and_at_logout(store: Store, clock: FixedClock) -> None:
    idle = (await redeem(store, await mint(store))).secret
    clock.advance(console_access.IDLE_TIMEOUT)
    with pytest.raises(AccessRefused, match="unused"):
        await session(store, idle)

    kept = await redeem(store, await mint(store))
    for _ in range(int(console_access.SESSION_TTL / timedelta(hours=1))):
        live = await session(store, kept.secret)
        async with store.write() as tx:
            await console_access.mark_seen(tx, live)
        clock.advance(timedelta(hours=1))
    with pytest.raises(AccessRefused, match="ended at"):
        await session(store, kept.secret)

    out = await redeem(store, await mint(store))
    async with store.write() as tx:
        await console_access.end_session(tx, out.session)
    with pytest.raises(AccessRefused, match="logged out"):
        await session(store, out.secret)


async def test_minting_logging_in_and_out_are_audited_and_the_session_acts_on_the_verified_channel(
    store: Store,
) -> None:
    chat_asked = Actor("agency:Outbound", "agency")
    async with store.write() as tx:
        secret = await console_access.mint_login(tx, chat_asked)
    opened = await redeem(store, secret)
    async with store.write() as tx:
        await console_access.end_session(tx, opened.session)
        await console_access.end_session(tx, opened.session)  # a second logout changes nothing
    label = f"console-{opened.session.id}"
    assert opened.session.actor == Actor(f"operator:{label}", "verified")
    assert await audit_rows(store) == [
        ("agency:Outbound", "agency", "console.link", "console-link-1"),
        (f"operator:{label}", "verified", "console.login", label),
        (f"operator:{label}", "verified", "console.logout", label),
    ]


async def test_seeing_a_session_is_recorded_at_most_once_a_minute(store: Store, clock: FixedClock) -> None:
    opened = await redeem(store, await mint(store))
    assert not console_access.seen_is_stale(opened.session, clock.now())
    clock.advance(console_access.SEEN_RESOLUTION)
    assert console_access.seen_is_stale(opened.session, clock.now())

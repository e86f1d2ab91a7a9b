"""Targets are canonical before any pattern sees them: no spelling of a denied target gets through."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import agencies, deciding
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.ledger import AuthorizationView
from chief_of_staff.domain.authority.targets import canonical_pattern, canonical_target

AGENCY = Actor("Outbound", "agency")
DENY = ["*.gov", "gmail.com"]
TABLES = ("authorizations", "decisions", "budget_usage", "audit_log")


# --- canonical_target ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("jane@agency.gov.", "jane@agency.gov"),
        ("jane@agency.gov...", "jane@agency.gov"),
        ("ops@agency.ｇｏｖ", "ops@agency.gov"),
        ("ｊａｎｅ＠ｇｍａｉｌ．ｃｏｍ", "jane@gmail.com"),
        ("agency\u3002gov", "agency.gov"),
        ("Jane <jane@gmail.com>", "jane@gmail.com"),
        ('"Jane Doe" <Jane@GMail.com.>', "jane@gmail.com"),
        ("<jane@gmail.com>", "jane@gmail.com"),
        ("mailto:Jane@Gmail.com", "jane@gmail.com"),
        ("  Jane@Acme.COM \t", "jane@acme.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("info@BÜCHER.de", "info@xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("https://shop.evil.io/x", "https://shop.evil.io/x"),
        ("HTTPS://Shop.Evil.IO./Path?Q=1", "https://shop.evil.io/Path?Q=1"),
        ("https://bücher.de:8443/a", "https://xn--bcher-kva.de:8443/a"),
        ("http://[::1]/x", "http://[::1]/x"),
        ("LinkedIn.com./company/Acme", "linkedin.com/company/Acme"),
        ("crm/leads.csv", "crm/leads.csv"),
        ("newsletter-q4", "newsletter-q4"),
        ("list:VIP-1", "list:vip-1"),
        ("Q4   leads", "q4 leads"),
    ],
)
def test_spellings_of_one_target_come_out_as_one_canonical_target(spelling: str, canonical: str) -> None:
    assert canonical_target(spelling) == canonical


@pytest.mark.parametrize(
    ("spelling", "says"),
    [
        ("a@agency.gov,b@acme.com", "ask once per recipient"),
        ("a@agency.gov; b@acme.com", "ask once per recipient"),
        ("a@agency.gov\nb@acme.com", "a line break.*ask once per recipient"),
        ("a@agency.gov b@acme.com", "more than one '@'"),
        ("a@agency.gov，b@acme.com", "ask once per recipient"),  # fullwidth comma
        ("a@agency.gov、b@acme.com", "ask once per recipient"),  # ideographic comma
        ("Out\u200bbound@acme.com", "U\\+200B"),  # zero-width space
        ("jane@gmail\u200d.com", "U\\+200D"),  # zero-width joiner
        ("moc.liamg@enaj\u202e", "U\\+202E"),  # right-to-left override
        ("jane@\u2066gmail.com", "U\\+2066"),  # left-to-right isolate
        ("jane\x00@gmail.com", "U\\+0000"),
        ("jane@gmail.com\ufeff", "U\\+FEFF"),
        ("https://acme.com@evil.io/", "without it"),
        ('"Jane <jane@gmail.com>', "bare email address"),
        ("jane@[10.0.0.1]", "not a domain"),
        ("//agency.gov/x", "is not one target"),
        ("agency.gov/a b", "holds spaces after its host"),
        ("a..gov", "not a domain"),
        ("@gmail.com", "name@domain"),
        ("   ", "empty"),
        ("x" * 501, "at most 500"),
    ],
)
def test_targets_that_are_several_invisible_or_ambiguous_are_refused(spelling: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=f"^target: .*{says}"):
        canonical_target(spelling)


@pytest.mark.parametrize(
    ("pattern", "canonical"),
    [
        ("*.GOV.", "*.gov"),
        ("*@acme.com", "*@acme.com"),
        ("*@BÜCHER.de.", "*@xn--bcher-kva.de"),
        ("ｇｍａｉｌ.com", "gmail.com"),
        ("gmail\u200b.com", "gmail.com"),
        ("list:vip-?", "list:vip-?"),
        ("https://Shop.evil.io/*", "https://shop.evil.io/*"),
    ],
)
def test_patterns_are_read_in_the_same_spelling_with_their_globs(pattern: str, canonical: str) -> None:
    assert canonical_pattern(pattern) == canonical


@pytest.mark.parametrize(
    ("pattern", "target"),
    [
        ("*.GOV.", "jane@agency.gov"),
        ("*.gov", "jane@agency.gov."),
        ("*.gov", "ops@agency.ｇｏｖ"),
        ("gmail.com", "Jane <jane@gmail.com>"),
        ("*@gmail.com", "mailto:JANE@gmail.com."),
        ("bücher.de", "info@xn--bcher-kva.de"),
        ("evil.io", "https://shop.evil.io/x"),
        ("*.gov", "Agency.GOV./x"),
        ("newsletter-*", "Newsletter-Q4"),
    ],
)
def test_a_pattern_covers_every_spelling_of_a_target_it_names(pattern: str, target: str) -> None:
    assert grants.target_matches(pattern, target)


# --- properties ---------------------------------------------------------------------------------

_labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8).filter(
    lambda label: not label.startswith("xn")
)
_domains = st.lists(_labels, min_size=1, max_size=3).map(lambda labels: ".".join(labels))
_addresses = st.tuples(_labels, _domains, st.sampled_from(["gov", "com", "io"])).map(
    lambda parts: f"{parts[0]}@{parts[1]}.{parts[2]}"
)


def _fullwidth(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


@st.composite
def _spellings(draw: st.DrawFn, address: str) -> str:
    """The same address written another way: case, fullwidth forms, dots, wrappers and padding."""
    chars = [
        draw(st.sampled_from([ch, ch.upper(), _fullwidth(ch), _fullwidth(ch.upper())])) if ch.isalnum() else ch
        for ch in address
    ]
    text = "".join(chars)
    text = text.replace(".", draw(st.sampled_from([".", "\u3002", "\uff0e", "\uff61"])))
    text += "." * draw(st.integers(0, 2))
    wrap = draw(st.sampled_from(["{}", "Jane <{}>", '"Doe, J" <{}>', "<{}>", "mailto:{}", "  {}\t", "{}\u200b"]))
    return wrap.format(text)


@given(st.data(), _addresses)
def test_no_spelling_of_a_denied_address_is_read_as_another_target(data: st.DataObject, address: str) -> None:
    spelling = data.draw(_spellings(address))
    try:
        canonical = canonical_target(spelling)
    except InvalidInput:
        return  # refused outright: never matched, never allowed
    assert canonical == address
    domain = address.rpartition("@")[2]
    for pattern in (f"*.{domain.rpartition('.')[2]}", domain, f"*@{domain}.", address.upper()):
        assert grants.target_matches(pattern, spelling)


@given(st.text(max_size=60))
def test_canonical_targets_are_their_own_canonical_form(text: str) -> None:
    try:
        canonical = canonical_target(text)
    except InvalidInput:
        return
    assert canonical_target(canonical) == canonical


@given(st.lists(_addresses, min_size=2, max_size=3), st.sampled_from([",", ";", "\n", " ", "，", "\r\n", " and "]))
def test_several_recipients_in_one_target_are_refused(addresses: list[str], separator: str) -> None:
    with pytest.raises(InvalidInput, match=r"once per recipient|more than one"):
        canonical_target(separator.join(addresses))


# --- through authorize --------------------------------------------------------------------------


@pytest.fixture
async def store(store: Store) -> Store:
    """The workspace with agency Outbound and its role SDR."""
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Writes and sends")
    return store


async def _grant(store: Store, **fields: Any) -> None:
    async with store.write() as tx:
        await grants.create_grant(
            tx, OPERATOR_CLI, GrantSpec(agency="Outbound", role="SDR", capability="email.send", **fields)
        )


async def _ask(store: Store, target: str | None) -> AuthorizationView:
    async with store.write() as tx:
        return await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role="SDR",
            capability="email.send",
            amount_cents=0,
            target=target,
            task_id=None,
            idempotency_key=None,
        )


async def _rows(store: Store) -> dict[str, int]:
    async with store.read() as tx:
        return {table: await tx.scalar(f"SELECT count(*) FROM {table}") for table in TABLES}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spelling",
    [
        None,
        "jane@agency.gov.",
        "ops@agency.ｇｏｖ",
        "Jane <jane@gmail.com>",
        "https://www.agency.gov./x",
        "agency.gov./x",
    ],
)
async def test_every_known_spelling_of_a_denied_target_is_denied(store: Store, spelling: str | None) -> None:
    await _grant(store, scope_deny=DENY)
    answer = await _ask(store, spelling)
    assert (answer.answer, answer.grant_id) == ("denied", "GR1")
    assert ("send the target" if spelling is None else "out of bounds") in answer.reason


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spelling", ["a@agency.gov,b@acme.com", "b@acme.com\na@agency.gov", "jane@gmail\u200b.com", "jane@gmail.com\u202e"]
)
async def test_a_refused_target_writes_nothing(store: Store, spelling: str) -> None:
    await _grant(store, scope_deny=DENY)
    before = await _rows(store)
    with pytest.raises(InvalidInput, match=r"^target: "):
        await _ask(store, spelling)
    assert await _rows(store) == before


@pytest.mark.anyio
async def test_the_ledger_keeps_the_canonical_target_and_allowed_targets_still_pass(store: Store) -> None:
    await _grant(store, scope_deny=DENY)
    allowed = await _ask(store, "Sam <Sam@Acme.COM.>")
    assert (allowed.answer, allowed.target) == ("allowed", "sam@acme.com")
    assert (await _ask(store, "newsletter-q4")).answer == "allowed"


@pytest.mark.anyio
async def test_an_approval_binds_the_target_not_its_spelling(store: Store) -> None:
    await _grant(store, mode="approve", scope_allow=["acme.com"])
    asked = await _ask(store, "Jane <JANE@acme.com.>")
    assert (asked.answer, asked.decision_id) == ("needs_approval", "D1")
    async with store.write() as tx:
        await deciding.decide(tx, OPERATOR_CLI, "D1", approve=True)
    allowed = await _ask(store, "jane@acme.com")
    assert (allowed.answer, allowed.decision_id) == ("allowed", "D1")

"""The roster: agencies, roles, name lookups and the playbook."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.domain import agencies

pytestmark = pytest.mark.anyio

AGENCY = Actor("Outbound", "agency")
CHAT = Actor("operator", "chat")


async def _setup(tx: Tx) -> None:
    await agencies.create_agency(
        tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings", operating_spec="Be brief.", blueprint="outbound"
    )
    await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Write and send.")


async def _counts(store: Store) -> tuple[int, int, int, int]:
    async with store.read() as tx:
        return tuple(  # type: ignore[return-value]
            [
                await tx.scalar(f"SELECT count(*) FROM {table}")
                for table in ("audit_log", "agencies", "roles", "lessons")
            ]
        )


async def _last_audit(store: Store) -> dict[str, Any]:
    async with store.read() as tx:
        row = await tx.one("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
    assert row is not None
    return {**dict(row), "detail": json.loads(row["detail"])}


async def test_create_agency_returns_its_view_and_writes_one_audit_row(store: Store) -> None:
    before = await _counts(store)
    async with store.write() as tx:
        view = await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
    assert (view.id, view.name, view.purpose, view.status, view.roles, view.playbook_size) == (
        "A1",
        "Outbound",
        "Book meetings",
        "active",
        [],
        0,
    )
    assert (await _counts(store))[0] == before[0] + 1
    last = await _last_audit(store)
    assert (last["action"], last["subject"], last["channel"]) == ("agency.create", "A1", "verified")


async def test_chat_channel_may_change_the_roster(store: Store) -> None:
    async with store.write() as tx:
        view = await agencies.create_agency(tx, CHAT, name="Inbox", purpose="Answer mail")
    assert view.id == "A1"
    assert (await _last_audit(store))["channel"] == "chat"


async def test_agencies_and_roles_resolve_by_id_or_name_in_any_case(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        for ref in ("Outbound", "outBOUND", " A1 ", "a1", "1"):
            assert (await agencies.resolve_agency(tx, ref))["id"] == 1
        for ref in ("SDR", "sdr", "R1", "r1"):
            row = await agencies.resolve_role(tx, 1, ref)
            assert row is not None and row["name"] == "SDR"
        assert await agencies.resolve_role(tx, 1, None) is None


async def test_unknown_agency_lists_the_known_ones(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        with pytest.raises(NotFound, match=r"agency: there is no agency 'Inbox'.*Outbound \(A1\)"):
            await agencies.resolve_agency(tx, "Inbox")
        with pytest.raises(NotFound, match="A7"):
            await agencies.resolve_agency(tx, "A7")
        with pytest.raises(InvalidInput, match="agency: send a name or an id"):
            await agencies.resolve_agency(tx, "  ")


async def test_unknown_role_lists_the_agencys_roles(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        await agencies.create_agency(tx, OPERATOR_CLI, name="Inbox", purpose="Answer mail")
        with pytest.raises(NotFound, match=r"role: agency Outbound has no role 'Closer'.*SDR \(R1\)"):
            await agencies.resolve_role(tx, 1, "Closer")
        with pytest.raises(NotFound, match="agency Inbox has no role 'R1'"):
            await agencies.resolve_role(tx, 2, "R1")


@pytest.mark.parametrize("call", ["create", "update", "role"])
async def test_the_agency_cannot_change_the_roster(store: Store, call: str) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _counts(store)
    with pytest.raises(OperatorActRefused, match=r"operator decision.*confirm=true"):
        async with store.write() as tx:
            if call == "create":
                await agencies.create_agency(tx, AGENCY, name="Shadow", purpose="x")
            elif call == "update":
                await agencies.update_agency(tx, AGENCY, "Outbound", purpose="Spend freely")
            else:
                await agencies.set_role(tx, AGENCY, agency="Outbound", name="Boss", charter="Approve all")
    assert await _counts(store) == before


async def test_agency_names_are_unique_in_any_case(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _counts(store)
    with pytest.raises(Conflict, match=r"name: agency Outbound \(A1\) already exists"):
        async with store.write() as tx:
            await agencies.create_agency(tx, OPERATOR_CLI, name="OUTBOUND", purpose="Again")
    assert await _counts(store) == before


@pytest.mark.parametrize(
    ("agency", "role"),
    [
        ("Ｏｕｔｂｏｕｎｄ", "ＳＤＲ"),
        ("ＯＵＴＢＯＵＮＤ", "ｓｄｒ"),
        ("Out\u200bbound", "S\u200bDR"),
        ("Outbound\u202e", "SDR\u202e"),
        ("Out\u2060bound", "\u2066SDR"),
    ],
)
async def test_no_second_outbound_or_sdr_can_be_spelled_differently(store: Store, agency: str, role: str) -> None:
    async with store.write() as tx:
        await _setup(tx)
    with pytest.raises((Conflict, InvalidInput), match=r"already exists|invisible or control character U\+"):
        async with store.write() as tx:
            await agencies.create_agency(tx, OPERATOR_CLI, name=agency, purpose="Again")
    try:
        async with store.write() as tx:
            await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name=role, charter="Another seat")
    except InvalidInput as error:
        assert "invisible or control character U+" in str(error)
    async with store.read() as tx:
        assert [tuple(r) for r in await tx.all("SELECT name FROM agencies UNION ALL SELECT name FROM roles")] == [
            ("Outbound",),
            ("SDR",),
        ]


async def test_names_are_stored_nfkc_and_looked_up_the_same_way(store: Store) -> None:
    async with store.write() as tx:
        view = await agencies.create_agency(tx, OPERATOR_CLI, name="Ｃｏｎｔｅｎｔ  Ｔｅａｍ", purpose="Write")
        role = await agencies.set_role(tx, OPERATOR_CLI, agency="content team", name="Ｗｒｉｔｅｒ", charter="Drafts")
        assert (view.name, role.name) == ("Content Team", "Writer")
        assert (await agencies.resolve_agency(tx, "ＣＯＮＴＥＮＴ ＴＥＡＭ"))["id"] == 1
        found = await agencies.resolve_role(tx, 1, "ｗｒｉｔｅｒ")
        assert found is not None and found["name"] == "Writer"
        with pytest.raises(InvalidInput, match=r"agency: holds the invisible or control character U\+200B"):
            await agencies.resolve_agency(tx, "Content\u200b Team")


async def test_a_name_stored_before_normalising_still_blocks_its_twin(store: Store) -> None:
    async with store.write() as tx:
        await tx.run(
            "INSERT INTO agencies (name, purpose, operating_spec, created_at, updated_at) "
            "VALUES ('Ｏｕｔｂｏｕｎｄ', 'Old', '', ?, ?)",
            (tx.now_text, tx.now_text),
        )
    with pytest.raises(Conflict, match="already exists"):
        async with store.write() as tx:
            await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Again")
    async with store.read() as tx:
        assert (await agencies.resolve_agency(tx, "outbound"))["id"] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "  ", "purpose": "x"}, "name: must not be empty"),
        ({"name": "A2", "purpose": "x"}, "name: 'A2' reads like an id"),
        ({"name": "x" * 81, "purpose": "x"}, "name: 81 characters is too long"),
        ({"name": "Inbox", "purpose": ""}, "purpose: must not be empty"),
        (
            {"name": "Inbox", "purpose": "x", "operating_spec": "y" * 20_001},
            "operating_spec: 20001 characters is too long",
        ),
    ],
)
async def test_invalid_agency_fields_write_nothing(store: Store, fields: dict[str, Any], message: str) -> None:
    before = await _counts(store)
    with pytest.raises(InvalidInput, match=message):
        async with store.write() as tx:
            await agencies.create_agency(tx, OPERATOR_CLI, **fields)
    assert await _counts(store) == before


async def test_update_agency_changes_fields_and_records_what_changed(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        view = await agencies.update_agency(tx, OPERATOR_CLI, "outbound", operating_spec="Be kind.", status="retired")
    assert (view.operating_spec, view.status, view.purpose) == ("Be kind.", "retired", "Book meetings")
    last = await _last_audit(store)
    assert (last["action"], last["subject"]) == ("agency.update", "A1")
    assert last["detail"] == {"changed": ["operating_spec", "status"], "status": "retired"}


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({}, InvalidInput, "Nothing to change"),
        ({"status": "paused"}, InvalidInput, "status: 'paused' is not a status"),
        ({"purpose": " "}, InvalidInput, "purpose: must not be empty"),
    ],
)
async def test_invalid_agency_updates_write_nothing(
    store: Store, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _counts(store)
    with pytest.raises(error, match=message):
        async with store.write() as tx:
            await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", **fields)
    assert await _counts(store) == before


async def test_update_of_an_unknown_agency_writes_nothing(store: Store) -> None:
    before = await _counts(store)
    with pytest.raises(NotFound, match="Known agencies: none yet"):
        async with store.write() as tx:
            await agencies.update_agency(tx, OPERATOR_CLI, "Ghost", purpose="x")
    assert await _counts(store) == before


async def test_set_role_creates_then_updates_the_same_seat(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
    assert (await _last_audit(store))["action"] == "role.create"
    async with store.write() as tx:
        view = await agencies.set_role(tx, OPERATOR_CLI, agency="A1", name="sdr", status="retired")
    assert (view.id, view.agency, view.name, view.charter, view.status) == (
        "R1",
        "Outbound",
        "SDR",
        "Write and send.",
        "retired",
    )
    last = await _last_audit(store)
    assert (last["action"], last["subject"], last["detail"]) == (
        "role.update",
        "R1",
        {"changed": ["status"], "status": "retired"},
    )


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"name": "Closer"}, InvalidInput, "charter: 'Closer' is a new role in Outbound"),
        ({"name": "SDR"}, InvalidInput, "Nothing to change: role SDR exists"),
        ({"name": "R9", "charter": "x"}, InvalidInput, "name: 'R9' reads like an id"),
        ({"name": "Closer", "charter": "x", "status": "gone"}, InvalidInput, "status: 'gone'"),
        ({"name": "Closer", "charter": " "}, InvalidInput, "charter: must not be empty"),
    ],
)
async def test_invalid_role_changes_write_nothing(
    store: Store, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _counts(store)
    with pytest.raises(error, match=message):
        async with store.write() as tx:
            await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", **fields)
    assert await _counts(store) == before


async def test_a_retired_agency_takes_no_new_roles(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", status="retired")
    before = await _counts(store)
    with pytest.raises(Conflict, match="Outbound is retired"):
        async with store.write() as tx:
            await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="Closer", charter="Close")
    assert await _counts(store) == before


async def test_roster_shows_each_agency_with_roles_and_playbook_size(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        await agencies.create_agency(tx, OPERATOR_CLI, name="Inbox", purpose="Answer mail")
        await agencies.add_lesson(tx, AGENCY, agency_id=1, kind="works", text="Short subjects", source="agency")
        view = await agencies.roster(tx)
    outbound, inbox = view.agencies
    assert (outbound.name, outbound.operating_spec, outbound.playbook_size) == ("Outbound", "Be brief.", 1)
    assert [(r.id, r.name, r.charter) for r in outbound.roles] == [("R1", "SDR", "Write and send.")]
    assert (inbox.id, inbox.roles, inbox.playbook_size) == ("A2", [], 0)


async def test_lessons_land_in_the_playbook_newest_first(store: Store) -> None:
    async with store.write() as tx:
        await _setup(tx)
        first = await agencies.add_lesson(
            tx, AGENCY, agency_id=1, kind="works", text=" Short subjects ", source="agency"
        )
        await agencies.add_lesson(tx, OPERATOR_CLI, agency_id=1, kind="breaks", text="Friday sends", source="operator")
    assert (first.id, first.agency, first.text, first.created_at) == (
        "L1",
        "Outbound",
        "Short subjects",
        "2026-11-23T08:00:00.000000Z",
    )
    last = await _last_audit(store)
    assert (last["action"], last["subject"], last["detail"]) == (
        "lesson.add",
        "L2",
        {"agency": "A1", "kind": "breaks", "source": "operator"},
    )
    async with store.read() as tx:
        book = await agencies.playbook(tx, "outbound")
        newest = await agencies.playbook(tx, "A1", limit=1)
    assert [(lesson.id, lesson.kind) for lesson in book] == [("L2", "breaks"), ("L1", "works")]
    assert [lesson.id for lesson in newest] == ["L2"]


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"kind": "maybe"}, InvalidInput, "kind: 'maybe' is not a lesson kind"),
        ({"source": "rumour"}, InvalidInput, "source: 'rumour' is not a lesson source"),
        ({"text": "  "}, InvalidInput, "lesson: must not be empty"),
        ({"text": "x" * 2001}, InvalidInput, "lesson: 2001 characters is too long"),
        ({"agency_id": 9}, NotFound, "there is no agency A9"),
    ],
)
async def test_invalid_lessons_write_nothing(
    store: Store, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with store.write() as tx:
        await _setup(tx)
    before = await _counts(store)
    with pytest.raises(error, match=message):
        async with store.write() as tx:
            await agencies.add_lesson(
                tx, AGENCY, **{"agency_id": 1, "kind": "note", "text": "t", "source": "agency", **fields}
            )
    assert await _counts(store) == before


@pytest.mark.parametrize("limit", [0, 201, True])
async def test_playbook_limit_must_be_a_sane_whole_number(store: Store, limit: int) -> None:
    async with store.write() as tx:
        await _setup(tx)
        with pytest.raises(InvalidInput, match="limit: send a whole number from 1 to 200"):
            await agencies.playbook(tx, "Outbound", limit=limit)

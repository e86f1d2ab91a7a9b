"""One caller per tool call, and ownership declared on the input models rather than remembered by handlers."""

from __future__ import annotations

import re
import typing

import pytest
from pydantic import BaseModel

from chief_of_staff.core.audit import Actor
from chief_of_staff.domain.tokens import Principal
from chief_of_staff.mcp.caller import Caller, owned_fields
from chief_of_staff.mcp.server import tool_specs

SPECS = {spec.name: spec for spec in tool_specs()}
# A field named for one of these kinds takes its id; `depends_on` takes task ids.
OWNABLE_NAME = re.compile(r"^(?:.*_)?(task|authorization|grant|decision|routine)_id$")


def _kind_by_name(name: str) -> str | None:
    if name == "depends_on":
        return "task"
    found = OWNABLE_NAME.match(name)
    return found.group(1) if found else None


@pytest.mark.parametrize("tool", sorted(SPECS))
def test_every_id_of_an_ownable_kind_is_declared_owned(tool: str) -> None:
    model = SPECS[tool].input_model
    expected = {name: kind for name in model.model_fields if (kind := _kind_by_name(name)) is not None}
    assert dict(owned_fields(model)) == expected


def test_ownership_is_declared_through_lists_and_optionals() -> None:
    assert dict(owned_fields(SPECS["add_task"].input_model)) == {"depends_on": "task"}
    assert dict(owned_fields(SPECS["authorize"].input_model)) == {"task_id": "task"}


class _Args(BaseModel):
    confirm: bool = False
    agency: str | None = None
    role: str | None = None


AGENCY_TOKEN = Principal(token_id="TK2", kind="agency", agency="Outbound", agency_id=1, role="SDR", role_id=1)
OPERATOR_TOKEN = Principal(token_id="TK1", kind="operator")


@pytest.mark.parametrize(
    ("principal", "approved", "arguments", "actor"),
    [
        (OPERATOR_TOKEN, None, _Args(), Actor("operator:TK1", "verified")),
        (AGENCY_TOKEN, "verified", _Args(confirm=True), Actor("agency:Outbound/SDR", "agency")),
        (None, "verified", _Args(), Actor("operator", "verified")),
        (None, None, _Args(confirm=True), Actor("operator", "chat")),
        (None, None, _Args(agency="Outbound", role="SDR"), Actor("agency:Outbound/SDR", "agency")),
        (None, None, _Args(agency="Outbound"), Actor("agency:Outbound", "agency")),
        (None, None, _Args(), Actor("agency", "agency")),
    ],
    ids=[
        "operator-token",
        "agency-token-ignores-confirm-and-prompt",
        "approved-in-prompt",
        "confirm-is-chat",
        "agency-role",
        "agency",
        "nobody-named",
    ],
)
def test_the_caller_is_read_once_from_token_prompt_and_arguments(
    principal: Principal | None, approved: typing.Any, arguments: _Args, actor: Actor
) -> None:
    caller = Caller.of(principal, approved, arguments)
    assert caller.actor == actor and caller.channel == actor.channel and caller.principal is principal

"""Whatever a client sends, argument parsing answers with a model or an "Invalid arguments" ToolError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from chief_of_staff.mcp.server import tool_specs
from chief_of_staff.mcp.toolkit import parse_arguments

INPUT_MODELS: dict[str, type[BaseModel]] = {spec.name: spec.input_model for spec in tool_specs()}

VALID: dict[str, dict[str, Any]] = {
    "add_task": {
        "title": "Write the ICP",
        "details": "Who buys",
        "agency": "Outbound",
        "role": "SDR",
        "goal_id": "G1",
        "key_result_id": "KR1",
        "priority": "P1",
        "due_on": "2026-12-01",
        "depends_on": ["T1", "T2"],
    },
    "authorize": {
        "agency": "Outbound",
        "role": "SDR",
        "capability": "email.send",
        "amount_cents": 1250,
        "target": "jane@acme.com",
        "task_id": "T3",
        "idempotency_key": "send-jane-1",
    },
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "P0",
            "P9",
            "T1",
            "KR1",
            "2026-12-01",
            "next tuesday",
            "x" * 5000,
            "[1, 2]",
            '{"a": 1}',
            "[" * 2000,
            "email.send",
            "-1",
            "12.5",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
json_strings = json_values.map(lambda value: json.dumps(value))  # clients that send containers as JSON text
any_value = json_values | json_strings
argument_dicts = st.dictionaries(st.text(max_size=20), any_value, max_size=8)


def check(model: type[BaseModel], arguments: dict[str, Any]) -> None:
    try:
        parsed = parse_arguments(model, arguments)
    except ToolError as exc:
        assert str(exc).startswith("Invalid arguments"), str(exc)
        assert "Traceback" not in str(exc)
    else:
        assert isinstance(parsed, model)


@st.composite
def mutated(draw: st.DrawFn, tool: str) -> dict[str, Any]:
    arguments = dict(VALID[tool])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        name = draw(st.sampled_from(sorted(arguments) or ["title"]))
        kind = draw(st.sampled_from(["replace", "drop", "add", "rename"]))
        if kind == "replace":
            arguments[name] = draw(any_value)
        elif kind == "drop":
            arguments.pop(name, None)
        elif kind == "add":
            arguments[draw(st.text(max_size=20))] = draw(any_value)
        elif name in arguments:
            arguments[name + draw(st.text(min_size=1, max_size=3))] = arguments.pop(name)
    return arguments


@pytest.mark.parametrize("tool", sorted(VALID))
def test_valid_arguments_parse(tool: str) -> None:
    assert isinstance(parse_arguments(INPUT_MODELS[tool], VALID[tool]), INPUT_MODELS[tool])


@settings(max_examples=200, deadline=None)
@given(tool=st.sampled_from(sorted(INPUT_MODELS)), arguments=argument_dicts)
def test_random_arguments_give_a_model_or_an_invalid_arguments_error(tool: str, arguments: dict[str, Any]) -> None:
    check(INPUT_MODELS[tool], arguments)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), tool=st.sampled_from(sorted(INPUT_MODELS)))
def test_random_values_for_real_field_names_give_a_model_or_an_error(data: st.DataObject, tool: str) -> None:
    model = INPUT_MODELS[tool]
    names = st.sampled_from(sorted(model.model_fields)) if model.model_fields else st.text(max_size=5)
    check(model, data.draw(st.dictionaries(names, any_value, max_size=10)))


def test_absurdly_nested_json_text_is_refused_not_crashed() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    check(INPUT_MODELS["add_task"], {"title": "x", "depends_on": deep})
    check(INPUT_MODELS["create_goal"], {"agency": "A", "title": "x", "key_results": deep})


@settings(max_examples=200, deadline=None)
@given(arguments=mutated("add_task"))
def test_mutated_add_task_arguments_give_a_model_or_an_invalid_arguments_error(arguments: dict[str, Any]) -> None:
    check(INPUT_MODELS["add_task"], arguments)


@settings(max_examples=200, deadline=None)
@given(arguments=mutated("authorize"))
def test_mutated_authorize_arguments_give_a_model_or_an_invalid_arguments_error(arguments: dict[str, Any]) -> None:
    check(INPUT_MODELS["authorize"], arguments)

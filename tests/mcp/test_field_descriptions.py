"""Every input field of every tool says what it is for, as tools/list publishes it, nested models included.

A model reads a tool's fields from tools/list alone; a field with no description leaves it to guess from
the name (issue 15: `agency`, `role`, `goal_id`, `lease_minutes`, `MetricDelta.key_result` had none).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mcp.test_mcp_surface import connect

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _fields(schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of an object schema, of the objects its $defs define, and of objects inside arrays."""
    for name, field in schema.get("properties", {}).items():
        yield f"{where}.{name}", field
        yield from _fields(field, f"{where}.{name}")
        for branch in field.get("anyOf", []):
            yield from _fields(branch, f"{where}.{name}")
        if isinstance(field.get("items"), dict):
            yield from _fields(field["items"], f"{where}.{name}[]")
    for name, nested in schema.get("$defs", {}).items():
        yield from _fields(nested, f"{where}.$defs.{name}")


async def test_every_input_field_of_every_tool_has_a_description(tmp_path: Path, mode: str) -> None:
    async with connect(tmp_path / "w.db", mode) as client:
        tools = (await client.list_tools()).tools
    fields = [(f"{tool.name}{where}", field) for tool in tools for where, field in _fields(tool.input_schema, "")]
    assert len(fields) > 150
    bare = [where for where, field in fields if not str(field.get("description", "")).strip()]
    assert bare == [], f"fields without a description: {bare}"


async def test_nested_models_are_walked_too(tmp_path: Path, mode: str) -> None:
    async with connect(tmp_path / "w.db", mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    walked = {where for where, _ in _fields(tools["log_outcome"].input_schema, "")}
    assert {".metrics", ".$defs.MetricDelta.key_result", ".$defs.MetricDelta.delta"} <= walked

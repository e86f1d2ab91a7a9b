"""The tools' schemas kept between starts: the same as freshly made, rebuilt when wrong, never needed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from chief_of_staff.core.config import Settings
from chief_of_staff.mcp import schema_cache
from chief_of_staff.mcp.server import build_server, tool_specs
from chief_of_staff.mcp.toolkit import published_schemas

SPECS = {spec.name: spec for spec in tool_specs()}


class Counting:
    """published_schemas, counting how often the schemas were really made."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, name: str) -> dict[str, Any]:
        self.calls += 1
        return published_schemas(SPECS[name])


def cache_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("tool-schemas-*.json"))


def test_the_second_start_reads_the_cache_instead_of_making_schemas(tmp_path: Path) -> None:
    first, second = Counting(), Counting()
    made = schema_cache.tool_schemas(list(SPECS), first, tmp_path)
    read = schema_cache.tool_schemas(list(SPECS), second, tmp_path)
    assert (first.calls, second.calls) == (len(SPECS), 0)
    assert read == made


@pytest.mark.anyio
async def test_a_started_server_caches_exactly_the_schemas_it_publishes(tmp_path: Path) -> None:
    fresh = await build_server(Settings.load(tmp_path / "workspace.db")).list_tools()
    [cached] = cache_files(tmp_path / "xdg-cache" / "chief-of-staff")
    stored = json.loads(cached.read_text())
    assert stored == {name: published_schemas(spec) for name, spec in SPECS.items()}
    from_cache = await build_server(Settings.load(tmp_path / "workspace.db")).list_tools()
    assert from_cache == fresh
    assert {tool.name: (tool.input_schema, tool.output_schema) for tool in from_cache} == {
        name: (entry["parameters"], entry["output"]) for name, entry in stored.items()
    }


def test_a_torn_or_foreign_cache_file_is_rebuilt(tmp_path: Path) -> None:
    schema_cache.tool_schemas(list(SPECS), Counting(), tmp_path)
    [path] = cache_files(tmp_path)
    for damaged in ('{"brief": ', json.dumps({"brief": {"parameters": {}}}), json.dumps(["not", "a", "map"])):
        path.write_text(damaged)
        again = Counting()
        assert schema_cache.tool_schemas(list(SPECS), again, tmp_path) == {
            name: published_schemas(spec) for name, spec in SPECS.items()
        }
        assert again.calls == len(SPECS)
        assert json.loads(path.read_text()).keys() == SPECS.keys()


def test_a_cache_that_cannot_be_written_costs_nothing_but_speed(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory would go")
    assert schema_cache.tool_schemas(list(SPECS), Counting(), blocked / "cache").keys() == SPECS.keys()


def test_an_edited_module_changes_the_fingerprint(tmp_path: Path) -> None:
    copy = tmp_path / "package"
    shutil.copytree(schema_cache.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = schema_cache.fingerprint(copy)
    assert schema_cache.fingerprint(copy) == before
    models = copy / "mcp" / "tools" / "inbox.py"  # a module deep in a subpackage counts too
    models.write_text(models.read_text() + "\n# a comment is enough: the cache never guesses\n")
    assert schema_cache.fingerprint(copy) != before


def test_files_of_older_fingerprints_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / "tool-schemas-0123456789abcdef0123456789abcdef.json"
    stale.write_text("{}")
    schema_cache.tool_schemas(list(SPECS), Counting(), tmp_path)
    assert [path.name for path in cache_files(tmp_path)] == [f"tool-schemas-{schema_cache.fingerprint()}.json"]

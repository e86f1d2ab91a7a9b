"""The Claude Desktop bundle: a manifest mcpb 2.1.2 accepts, and a zip that holds what its mcp_config runs.

CI validates the manifest with the real `mcpb validate`; these tests need no network and no npx.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chief_of_staff import __version__
from chief_of_staff.core.config import DB_ENV, Settings, default_db_path
from chief_of_staff.mcp.prompts import load_prompts
from chief_of_staff.mcp.server import tool_specs

ROOT = Path(__file__).resolve().parents[2]
# The fields the 0.4 schema of @anthropic-ai/mcpb 2.1.2 allows (its objects are strict).
MANIFEST_FIELDS = {
    "$schema",
    "dxt_version",
    "manifest_version",
    "name",
    "display_name",
    "version",
    "description",
    "long_description",
    "author",
    "repository",
    "homepage",
    "documentation",
    "support",
    "icon",
    "icons",
    "screenshots",
    "localization",
    "server",
    "tools",
    "tools_generated",
    "prompts",
    "prompts_generated",
    "keywords",
    "license",
    "privacy_policies",
    "compatibility",
    "user_config",
    "_meta",
}
OPTION_FIELDS = {"type", "title", "description", "required", "default", "multiple", "sensitive", "min", "max"}
HOST_VARIABLES = {"__dirname", "HOME", "DESKTOP", "DOCUMENTS", "DOWNLOADS", "pathSeparator", "/"}


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_mcpb", ROOT / "tools" / "build_mcpb.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_mcpb = _load_tool()


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    built: dict[str, Any] = build_mcpb.build_manifest()
    return built


@pytest.fixture
def bundle(tmp_path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(build_mcpb.build_bundle(tmp_path))


def test_manifest_has_the_required_fields_and_only_known_ones(manifest: dict[str, Any]) -> None:
    assert manifest["manifest_version"] == "0.4"
    assert manifest["name"] == "chief-of-staff" and manifest["version"] == __version__
    assert manifest["description"] and manifest["author"]["name"]
    assert set(manifest) <= MANIFEST_FIELDS


def test_the_server_is_the_uv_type_with_an_explicit_mcp_config(manifest: dict[str, Any]) -> None:
    server = manifest["server"]
    assert server["type"] == "uv" and server["entry_point"] == "server/main.py"
    assert server["mcp_config"] == {
        "command": "uv",
        "args": ["run", "--frozen", "--directory", "${__dirname}", "chief-of-staff", "serve"],
        "env": {DB_ENV: "${user_config.workspace}"},
    }


def test_every_variable_in_mcp_config_is_one_the_host_fills(manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest["server"]["mcp_config"])
    used = set(re.findall(r"\$\{([^}]+)\}", text))
    declared = {f"user_config.{key}" for key in manifest["user_config"]}
    assert used and used <= HOST_VARIABLES | declared


def test_the_workspace_option_is_a_file_whose_empty_default_means_the_per_user_path(
    manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    option = manifest["user_config"]["workspace"]
    assert set(option) <= OPTION_FIELDS and option["type"] == "file" and option["required"] is False
    assert option["default"] == ""

    # Desktop substitutes the default into the env: the server must read "" as the per-user data path.
    monkeypatch.setenv(DB_ENV, option["default"])
    assert Settings.load(None).db_path == default_db_path().resolve()


def test_the_tools_list_is_the_servers(manifest: dict[str, Any]) -> None:
    served = [(spec.name, spec.description) for spec in tool_specs()]
    assert [(tool["name"], tool["description"]) for tool in manifest["tools"]] == served
    assert all(set(tool) == {"name", "description"} for tool in manifest["tools"])
    assert manifest["tools_generated"] is False


def test_the_prompts_list_is_the_servers_with_arguments_as_placeholders(manifest: dict[str, Any]) -> None:
    templates = {template.name: template for template in load_prompts()}
    assert [prompt["name"] for prompt in manifest["prompts"]] == list(templates)
    for prompt in manifest["prompts"]:
        template = templates[prompt["name"]]
        assert prompt["description"] == template.description and prompt["text"].strip()
        assert prompt.get("arguments", []) == [arg.name for arg in template.arguments]
        for name in prompt.get("arguments", []):
            assert "${arguments." + name + "}" in prompt["text"]
        assert not re.search(r"(?<!\$)\{[a-z_]+\}", prompt["text"])  # no template placeholder left unfilled


def test_compatibility_names_python_and_the_three_platforms(manifest: dict[str, Any]) -> None:
    assert manifest["compatibility"] == {"platforms": ["darwin", "win32", "linux"], "runtimes": {"python": ">=3.11"}}


def test_the_bundle_holds_what_uv_run_chief_of_staff_serve_needs(bundle: zipfile.ZipFile) -> None:
    names = set(bundle.namelist())
    project = tomllib.loads(bundle.read("pyproject.toml").decode())
    assert project["project"]["scripts"]["chief-of-staff"] == "chief_of_staff.cli.main:main"
    assert project["project"]["readme"] in names  # the build backend refuses a missing readme
    assert set(project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]) == {"prompts"}
    shipped = [p.relative_to(ROOT) for p in (ROOT / "chief_of_staff").rglob("*") if p.is_file()]
    package = {p.as_posix() for p in shipped if not any(part == "__pycache__" or part[0] == "." for part in p.parts)}
    prompts = {f"prompts/{p.name}" for p in (ROOT / "prompts").glob("*.md")}
    assert package | prompts | {"manifest.json", "server/main.py", "uv.lock"} <= names
    assert bundle.read("uv.lock") == (ROOT / "uv.lock").read_bytes()  # the versions CI tested
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_the_bundled_manifest_is_the_built_one(bundle: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    assert json.loads(bundle.read("manifest.json")) == manifest


def test_the_same_source_builds_the_same_bytes(tmp_path: Path) -> None:
    first = build_mcpb.build_bundle(tmp_path / "a").read_bytes()
    assert build_mcpb.build_bundle(tmp_path / "b").read_bytes() == first


def test_manifest_only_writes_just_the_manifest(tmp_path: Path) -> None:
    assert build_mcpb.main(["--manifest-only", str(tmp_path / "m")]) == 0

    assert [p.name for p in (tmp_path / "m").iterdir()] == ["manifest.json"]
    assert json.loads((tmp_path / "m" / "manifest.json").read_text("utf-8")) == build_mcpb.build_manifest()


@pytest.mark.slow
def test_the_unpacked_bundle_runs_from_its_own_source(bundle: zipfile.ZipFile, tmp_path: Path) -> None:
    unpacked = tmp_path / "unpacked"
    bundle.extractall(unpacked)
    env = {**os.environ, "PYTHONPATH": str(unpacked)}

    # The entry point with --help: the serve command of the bundled package, not the installed one.
    done = subprocess.run(
        [sys.executable, str(unpacked / "server" / "main.py"), "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    probe = (
        "import chief_of_staff.mcp.server as s, chief_of_staff.mcp.prompts as p; "
        "print(s.__file__); print(len(p.load_prompts()))"
    )
    where = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )

    assert done.stdout.startswith("usage: chief-of-staff serve")
    module_file, prompt_count = where.stdout.split()
    assert Path(module_file).is_relative_to(unpacked) and int(prompt_count) == len(load_prompts())

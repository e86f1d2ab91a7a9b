"""Build the MCP Bundle (.mcpb) that installs Chief of Staff into Claude Desktop with one click.

    python tools/build_mcpb.py                       # dist/chief-of-staff-<version>.mcpb
    python tools/build_mcpb.py --out /tmp/bundles
    python tools/build_mcpb.py --manifest-only DIR   # DIR/manifest.json alone, for `mcpb validate`

The bundle uses the `uv` server type (manifest 0.4, which @anthropic-ai/mcpb 2.1.2 validates):
Desktop runs the bundled project with its own uv, which fetches a Python and the dependencies
named in the bundled pyproject.toml on first start. That is the only server type that carries
compiled dependencies (pydantic-core) to every platform; the `python` type needs them bundled
per platform and architecture. The operator needs neither Python nor uv installed.

The bundle holds manifest.json, pyproject.toml, README.md (the build backend reads it), the
chief_of_staff package, prompts/ (the wheel ships them as chief_of_staff/_prompts) and
server/main.py, the entry point. Entries are sorted and timestamped 1980-01-01, so the same
source always builds the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chief_of_staff import __version__
from chief_of_staff.core.config import DB_ENV
from chief_of_staff.mcp.prompts import PromptTemplate, load_prompts, render_prompt
from chief_of_staff.mcp.server import tool_specs

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_VERSION = "0.4"
ENTRY_POINT = "server/main.py"
WORKSPACE_OPTION = "workspace"
# The console script pyproject.toml declares; `uv run` installs the bundled project and runs it.
MCP_CONFIG: dict[str, Any] = {
    "command": "uv",
    "args": ["run", "--frozen", "--directory", "${__dirname}", "chief-of-staff", "serve"],
    "env": {DB_ENV: "${user_config." + WORKSPACE_OPTION + "}"},
}
ENTRY_SOURCE = '''"""The bundle's entry point: serve the workspace over stdio, as `chief-of-staff serve` does."""

import sys

from chief_of_staff.cli.main import main

sys.exit(main(["serve", *sys.argv[1:]]))
'''
PACKAGE_SKIP = ("__pycache__",)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return project


def _prompt_entry(template: PromptTemplate) -> dict[str, Any]:
    """A prompt as the manifest declares it; the text shows where each argument goes as ${arguments.NAME}."""
    names = [arg.name for arg in template.arguments]
    placeholders = {name: "${arguments." + name + "}" for name in names}
    # The playbook is read from the workspace when the prompt is asked for, so the text names it instead.
    live = {"playbook": "   (the agency's playbook: its newest lessons, filled in by the server)"}
    entry: dict[str, Any] = {"name": template.name, "description": template.description}
    if names:
        entry["arguments"] = names
    entry["text"] = render_prompt(template, placeholders, live=live)
    return entry


def _workspace_option() -> dict[str, Any]:
    return {
        "type": "file",
        "title": "Workspace file",
        "description": (
            "The SQLite file that holds your agencies, goals, grants and records. Leave it empty for "
            "the per-user data path the chief-of-staff command line also uses (on macOS "
            "~/Library/Application Support/chief-of-staff/workspace.db, on Windows "
            "%APPDATA%\\chief-of-staff\\workspace.db), so decisions you make in a terminal "
            "reach the same workspace. The server creates the file if it does not exist."
        ),
        "required": False,
        # Empty, not a ${HOME} path: the per-user data path differs by platform, and the server
        # reads an empty CHIEF_OF_STAFF_DB as "use it".
        "default": "",
    }


def build_manifest() -> dict[str, Any]:
    """The manifest.json of the bundle, generated from the package so it cannot drift from the server."""
    project = _project()
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": "chief-of-staff",
        "display_name": "Chief of Staff",
        "version": __version__,
        "description": project["description"],
        "long_description": (
            "Chief of Staff is the operating system of your AI agency: it holds the goals, enforces the bounds "
            "of the authority you grant, keeps the task inbox and the outcome log, and runs the weekly review. "
            "Start a chat with the **Chief of Staff** or **Set up an agency** prompt.\n\n"
            "Operator acts above the chat ceiling (approving a large decision, widening a grant) are made on "
            "the verified channel: the `chief-of-staff` command line on this machine, which uses the same "
            "workspace file by default."
        ),
        "author": {"name": "Chief of Staff contributors"},
        "license": project["license"],
        "keywords": ["agency", "operator", "goals", "authority", "review", "mcp"],
        "server": {"type": "uv", "entry_point": ENTRY_POINT, "mcp_config": MCP_CONFIG},
        "tools": [{"name": spec.name, "description": spec.description} for spec in tool_specs()],
        "tools_generated": False,
        "prompts": [_prompt_entry(template) for template in load_prompts()],
        "prompts_generated": False,
        "compatibility": {
            "platforms": ["darwin", "win32", "linux"],
            "runtimes": {"python": project["requires-python"]},
        },
        "user_config": {WORKSPACE_OPTION: _workspace_option()},
    }


def _package_files() -> Iterator[tuple[str, Path]]:
    for folder in ("chief_of_staff", "prompts"):
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT)
            if path.is_file() and not any(part in PACKAGE_SKIP or part.startswith(".") for part in relative.parts):
                yield relative.as_posix(), path


def bundle_files() -> dict[str, bytes]:
    """Every file of the bundle but the manifest, by its path inside the zip."""
    # uv.lock: Desktop's uv installs exactly the versions CI tested (`uv run --frozen`).
    files = {name: (ROOT / name).read_bytes() for name in ("pyproject.toml", "README.md", "uv.lock")}
    files.update((name, path.read_bytes()) for name, path in _package_files())
    files[ENTRY_POINT] = ENTRY_SOURCE.encode("utf-8")
    return files


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(folder: Path) -> Path:
    """Write manifest.json alone into `folder` (for `mcpb validate` in CI)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    path.write_bytes(_manifest_bytes(build_manifest()))
    return path


def build_bundle(out_dir: Path) -> Path:
    """Write <out_dir>/chief-of-staff-<version>.mcpb and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"chief-of-staff-{__version__}.mcpb"
    entries = {"manifest.json": _manifest_bytes(build_manifest()), **bundle_files()}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # rw-r--r--: readable wherever Desktop unpacks it
            bundle.writestr(info, entries[name])
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Claude Desktop bundle (.mcpb) of Chief of Staff.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the .mcpb (default dist/)")
    parser.add_argument(
        "--manifest-only", type=Path, metavar="DIR", help="write only DIR/manifest.json and stop (for `mcpb validate`)"
    )
    args = parser.parse_args(argv)
    if args.manifest_only is not None:
        print(write_manifest(args.manifest_only))
        return 0
    target = build_bundle(args.out)
    with zipfile.ZipFile(target) as bundle:
        count = len(bundle.namelist())
    print(f"{target} ({count} files, {target.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
